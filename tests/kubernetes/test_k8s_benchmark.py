"""benchmarks/k8s_spawn.py --quick runs and reports what it claims (so it does not rot)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_k8s_spawn_benchmark_quick():
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "k8s_spawn.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert result["sequential_users"] == 2 and result["concurrent_users"] == 3
    assert 0 < result["start"]["median_s"] <= result["start"]["max_s"]
    assert result["api_requests_per_cycle_by_verb"]["create"] >= 7  # SA, Role, RB, 2 TLS, ...
    assert result["api_requests_per_cycle_by_verb"]["delete"] >= 7
    assert result["objects_left_after_stop"] == []
    assert result["tls_credentials_ms"] > 0
