"""Checkpoints: round trips through file:// and S3, mismatches named by layer, bad files."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from astrokit.models.astromae import AstroMAE
from astrokit.models.checkpoint import (
    CheckpointFormatError,
    CheckpointMismatchError,
    load_checkpoint,
    save_checkpoint,
)
from astrokit.models.runtime import predict_arrays


def _model(name: str = "tiny", seed: int = 0) -> AstroMAE:
    torch.manual_seed(seed)
    model = AstroMAE(name)
    model.set_normalization(
        torch.rand(8, 5, 32, 32) * 10, torch.rand(8, 5) + 20, torch.rand(8) * 0.6
    )
    return model.eval()


def test_round_trip_on_any_store(any_store):
    model = _model()
    url = any_store.join("users/test/models/tiny.pt")
    digest = save_checkpoint(
        model, url, metrics={"val": {"mae": np.float32(0.02)}}, store=any_store
    )
    ckpt = load_checkpoint(url, store=any_store, device="cpu")
    assert ckpt.sha256 == digest
    assert ckpt.config == model.config
    assert ckpt.metrics["val"]["mae"] == pytest.approx(0.02)
    images = np.random.default_rng(0).random((6, 5, 32, 32), dtype=np.float32)
    mags = np.full((6, 5), 20.0, dtype=np.float32)
    np.testing.assert_array_equal(
        predict_arrays(model, images, mags), predict_arrays(ckpt.model, images, mags)
    )
    # the prepared copy is made once per dtype and predicts what the model predicts
    ready = ckpt.for_inference()
    assert ckpt.for_inference() is ready and ready is not ckpt.model
    assert ckpt.for_inference(torch.bfloat16) is not ready
    np.testing.assert_allclose(
        predict_arrays(ready, images, mags), predict_arrays(model, images, mags), atol=1e-5
    )


def test_mismatched_config_names_the_layer(tmp_path):
    url = str(tmp_path / "small.pt")
    save_checkpoint(_model("small"), url)
    with pytest.raises(CheckpointMismatchError, match=r"layer 'vit\.cls_token' has shape"):
        load_checkpoint(url, config="tiny")


def test_missing_and_extra_layers_are_named(tmp_path):
    model = _model()
    payload = {
        "format_version": 1,
        "config": model.config.to_dict(),
        "state_dict": dict(model.state_dict()),
        "metrics": {},
    }
    payload["state_dict"]["head.9.weight"] = torch.zeros(1)
    buf = io.BytesIO()
    torch.save(payload, buf)
    (tmp_path / "extra.pt").write_bytes(buf.getvalue())
    with pytest.raises(CheckpointMismatchError, match=r"layer 'head\.9\.weight' .* does not exist"):
        load_checkpoint(str(tmp_path / "extra.pt"))

    del payload["state_dict"]["head.9.weight"]
    del payload["state_dict"]["magnitudes.0.bias"]
    buf = io.BytesIO()
    torch.save(payload, buf)
    (tmp_path / "missing.pt").write_bytes(buf.getvalue())
    with pytest.raises(CheckpointMismatchError, match=r"layer 'magnitudes\.0\.bias' .* missing"):
        load_checkpoint(str(tmp_path / "missing.pt"))


def test_not_a_checkpoint(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(CheckpointFormatError, match=r"junk\.pt: not a readable torch checkpoint"):
        load_checkpoint(str(tmp_path / "junk.pt"))
    buf = io.BytesIO()
    torch.save(_model().state_dict(), buf)  # a bare state dict: no configuration beside it
    (tmp_path / "bare.pt").write_bytes(buf.getvalue())
    with pytest.raises(CheckpointFormatError, match="needs its configuration beside it"):
        load_checkpoint(str(tmp_path / "bare.pt"))


def test_an_invalid_stored_configuration_names_the_file(tmp_path):
    model = _model()
    config = {**model.config.to_dict(), "patch_size": 7}  # 32 is not a multiple of 7
    buf = io.BytesIO()
    torch.save({"format_version": 1, "config": config, "state_dict": model.state_dict()}, buf)
    (tmp_path / "odd.pt").write_bytes(buf.getvalue())
    with pytest.raises(CheckpointFormatError, match=r"odd\.pt: stored configuration is invalid"):
        load_checkpoint(str(tmp_path / "odd.pt"))
