"""benchmarks/browse.py --quick runs and prints the JSON it promises (so it does not rot)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.s3
def test_browse_benchmark_quick():
    env = dict(os.environ, MPLBACKEND="Agg")
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "browse.py"), "--quick", "--objects", "600"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    for backend in ("file", "s3"):
        numbers = result[backend]
        assert numbers["objects"] == 600
        assert numbers["first_page_entries"] == 200  # one page, not the whole prefix
        assert 0 < numbers["first_page_s"] < 60
        assert numbers["first_page_peak_mib"] > 0
        assert 0 < numbers["select_to_plot_s"] < 60
