"""Training on a synthetic shard set: beats the mean, fine-tunes, reports, refuses bad input."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch

from astrokit.cli import main as cli_main
from astrokit.models.checkpoint import CheckpointMismatchError, load_checkpoint
from astrokit.training import TrainingError, train


# threads=1: tiny models gain nothing from intra-op threads, and on a shared 2-core machine a
# second thread waiting for a busy core makes every step several times slower
@pytest.fixture(scope="module")
def train_shards(tmp_path_factory, make_galaxies, shard_writer):
    arrays = make_galaxies(500, seed=3)
    arrays["z"][:5] = np.nan  # unknown redshifts are skipped, and counted
    url = (tmp_path_factory.mktemp("train") / "shards").as_uri()
    shard_writer(url, arrays, rows_per_shard=300)
    return url


def test_train_beats_the_mean_and_fine_tunes(train_shards, tmp_path):
    out = (tmp_path / "m.pt").as_uri()
    threads_before = torch.get_num_threads()
    result = train(
        train_shards, out=out, config="tiny", epochs=5, batch_size=32, lr=3e-3, threads=1
    )
    m, base = result.metrics["val"], result.metrics["baseline_mean"]
    assert torch.get_num_threads() == threads_before  # restored after the call
    print("tiny model:", json.dumps(m), "\nmean baseline:", json.dumps(base))
    assert result.metrics["n_skipped"] == 5
    assert result.metrics["n_train"] + result.metrics["n_val"] == 495
    assert len(result.history) == 5
    # every photo-z metric of the issue, per epoch, next to the losses
    assert {
        "train_loss",
        "val_loss",
        "val_sigma_mad",
        "val_bias",
        "val_outlier_fraction",
        "val_mse",
        "val_mae",
    } <= set(result.history[0])
    assert m["mae"] < 0.8 * base["mae"]
    assert m["mse"] < 0.7 * base["mse"]

    ckpt = load_checkpoint(out)
    assert ckpt.sha256 == result.sha256
    assert ckpt.metrics["baseline_mean"]["mae"] == pytest.approx(base["mae"])

    tuned = train(
        train_shards, out=(tmp_path / "ft.pt").as_uri(), config=None, init=out, epochs=1, threads=1
    )
    assert load_checkpoint(tuned.url).config == ckpt.config
    # fine-tuning keeps the normalisation of the model it starts from
    assert float(load_checkpoint(tuned.url).model.z_loc) == pytest.approx(float(ckpt.model.z_loc))
    with pytest.raises(CheckpointMismatchError, match="layer"):
        train(train_shards, out=(tmp_path / "bad.pt").as_uri(), config="small", init=out, threads=1)


def test_train_argument_errors(train_shards, tmp_path):
    with pytest.raises(TrainingError, match="epochs must be >= 1"):
        train(train_shards, out=str(tmp_path / "x.pt"), epochs=0)
    with pytest.raises(TrainingError, match="threads must be >= 1"):
        train(train_shards, out=str(tmp_path / "x.pt"), threads=0)
    with pytest.raises(TrainingError, match="val_fraction"):
        train(train_shards, out=str(tmp_path / "x.pt"), val_fraction=0.0)


def test_train_command(train_shards, tmp_path, capsys, caplog):
    caplog.set_level(logging.INFO, logger="astrokit.training")
    out = (tmp_path / "cli.pt").as_uri()
    rc = cli_main(
        [
            "train",
            train_shards,
            "--out",
            out,
            "--config",
            "tiny",
            "--epochs",
            "1",
            "--batch-size",
            "64",
            "--threads",
            "1",
        ]
    )
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    assert report["checkpoint"] == out
    assert {"val", "baseline_mean"} <= set(report)
    metric_names = {"sigma_mad", "bias", "outlier_fraction", "mse", "mae"}
    assert metric_names <= set(report["val"])
    # the per-epoch log line (stderr in a shell) shows the loss and every metric
    epoch_lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("epoch 1/1")]
    assert len(epoch_lines) == 1
    for word in ("train_loss", "val_loss", "sigma_mad", "bias", "outliers", "mse", "mae"):
        assert f" {word} " in epoch_lines[0], (word, epoch_lines[0])
    rc = cli_main(["train", str(tmp_path / "nowhere"), "--out", out])
    assert rc == 2
    assert "no manifest.json" in capsys.readouterr().err
