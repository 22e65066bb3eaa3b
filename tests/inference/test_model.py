"""The AstroMAE-class network: size, FLOPs, shapes, configuration errors, devices."""

from __future__ import annotations

import pytest
import torch

from astrokit.models.astromae import (
    CONFIGS,
    AstroMAE,
    AstroMAEConfig,
    ConfigError,
    count_flops,
    count_parameters,
    get_config,
)
from astrokit.models.checkpoint import CheckpointError, select_device


def test_full_model_is_astromae_sized():
    model = AstroMAE("astromae")
    n = count_parameters(model)
    flops = count_flops(model)
    print(f"AstroMAE: {n:,} parameters, {flops / 1e6:.1f} MFLOP/sample")
    # paper: about 15.9 M parameters; DESIGN.md: ~221.5 MFLOP per sample
    assert 15.5e6 < n < 16.3e6
    assert 205e6 < flops < 235e6
    assert model.head_features == 3216  # 1096 (ViT) + 1096 (Inception) + 1024 (magnitudes)
    cfg = model.config
    assert (cfg.patch_size, cfg.embed_dim, cfg.depth, cfg.num_heads, cfg.mlp_dim) == (
        8,
        192,
        12,
        3,
        768,
    )
    # every block carries the parallel convolution module
    assert all(block.conv is not None for block in model.vit.blocks)


def test_smaller_configs_are_smaller():
    sizes = {name: count_parameters(AstroMAE(name)) for name in CONFIGS}
    assert sizes["tiny"] < sizes["small"] < sizes["astromae"] / 10


@pytest.mark.parametrize("name", ["small", "tiny"])
def test_forward_shapes_and_normalisation(name):
    torch.manual_seed(0)
    model = AstroMAE(name).eval()
    images = torch.rand(4, 5, 32, 32) * 100 + 50
    mags = torch.rand(4, 5) + 20
    z = torch.rand(4) * 0.5 + 0.1
    model.set_normalization(images, mags, z)
    out = model(images, mags)
    assert out.shape == (4,)
    assert torch.isfinite(out).all()
    assert float(model.z_loc) == pytest.approx(float(z.mean()), rel=1e-5)
    # the normalisation lives in the state dict, so checkpoints carry it
    assert {"image_loc", "image_scale", "mag_loc", "mag_scale", "z_loc", "z_scale"} <= set(
        model.state_dict()
    )


def _trained_like(name: str) -> tuple[AstroMAE, torch.Tensor, torch.Tensor]:
    """A model whose batch norms hold non-trivial statistics, and inputs for it."""
    torch.manual_seed(0)
    model = AstroMAE(name)
    images = torch.rand(16, 5, 32, 32) * 100 + 50
    mags = torch.rand(16, 5) + 20
    model.set_normalization(images, mags, torch.rand(16) * 0.5 + 0.1)
    model.train()
    with torch.no_grad():
        model(images, mags)  # one training-mode pass: running means/variances move off 0/1
    return model.eval(), images, mags


def test_inference_copy_folds_batch_norms_and_leaves_the_model_alone():
    model, images, mags = _trained_like("tiny")
    ready = model.for_inference()
    assert ready is not model and ready.weights_dtype is None
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in ready.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert not any(p.requires_grad for p in ready.parameters())
    with torch.inference_mode():
        torch.testing.assert_close(ready(images, mags), model(images, mags), rtol=1e-5, atol=1e-5)


def test_inference_copy_in_bf16_holds_only_the_reduced_parts_in_bf16():
    model, images, mags = _trained_like("tiny")
    ready = model.for_inference(torch.bfloat16)
    assert ready.weights_dtype is torch.bfloat16
    assert {p.dtype for p in ready.vit.parameters()} == {torch.bfloat16}
    for part in ("inception", "magnitudes", "head"):
        assert {p.dtype for p in getattr(ready, part).parameters()} == {torch.float32}
    with torch.inference_mode():
        reference = model(images, mags)
        got = ready(images, mags)
        with torch.autocast("cpu", dtype=torch.bfloat16):  # as predict_arrays runs it
            under_autocast = ready(images, mags)
    assert got.dtype == torch.float32
    torch.testing.assert_close(under_autocast, got)
    # bf16 rounding moves an untrained model's output a little, not wholesale
    assert 0 < float((got - reference).abs().max()) < 0.05


def test_config_round_trip_and_errors():
    cfg = get_config("small")
    assert AstroMAEConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="unknown model config 'huge'"):
        get_config("huge")
    with pytest.raises(ConfigError, match="unknown AstroMAE config keys \\['depht'\\]"):
        get_config({"depht": 3})
    with pytest.raises(ConfigError, match="embed_dim 100 is not divisible by num_heads 3"):
        AstroMAEConfig(embed_dim=100)
    with pytest.raises(ConfigError, match="depth must be a positive integer"):
        AstroMAEConfig(depth=0)


def test_device_selection(monkeypatch):
    monkeypatch.delenv("ASTROKIT_DEVICE", raising=False)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert select_device().type == expected
    assert select_device("cpu").type == "cpu"
    monkeypatch.setenv("ASTROKIT_DEVICE", "cpu")
    assert select_device().type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(CheckpointError, match="CUDA is not available"):
            select_device("cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_runs_on_cuda():
    model = AstroMAE("small").to("cuda").eval()
    with torch.inference_mode():
        out = model(torch.rand(8, 5, 32, 32, device="cuda"), torch.rand(8, 5, device="cuda"))
    assert out.device.type == "cuda" and out.shape == (8,)
