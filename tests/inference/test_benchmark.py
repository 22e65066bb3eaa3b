"""``benchmarks/infer.py --quick`` runs and reports every path it promises."""

from __future__ import annotations

from helpers.benchmarks import run_benchmark


def test_infer_benchmark_quick(tmp_path):
    report = run_benchmark("infer", "--quick", "--samples", "256", "--workdir", str(tmp_path))
    assert report["samples"] == 256 and report["config"] == "tiny"
    for path in ("baseline", "baseline_1thread", "distributed_1w", "distributed_2w"):
        assert report[path]["samples"] == 256
        assert report[path]["samples_per_s"] > 0
        assert report[path]["gflop_per_s"] > 0
    assert report["distributed_1w"]["exact"] and report["distributed_2w"]["exact"]
    assert report["distributed_2w"]["workers"] == 2
    assert report["flops_per_sample"] > 1e6
    assert report["ratio_2w_to_baseline"] > 0 and report["scaling_1w_to_2w"] > 0
    assert set(report["targets"]) == {"2w_within_5pct_of_baseline", "scaling_at_least_1.8x"}
    # explicit booleans, consistent with the ratios they judge
    targets = report["targets"]
    assert targets["2w_within_5pct_of_baseline"] is (report["ratio_2w_to_baseline"] >= 0.95)
    assert targets["scaling_at_least_1.8x"] is (report["scaling_1w_to_2w"] >= 1.8)
