"""``benchmarks/ingest.py --quick`` still runs and prints the documented JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "ingest.py"


def test_ingest_benchmark_quick(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--galaxies", "120", "--objects", "1500",
         "--workdir", str(tmp_path)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert result["benchmark"] == "ingest"
    assert [r["workers"] for r in result["ingest"]] == [1, 2]
    for run in result["ingest"]:
        assert run["files"] == run["rows"] == 120 and run["bad"] == 0
        assert run["files_per_s"] > 0 and run["mb_per_s"] > 0
    listing = result["listing"]
    assert listing["objects"] == 1500 and listing["all_pages"] == 2
    assert listing["one_page_peak_mb"] > 0
    assert list(tmp_path.iterdir()) == []  # scratch space cleaned up
