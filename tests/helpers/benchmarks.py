"""Run a script of ``benchmarks/`` the way a person does, and read the JSON it prints."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def run_benchmark(name: str, *args: str, timeout: float = 300) -> dict[str, Any]:
    """``python benchmarks/<name>.py ARGS`` from the repository root; its stdout as JSON.

    Fails the test with the end of stderr when the script exits non-zero.
    """
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / f"{name}.py"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)
