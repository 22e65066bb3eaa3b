"""The fair-CPU benchmark runs end to end with a short window and prints sane JSON.

Only the shape and the bookkeeping are checked: the ratio is a timing, and timings are not
asserted in tests (the benchmark reports it; see benchmarks/fair_cpu.py).
"""

from __future__ import annotations

import os

import pytest
from helpers.benchmarks import run_benchmark

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 and os.environ.get("CI") != "true",
    reason="per-user accounts and cgroups need a root hub (CI runs as root)",
)


def test_fair_cpu_benchmark_short_window():
    out = run_benchmark("fair_cpu", "--seconds", "3", timeout=400)
    assert out["benchmark"] == "fair_cpu" and out["profile"] == "small"
    assert out["seconds"] == 3 and out["window_s"] >= 3
    assert out["burners"] == {"A": 4, "B": 1}
    assert out["cpus"] >= 1 and len(out["loadavg_start"]) == 3 and len(out["loadavg_end"]) == 3
    assert {"A", "B", "total"} <= set(out["cpu_s"])
    assert len(out["per_burner_cpu_s"]["A"]) == 4 and len(out["per_burner_cpu_s"]["B"]) == 1
    assert out["cpu_s"]["total"] == pytest.approx(out["cpu_s"]["A"] + out["cpu_s"]["B"], abs=0.01)
    assert out["cpu_s"]["A"] > 0 and out["cpu_s"]["B"] > 0
    assert out["share"]["A"] + out["share"]["B"] == pytest.approx(1.0, abs=0.01)
    assert out["ratio_b_to_a"] > 0 and out["per_process_ratio"] == 0.25
    # Every burner ran in its own account's cgroup (the notebook's part of its server).
    assert out["burners_in_account_cgroup"] is True
    for role in ("A", "B"):
        assert all(group.endswith("/notebook") for group in out["burner_cgroups"][role])
        assert set(out["cgroups"][role]) == {"account", "server", "notebook", "cluster"}
        assert {"periods", "throttled_periods"} <= set(out["throttled"][role])
    assert out["cgroups"]["version"] in (1, 2)
    assert out["machine"]["busy_cpu_s"] > 0
