"""``benchmarks/catalogue.py --quick`` compares the model with a forest and measures throughput."""

from __future__ import annotations

from helpers.benchmarks import run_benchmark


def test_catalogue_benchmark_quick(tmp_path):
    report = run_benchmark("catalogue", "--quick", "--workdir", str(tmp_path), timeout=400)
    data = report["data"]
    assert (data["rows"], data["train_rows"], data["test_rows"]) == (3000, 2250, 750)
    # the model and the forest are scored on the same test rows
    assert report["model"]["test"]["n"] == report["forest"]["test"]["n"] == data["test_rows_scored"]
    assert data["test_rows_scored"] + data["test_bad_rows"] == data["test_rows"]
    assert (
        report["forest"]["n_train"]
        == report["model"]["n_fit"] + report["model"]["n_early_stopping"]
    )
    for key in ("coverage_68", "crps_mean", "sigma_mad", "outlier_fraction", "bias"):
        assert key in report["model"]["test"]
    assert sum(report["model"]["test"]["pit"]["counts"]) == data["test_rows_scored"]
    tp = report["throughput"]
    for workers in ("workers_1", "workers_2"):
        assert all(r["rows"] == tp["rows"] == 6000 for r in tp[workers]["runs"])
        assert tp[workers]["best_rows_per_s"] > 0
    assert set(report["targets"]) >= {"sigma_mad_no_worse_than_forest", "coverage_68_ok", "all_met"}
    assert len(report["loadavg_before"]) == 3
