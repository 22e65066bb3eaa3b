"""``benchmarks/train.py --quick`` trains, predicts an independent survey and reports both."""

from __future__ import annotations

from helpers.benchmarks import run_benchmark


def test_train_benchmark_quick(tmp_path):
    report = run_benchmark("train", "--quick", "--workdir", str(tmp_path), timeout=400)
    assert report["preset"]["config"] == "tiny" and report["preset"]["epochs"] == 1
    assert report["n_train"] + report["n_val"] <= report["train_galaxies"] == 300
    test = report["test"]
    assert test["rows"] == 200
    # every test row with a prediction is scored, for the model and the baseline alike
    assert test["model"]["n"] == test["baseline_mean"]["n"] > 150
    for key in ("sigma_mad", "mae", "mse", "outlier_fraction"):
        ratio = test["ratios_model_to_baseline"][key]
        assert ratio is None or ratio >= 0
        assert key in report["validation"]["model"]
    # the same training in fp32 (the demo model, the figures above) and in auto
    runs = report["precisions"]
    assert list(runs) == ["fp32", "auto"]
    assert runs["fp32"]["precision"]["precision"] == "fp32"
    assert runs["auto"]["precision"]["requested"] == "auto"
    assert runs["fp32"]["test"]["sigma_mad"] == test["model"]["sigma_mad"]
    for run in runs.values():
        assert run["train_seconds"] > 0 and run["test"]["n"] == test["model"]["n"]
