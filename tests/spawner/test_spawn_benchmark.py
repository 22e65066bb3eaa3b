"""The spawn benchmark's --quick mode runs end to end and prints sane JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "spawn.py"


def test_spawn_benchmark_quick():
    result = subprocess.run(
        [sys.executable, str(BENCH), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout)
    assert out["benchmark"] == "spawn" and out["spawns"] == 1 and out["n_workers"] == 2
    timing = out["spawn_to_ready_s"]
    assert 0 < timing["min"] <= timing["median"] <= timing["max"] < 120
    memory = out["idle_memory"]
    assert memory["by_role"]["notebook"]["count"] == 1
    assert memory["by_role"]["scheduler_and_manager"]["count"] == 1
    assert memory["by_role"]["workers"]["count"] == 2
    assert 0 < memory["uss_mib_total"] <= memory["pss_mib_total"] <= memory["rss_mib_total"]
