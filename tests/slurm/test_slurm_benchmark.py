"""The Slurm benchmark's --quick mode runs end to end and prints sane JSON."""

from __future__ import annotations

import pytest
from helpers.benchmarks import run_benchmark
from helpers.slurm import slurm_missing


def test_slurm_benchmark_quick():
    reason = slurm_missing()
    if reason:
        pytest.fail(reason, pytrace=False)
    out = run_benchmark("slurm", "--quick", timeout=900)
    assert out["benchmark"] == "slurm" and out["cgroup_limits"] is True
    spawn = out["spawn_to_ready_s"]
    assert len(spawn["runs"]) == 1 and 0 < spawn["median"] < 300
    assert [job["state"] for job in spawn["jobs_at_ready"]] == ["RUNNING", "RUNNING"]
    assert len(spawn["local_workers_same_profile"]["runs"]) == 1
    infer = out["infer"]
    assert infer["exact"] is True and infer["samples"] == 256
    assert infer["slurm_over_local"] > 0
    assert infer["local_2_workers"]["best_samples_per_s"] > 0
    assert len(out["loadavg_before"]) == 3 and len(out["loadavg_after"]) == 3
