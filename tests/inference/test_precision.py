"""Precision: the choice and its reason, the parity guard, and each path that takes precision=.

Everything runs on this machine's CPU with the real torch kernels: bf16 autocast runs on any
CPU (natively where it has AVX512-BF16/AMX, emulated elsewhere), so none of these tests needs a
particular chip; only what ``auto`` picks depends on it, and that is checked against the
CPU's own flags.
"""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch

from astrokit.cli import main as cli_main
from astrokit.inference import InferenceError, infer
from astrokit.models import precision as P
from astrokit.models.astromae import AstroMAE
from astrokit.models.checkpoint import load_checkpoint
from astrokit.models.runtime import predict_arrays


@pytest.fixture
def shard_url(tmp_path, galaxy_arrays, shard_writer):
    url = (tmp_path / "shards").as_uri()
    shard_writer(url, galaxy_arrays, rows_per_shard=150)
    return url


def bf16(requested: str = "bf16") -> P.PrecisionChoice:
    return P.PrecisionChoice(requested, "bf16", "cpu", "test")


# -- the choice ------------------------------------------------------------------------------


def test_auto_follows_the_cpu(monkeypatch):
    monkeypatch.delenv(P.PRECISION_ENV, raising=False)
    monkeypatch.setattr(P, "cpu_bf16_support", lambda: (True, "CPU has amx_bf16 (native bf16)"))
    choice = P.resolve_precision("auto", "cpu")
    assert (choice.precision, choice.requested, choice.device) == ("bf16", "auto", "cpu")
    assert choice.reason == "auto: CPU has amx_bf16 (native bf16)"
    assert choice.reduced and choice.dtype is torch.bfloat16
    assert P.resolve_precision(None, "cpu").precision == "bf16"  # auto is the default

    monkeypatch.setattr(P, "cpu_bf16_support", lambda: (False, "CPU (AVX512) has neither"))
    choice = P.resolve_precision("auto", "cpu")
    assert choice.precision == "fp32" and not choice.reduced
    assert choice.reason == "auto: CPU (AVX512) has neither; using fp32"
    # asked for explicitly, bf16 is honoured even where it is emulated, and says so
    forced = P.resolve_precision("BF16", "cpu")
    assert forced.precision == "bf16" and "CPU (AVX512) has neither" in forced.reason

    monkeypatch.setenv(P.PRECISION_ENV, "fp32")
    assert P.resolve_precision(None, "cpu").reason == "fp32 requested"


def test_bad_precisions_are_named():
    with pytest.raises(P.PrecisionError, match="one of auto, fp32, bf16, fp16; got 'fp8'"):
        P.resolve_precision("fp8", "cpu")
    with pytest.raises(P.PrecisionError, match="'fp16' runs only on CUDA"):
        P.resolve_precision("fp16", "cpu")
    with pytest.raises(P.PrecisionError, match="tolerance must be finite and >= 0, got -1"):
        P.check_tolerance(-1)


def test_cpu_detection_agrees_with_proc_cpuinfo():
    flags = P._proc_cpu_flags()
    if not flags:
        pytest.skip("no /proc/cpuinfo flags on this system")
    native, evidence = P.cpu_bf16_support()
    assert native == bool(flags & {"amx_bf16", "avx512_bf16"}), (flags, evidence)
    expected = "bf16" if native else "fp32"
    assert P.resolve_precision("auto", "cpu").precision == expected


# -- the guard -------------------------------------------------------------------------------


def test_guard_keeps_or_falls_back_with_the_numbers():
    z_true = np.linspace(0.1, 1.0, 50)
    reference = z_true + np.where(np.arange(50) % 2, 0.01, -0.01)

    def predict(shift):
        return lambda c: reference if c.precision == "fp32" else reference + shift

    kept, report = P.guard(bf16(), predict(2e-4), z_true=z_true)
    assert kept.precision == "bf16" and report.passed
    assert report.max_abs_diff == pytest.approx(2e-4) and report.tolerance == 1e-3
    assert report.n == 50 and report.n_labelled == 50
    assert report.sigma_mad_fp32 is not None and report.sigma_mad_reduced is not None

    back, report = P.guard(bf16("auto"), predict(2e-3), tolerance=1e-3, z_true=z_true)
    assert back.precision == "fp32" and back.requested == "auto" and not report.passed
    assert back.reason.startswith("parity guard: bf16 max |dz| 2.00e-03 > tolerance 1.0e-03")

    # fp32 needs no guard; a NaN where fp32 is finite fails it
    assert P.guard(P.fp32_choice(), predict(0.0)) == (P.fp32_choice(), None)
    nan = P.compare(reference, np.full(50, np.nan), precision="bf16")
    assert not nan.passed and nan.max_abs_diff == np.inf


def test_merge_reports():
    a = P.compare(np.zeros(3), np.full(3, 1e-4), precision="bf16").to_dict()
    b = P.compare(np.zeros(4), np.full(4, 5e-4), precision="bf16").to_dict()
    merged = P.merge_reports([a, None, b])
    assert merged["workers"] == 2 and merged["n"] == 7 and merged["passed"]
    assert merged["max_abs_diff"] == pytest.approx(5e-4)
    assert P.merge_reports([None]) is None


# -- the model and batched prediction --------------------------------------------------------


def test_bf16_runs_only_the_reduced_parts(galaxy_arrays):
    torch.manual_seed(0)
    model = AstroMAE("tiny").eval()
    model.set_normalization(
        torch.from_numpy(galaxy_arrays["images"]),
        torch.from_numpy(galaxy_arrays["mags"]),
        torch.from_numpy(galaxy_arrays["z"]),
    )
    images, mags = galaxy_arrays["images"][:64], galaxy_arrays["mags"][:64]
    ref = predict_arrays(model, images, mags, precision=P.fp32_choice())
    low = predict_arrays(model, images, mags, precision=bf16())
    assert low.dtype == np.float32 and np.isfinite(low).all()
    assert 0 < np.abs(low - ref).max() < 0.05  # bf16 did run, and stayed close
    # with no reduced part, autocast changes nothing: those parts are computed in fp32
    model.reduced_precision_parts = ()
    same = predict_arrays(model, images, mags, precision=bf16())
    np.testing.assert_array_equal(same, ref)


# -- distributed inference -------------------------------------------------------------------


def test_infer_reports_precision_and_parity(cluster_client, shard_url, tiny_model_url, tmp_path):
    common = {"model": tiny_model_url, "client": cluster_client, "progress": False}
    kept = infer(
        shard_url, out=(tmp_path / "bf16").as_uri(), precision="bf16", parity_tolerance=1.0,
        **common,
    )  # fmt: skip
    p = kept.summary["precision"]
    assert (p["requested"], p["chosen"], p["fallback"]) == ("bf16", "bf16", False)
    assert p["partitions_by_precision"] == {"bf16": kept.summary["partitions"]}
    # one report per worker that computed something, on 128-row samples with known z
    assert 1 <= p["parity"]["workers"] <= 2 and p["parity"]["passed"]
    assert 0 < p["parity"]["max_abs_dz"] < 0.05
    assert p["parity"]["n"] == 128 * p["parity"]["workers"]
    assert p["parity"]["sigma_mad_fp32"] > 0 and p["parity"]["sigma_mad_reduced"] > 0
    assert "bf16" in p["note"] and "parity max |dz|" in p["note"]

    # tolerance 0: every worker falls back to fp32, says so, and predicts as fp32 does
    back = infer(
        shard_url, out=(tmp_path / "back").as_uri(), precision="bf16", parity_tolerance=0.0,
        **common,
    )  # fmt: skip
    p = back.summary["precision"]
    assert p["chosen"] == "fp32" and p["fallback"] and not p["parity"]["passed"]
    assert all(r.startswith("parity guard: bf16 max |dz|") for r in p["reasons"])
    ref = infer(shard_url, out=(tmp_path / "fp32").as_uri(), precision="fp32", **common)
    p = ref.summary["precision"]
    assert (p["chosen"], p["parity"], p["reasons"]) == ("fp32", None, ["fp32 requested"])
    np.testing.assert_allclose(
        back.to_pandas()["z_pred"], ref.to_pandas()["z_pred"], rtol=0, atol=1e-6
    )
    low = kept.to_pandas()["z_pred"].to_numpy()
    assert np.abs(low - ref.to_pandas()["z_pred"].to_numpy()).max() < 0.05


def test_precision_arguments_fail_before_any_task(shard_url, tiny_model_url, tmp_path):
    out = (tmp_path / "x").as_uri()
    with pytest.raises(InferenceError, match="'fp8'"):
        infer(shard_url, model=tiny_model_url, out=out, precision="fp8", progress=False)
    with pytest.raises(InferenceError, match="'fp16' runs only on CUDA"):
        infer(shard_url, model=tiny_model_url, out=out, precision="fp16", device="cpu")
    with pytest.raises(InferenceError, match="tolerance must be finite"):
        infer(shard_url, model=tiny_model_url, out=out, parity_tolerance=float("nan"))


def test_infer_command_precision(cluster_client, shard_url, tiny_model_url, tmp_path, capsys):
    out = (tmp_path / "cli").as_uri()
    args = ["infer", shard_url, "--model", tiny_model_url, "--out", out, "--no-progress"]
    args += ["--scheduler", cluster_client.scheduler.address]
    rc = cli_main([*args, "--precision", "bf16", "--parity-tolerance", "0", "--no-resume"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["precision"]["requested"] == "bf16"
    assert summary["precision"]["chosen"] == "fp32" and summary["precision"]["fallback"]


# -- training --------------------------------------------------------------------------------


def test_train_in_bf16_records_the_choice(tmp_path, make_galaxies, shard_writer):
    from astrokit.training import TrainingError, train

    url = (tmp_path / "shards").as_uri()
    shard_writer(url, make_galaxies(120, seed=5), rows_per_shard=120)
    out = (tmp_path / "m.pt").as_uri()
    result = train(url, out=out, config="tiny", epochs=1, threads=1, precision="bf16")
    assert result.precision["precision"] == "bf16" and result.precision["requested"] == "bf16"
    assert np.isfinite(result.metrics["val"]["sigma_mad"])
    meta = load_checkpoint(out).meta
    assert meta["precision"] == result.precision
    # the weights stay fp32 whatever the steps computed in
    tensors = load_checkpoint(out).model.state_dict().values()
    assert all(t.dtype == torch.float32 for t in tensors if t.is_floating_point())
    with pytest.raises(TrainingError, match="'fp16' runs only on CUDA"):
        train(url, out=out, config="tiny", epochs=1, threads=1, precision="fp16", device="cpu")


# -- active-learning classifiers -------------------------------------------------------------


def test_classifier_guard_per_fit_and_per_process():
    from astrokit.active.models import default_model

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 256)).astype(np.float32)
    y = rng.integers(0, 3, 200)
    model = default_model(3, seed=0, precision="bf16", parity_tolerance=1.0, min_steps=2)
    model.fit(x, y)
    choice, report = model.settle_precision(x)
    assert choice.precision == "bf16" and report.passed and report.n == 128
    probs = model.predict_proba(x)
    assert probs.shape == (200, 3) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert model.predict_proba_samples(x[:10], 4).shape == (4, 10, 3)

    # a shipped copy decides again where it lands; a new fit makes the guard check again
    assert pickle.loads(pickle.dumps(model))._precision is None
    model.parity_tolerance = 0.0
    model.fit(x, y)
    choice, report = model.settle_precision(x)
    assert choice.precision == "fp32" and not report.passed
    assert choice.reason.startswith("parity guard: bf16 max |dp|")
    assert default_model(3).precision == "fp32"  # DEFAULT_SCORING_PRECISION
