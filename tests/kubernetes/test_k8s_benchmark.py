"""benchmarks/k8s_spawn.py --quick runs and reports what it claims (so it does not rot)."""

from __future__ import annotations

from helpers.benchmarks import run_benchmark


def test_k8s_spawn_benchmark_quick():
    result = run_benchmark("k8s_spawn", "--quick", timeout=240)
    assert result["sequential_users"] == 2 and result["concurrent_users"] == 3
    assert 0 < result["start"]["median_s"] <= result["start"]["max_s"]
    assert result["api_requests_per_cycle_by_verb"]["create"] >= 7  # SA, Role, RB, 2 TLS, ...
    assert result["api_requests_per_cycle_by_verb"]["delete"] >= 7
    assert result["objects_left_after_stop"] == []
    assert result["tls_credentials_ms"] > 0
