"""``benchmarks/infer.py --quick`` runs and reports every path it promises."""

from __future__ import annotations

from helpers.benchmarks import run_benchmark


def test_infer_benchmark_quick(tmp_path):
    report = run_benchmark(
        "infer", "--quick", "--samples", "256", "--workdir", str(tmp_path), timeout=500
    )
    assert report["samples"] == 256 and report["config"] == "tiny"
    paths = ("baseline", "baseline_1thread", "baseline_auto", "distributed_1w", "distributed_2w")
    for path in paths:
        assert report[path]["samples"] == 256
        assert report[path]["samples_per_s"] > 0
        assert report[path]["gflop_per_s"] > 0
        assert report[path]["ratio_to_fp32_roofline"] > 0
        assert report[path]["ratio_to_bf16_roofline"] > 0
    assert report["baseline"]["ratio_to_baseline"] == 1.0
    assert report["distributed_1w"]["exact"] and report["distributed_2w"]["exact"]
    assert report["distributed_2w"]["workers"] == 2
    assert report["flops_per_sample"] > 1e6
    assert report["ratio_2w_to_baseline"] > 0 and report["scaling_1w_to_2w"] > 0
    roofline = report["roofline"]
    assert roofline["fp32_2thread_gflop_per_s"] > 0 and roofline["bf16_2thread_gflop_per_s"] > 0
    cpu = report["cpu"]
    assert cpu["model_name"] and isinstance(cpu["native_bf16"], bool)
    # the precision each path ran in follows the CPU: bf16 where it is native
    chosen = "bf16" if cpu["native_bf16"] else "fp32"
    assert report["baseline_auto"]["precision"] == chosen
    assert report["distributed_2w"]["precision"]["requested"] == "auto"
    parity = report["parity"]
    assert parity["rows"] == 256 and parity["max_abs_dz"] >= 0
    assert parity["sigma_mad_fp32"] > 0 and parity["sigma_mad_auto"] > 0
    # explicit booleans, consistent with the ratios they judge
    targets = report["targets"]
    assert targets["ratio_target"] == (2.0 if cpu["native_bf16"] else 0.95)
    assert targets["2w_auto_meets_ratio_target"] is (
        report["ratio_2w_to_baseline"] >= targets["ratio_target"]
    )
    assert targets["parity_max_abs_dz_at_most_1e-3"] is (parity["max_abs_dz"] <= 1e-3)


def test_precision_benchmark_quick():
    report = run_benchmark("precision", "--quick", timeout=300)
    assert report["config"] == "tiny" and report["cpu"]["model_name"]
    for layout in ("eager", "channels_last"):
        rates = report["samples_per_s"][layout]
        assert set(rates) == {"fp32", "bf16_vit", "bf16_all"}
        assert all(v > 0 for v in rates.values())
    assert report["parts_parity_on_demo_model"] is None  # no --demo-dir
