"""The workshop benchmark's --quick mode (2 users at once) runs end to end and prints sane JSON."""

from __future__ import annotations

import pytest
from helpers.benchmarks import run_benchmark


def test_workshop_benchmark_quick():
    out = run_benchmark("workshop", "--quick", timeout=400)
    assert out["benchmark"] == "workshop" and out["users"] == 2 and out["profile"] == "small"
    assert out["failures"] == 0, out["failure_messages"]
    ready = out["ready_s"]
    assert len(ready["all"]) == 2
    assert 0 < ready["first"] <= ready["median"] <= ready["last"] <= out["all_ready_or_failed_s"]
    assert ready["last"] < 150
    cpu = out["cpu_s"]
    roles = {
        "hub",
        "hub_reaped",
        "warm_start",
        "notebook",
        "scheduler_and_manager",
        "workers",
        "helpers",
    }
    assert set(cpu["by_role"]) == roles
    assert all(seconds >= 0 for seconds in cpu["by_role"].values())
    assert cpu["by_role"]["notebook"] > 0 and cpu["by_role"]["workers"] > 0
    assert cpu["total"] == pytest.approx(sum(cpu["by_role"].values()), abs=0.3)
    assert cpu["per_spawn"] == pytest.approx(cpu["total"] / 2, abs=0.05)
    memory = out["idle_memory"]
    assert memory["by_role"]["notebook"]["count"] == 2
    assert memory["by_role"]["scheduler_and_manager"]["count"] == 2
    assert memory["by_role"]["workers"]["count"] == 4
    assert 0 < memory["uss_gib_total"] <= memory["pss_gib_total"] <= memory["rss_gib_total"]
    # Both templates are up and the servers were forked from them.
    assert set(out["warm_start_templates"]) == {"notebook", "cluster"}
    assert all(t["rss_mib"] > 0 for t in out["warm_start_templates"].values())
    loop = out["hub_event_loop_unresponsive"]
    assert loop["count"] >= 0 and loop["max_s"] >= 0
    stop = out["stop"]
    assert stop["servers"] == 2 and stop["not_stopped"] == [] and stop["errors"] == {}
    assert stop["all_stopped_s"] is not None and stop["leftover_processes"] == 0
    assert out["targets"]["users20"]["failures"] == 0
    assert out["cpus"] >= 1 and len(out["loadavg_start"]) == 3
