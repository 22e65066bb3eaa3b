"""``astrokit al`` and ``benchmarks/active.py --quick`` run for real on the toy pool."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.benchmarks import run_benchmark

from astrokit.cli import main

REPO = Path(__file__).resolve().parents[2]


def test_al_simulate_prints_curves_and_label_efficiency(toy_pool, dask_client, tmp_path, capsys):
    png = tmp_path / "curves.png"
    argv = [
        "al",
        "simulate",
        toy_pool.url,
        "--strategy",
        "margin",
        "--batch",
        "25",
        "--seed-size",
        "40",
        "--iterations",
        "3",
        "--seeds",
        "2",
        "--heldout",
        "120",
        "--state",
        f"file://{tmp_path}/runs",
        "--plot",
        str(png),
        "--json",
    ]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["curves"]) == {"margin", "random"}
    assert (out["selection"], out["beta"]) == ("power", 1.0)  # the default batch rule
    for curve in out["curves"].values():
        assert curve["n_labelled"] == [40.0, 65.0, 90.0] and curve["n_seeds"] == 2
        assert all(0 <= m <= 1 for m in curve["mean"]) and len(curve["std"]) == 3
    eff = out["label_efficiency"]
    assert eff["baseline"] == "random" and eff["target"] == out["curves"]["random"]["mean"][-1]
    assert set(eff["strategies"]) == {"margin"}
    for e in eff["strategies"].values():
        assert e["ratio"] is None or e["ratio"] == pytest.approx(e["labels"] / 90.0, abs=1e-3)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # each (strategy, seed) loop checkpointed; a second run finds them done and redoes nothing
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [
        f"{s}-seed{k}" for s in ("margin", "random") for k in (0, 1)
    ]
    assert main(argv) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["histories"] == out["histories"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--strategy", "coreset"], "unknown active-learning strategy 'coreset'"),
        (["--heldout", "100000"], "heldout=100000 >= pool size 600"),
    ],
)
def test_al_simulate_errors_are_one_clear_line(toy_pool, tmp_path, capsys, args, message):
    code = main(["al", "simulate", toy_pool.url, "--state", f"file://{tmp_path}/r", *args])
    assert code == 2
    assert message in capsys.readouterr().err


def test_benchmark_targets_are_null_safe():
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_active", REPO / "benchmarks" / "active.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    # never reaching random's accuracy: no ratio, and the target is missed (not a crash)
    assert bench.target_check(None) == {
        "ratio": None,
        "reached_random_accuracy": False,
        "meets_target": False,
    }
    assert bench.target_check(0.65)["meets_target"] is True
    assert bench.target_check(0.7)["meets_target"] is False


def test_al_simulate_on_a_missing_pool(tmp_path, capsys):
    assert main(["al", "simulate", f"file://{tmp_path}/none"]) == 2
    assert "not an active-learning pool" in capsys.readouterr().err


def test_benchmark_quick_prints_one_json_object(toy_pool, tmp_path):
    out = run_benchmark(
        "active",
        "--quick",
        "--pool",
        toy_pool.url,
        "--work",
        f"file://{tmp_path}",
        "--strategies",
        "entropy,bald",
    )
    assert out["pool"]["n"] == 600 and out["quick"] is True
    assert set(out["ratios"]) == {"entropy", "bald"}
    assert set(out["targets"]) == {"entropy", "bald"}
    for name, target in out["targets"].items():
        assert isinstance(target["meets_target"], bool), target
        assert target["ratio"] == out["ratios"][name]
        assert target["reached_random_accuracy"] is (target["ratio"] is not None)
    assert out["meets_target"] is all(t["meets_target"] for t in out["targets"].values())
    assert set(out["curves"]) == {"entropy", "bald", "random"}
    for n in ("1_workers", "2_workers"):
        for strategy in ("entropy", "bald"):
            assert out["scoring"][n][strategy]["seconds"] > 0
    assert sum(out["pool"]["classes"].values()) == 600
