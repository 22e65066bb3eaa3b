"""An AstroMAE-class photometric-redshift network (Fathkouhi & Fox 2024).

Three feature extractors look at one galaxy (a 5-band ugriz cutout of 32x32 pixels and its
5 magnitudes) and a fused head turns their concatenation into one redshift:

* a ViT encoder (patch 8 -> 16 tokens + a class token, dim 192, 12 blocks, 3 heads, MLP 768)
  whose blocks carry a *parallel convolution module*: a depthwise 3x3 convolution over the
  4x4 token grid, added next to self-attention so every block also sees local structure;
  the mean patch token then goes through a small MLP to 1096 features;
* an Inception branch (GoogLeNet-style blocks with 1x1, 3x3, 5x5 and pooling paths at 16x16,
  8x8 and 4x4 resolution) ending in a 1096-feature MLP;
* a magnitude block, an MLP from the 5 magnitudes to 1024 features.

The head maps 1096 + 1096 + 1024 = 3216 features -> 1024 -> 1. With the full configuration
this is about 15.9 M parameters and about 220 MFLOP per sample (see ``count_flops``).

The model normalises its own inputs with buffers stored in the state dict (per-band image
location/scale, magnitude location/scale and the redshift location/scale it predicts in), so
a checkpoint is self-contained: callers pass raw fluxes and magnitudes and get redshifts back.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from astrokit.errors import UserError

__all__ = [
    "CONFIGS",
    "AstroMAE",
    "AstroMAEConfig",
    "ConfigError",
    "count_flops",
    "count_parameters",
    "get_config",
]


class ConfigError(UserError, ValueError):
    """A model configuration is unknown or inconsistent."""


@dataclass(frozen=True)
class AstroMAEConfig:
    """Hyper-parameters of :class:`AstroMAE`.

    Attributes
    ----------
    image_size, in_chans, patch_size
        Cutout side in pixels, number of bands, ViT patch side (image_size % patch_size == 0).
    embed_dim, depth, num_heads, mlp_dim
        ViT width, number of blocks, attention heads and MLP hidden width.
    parallel_conv
        Add the depthwise-convolution module beside attention in every block.
    inception_width
        Channels per path of the first Inception blocks (later blocks use 1/2 and 1/4).
    branch_dim
        Width of the ViT and Inception feature MLPs (1096 in AstroMAE).
    mag_dim, mag_layers
        Width and number of linear layers of the magnitude block.
    head_dim
        Hidden width of the fused head.
    """

    image_size: int = 32
    in_chans: int = 5
    patch_size: int = 8
    embed_dim: int = 192
    depth: int = 12
    num_heads: int = 3
    mlp_dim: int = 768
    parallel_conv: bool = True
    inception_width: int = 16
    branch_dim: int = 1096
    mag_dim: int = 1024
    mag_layers: int = 5
    head_dim: int = 1024

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.type in ("int", int) and (not isinstance(value, int) or value <= 0):
                raise ConfigError(f"{field.name} must be a positive integer, got {value!r}")
        if self.image_size % self.patch_size:
            raise ConfigError(
                f"image_size {self.image_size} is not a multiple of patch_size {self.patch_size}"
            )
        if self.embed_dim % self.num_heads:
            raise ConfigError(
                f"embed_dim {self.embed_dim} is not divisible by num_heads {self.num_heads}"
            )
        if self.inception_width % 4:
            raise ConfigError(
                f"inception_width must be a multiple of 4, got {self.inception_width}"
            )
        if self.image_size % 8:
            raise ConfigError(f"image_size must be a multiple of 8, got {self.image_size}")

    @property
    def grid(self) -> int:
        """Tokens per side of the patch grid."""
        return self.image_size // self.patch_size

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form, stored beside the weights in checkpoints."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AstroMAEConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error, not silently dropped."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown AstroMAE config keys {unknown}; known: {sorted(known)}")
        return cls(**data)


#: Named configurations. ``astromae`` is the paper-sized model (~15.9 M parameters);
#: ``small`` trains in a few minutes on 2 CPU cores (the demo model); ``tiny`` is for tests.
CONFIGS: dict[str, AstroMAEConfig] = {
    "astromae": AstroMAEConfig(),
    "small": AstroMAEConfig(
        embed_dim=96,
        depth=4,
        num_heads=3,
        mlp_dim=384,
        inception_width=8,
        branch_dim=256,
        mag_dim=128,
        mag_layers=3,
        head_dim=256,
    ),
    "tiny": AstroMAEConfig(
        embed_dim=32,
        depth=2,
        num_heads=2,
        mlp_dim=64,
        inception_width=4,
        branch_dim=32,
        mag_dim=16,
        mag_layers=2,
        head_dim=32,
    ),
}


def get_config(config: str | AstroMAEConfig | dict[str, Any]) -> AstroMAEConfig:
    """Resolve a preset name, a config dict or a config object to an :class:`AstroMAEConfig`."""
    if isinstance(config, AstroMAEConfig):
        return config
    if isinstance(config, dict):
        return AstroMAEConfig.from_dict(config)
    if isinstance(config, str):
        try:
            return CONFIGS[config]
        except KeyError:
            raise ConfigError(
                f"unknown model config {config!r}; choose one of {sorted(CONFIGS)}"
            ) from None
    raise ConfigError(f"model config must be a name, dict or AstroMAEConfig, got {type(config)}")


class _ConvBNReLU(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel: int) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )

    def fold_batch_norm(self) -> None:
        """Fold the (eval-mode) batch norm into the convolution: one pass fewer, same map."""
        if isinstance(self[1], nn.BatchNorm2d):
            self[0] = fuse_conv_bn_eval(self[0], self[1])
            self[1] = nn.Identity()


class InceptionBlock(nn.Module):
    """GoogLeNet Inception block: 1x1, 1x1->3x3, 1x1->5x5 and maxpool->1x1 paths, concatenated.

    ``with_5x5=False`` drops the 5x5 path (used at the 4x4 resolution, where it sees nothing
    a 3x3 does not).
    """

    def __init__(self, cin: int, width: int, *, with_5x5: bool = True) -> None:
        super().__init__()
        self.b1 = _ConvBNReLU(cin, width, 1)
        self.b3 = nn.Sequential(_ConvBNReLU(cin, width, 1), _ConvBNReLU(width, width, 3))
        self.b5 = (
            nn.Sequential(_ConvBNReLU(cin, width, 1), _ConvBNReLU(width, width, 5))
            if with_5x5
            else None
        )
        self.bp = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), _ConvBNReLU(cin, width, 1))
        self.out_channels = width * (4 if with_5x5 else 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        paths = [self.b1(x), self.b3(x)]
        if self.b5 is not None:
            paths.append(self.b5(x))
        paths.append(self.bp(x))
        return torch.cat(paths, dim=1)


class InceptionBranch(nn.Module):
    """The image branch: 1x1 stem, Inception blocks at 16, 8 and 4 pixels, then an MLP."""

    def __init__(self, cfg: AstroMAEConfig) -> None:
        super().__init__()
        w = cfg.inception_width
        self.stem = nn.Conv2d(cfg.in_chans, 2 * w, 1)
        blocks: list[nn.Module] = [nn.AvgPool2d(2)]
        cin = 2 * w
        for width, pool_after in ((w, False), (w, True), (w // 2, False), (w // 2, True)):
            block = InceptionBlock(cin, width)
            blocks.append(block)
            cin = block.out_channels
            if pool_after:
                blocks.append(nn.AvgPool2d(2))
        last = InceptionBlock(cin, w // 4, with_5x5=False)
        blocks.append(last)
        self.blocks = nn.Sequential(*blocks)
        side = cfg.image_size // 8
        self.mlp = nn.Sequential(
            nn.Flatten(),
            nn.Linear(last.out_channels * side * side, cfg.branch_dim),
            nn.ReLU(inplace=True),
            nn.Linear(cfg.branch_dim, cfg.branch_dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # channels_last lets oneDNN run these many small convolutions 2-3x faster on CPU
        # (measured: 0.79 s -> 0.29 s per 256 samples, 1 thread); the result is the same.
        x = x.contiguous(memory_format=torch.channels_last)
        return self.mlp(self.blocks(self.stem(x)))


class Attention(nn.Module):
    """Multi-head self-attention on ``scaled_dot_product_attention`` (fused where available)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class ParallelConv(nn.Module):
    """Depthwise 3x3 convolution over the patch-token grid; the class token gets nothing."""

    def __init__(self, dim: int, grid: int) -> None:
        super().__init__()
        self.grid = grid
        self.conv = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, d = x.shape
        patches = x[:, 1:].transpose(1, 2).reshape(b, d, self.grid, self.grid)
        local = F.gelu(self.conv(patches)).flatten(2).transpose(1, 2)
        return torch.cat([x.new_zeros(b, 1, d), local], dim=1)


class Block(nn.Module):
    """Pre-norm transformer block with the parallel convolution module beside attention."""

    def __init__(self, cfg: AstroMAEConfig) -> None:
        super().__init__()
        d = cfg.embed_dim
        self.norm1 = nn.LayerNorm(d, eps=1e-6)
        self.attn = Attention(d, cfg.num_heads)
        self.conv = ParallelConv(d, cfg.grid) if cfg.parallel_conv else None
        self.norm2 = nn.LayerNorm(d, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(d, cfg.mlp_dim), nn.GELU(), nn.Linear(cfg.mlp_dim, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.attn(h) + (self.conv(h) if self.conv is not None else 0)
        return x + self.mlp(self.norm2(x))


class ViTEncoder(nn.Module):
    """Patch embedding, class token, learned positions, blocks; returns the branch features."""

    def __init__(self, cfg: AstroMAEConfig) -> None:
        super().__init__()
        d = cfg.embed_dim
        self.patch_embed = nn.Conv2d(cfg.in_chans, d, cfg.patch_size, stride=cfg.patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.grid * cfg.grid + 1, d))
        self.blocks = nn.Sequential(*(Block(cfg) for _ in range(cfg.depth)))
        self.norm = nn.LayerNorm(d, eps=1e-6)
        self.proj = nn.Linear(d, d)
        self.mlp = nn.Sequential(
            nn.Linear(d, cfg.branch_dim),
            nn.ReLU(inplace=True),
            nn.Linear(cfg.branch_dim, cfg.branch_dim),
        )
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.patch_embed(x).flatten(2).transpose(1, 2)
        cls = self.cls_token.expand(tokens.shape[0], -1, -1)
        tokens = self.blocks(torch.cat([cls, tokens], dim=1) + self.pos_embed)
        pooled = self.norm(tokens[:, 1:].mean(dim=1))  # global pool without the class token
        return self.mlp(self.proj(pooled))


class AstroMAE(nn.Module):
    """AstroMAE-class photo-z regressor: ``model(images, mags) -> z``.

    Parameters
    ----------
    config
        A preset name (``"astromae"``, ``"small"``, ``"tiny"``), a dict or an
        :class:`AstroMAEConfig`.

    Notes
    -----
    ``images`` is ``(B, in_chans, image_size, image_size)`` raw flux and ``mags`` is
    ``(B, in_chans)``; both are normalised inside with the ``*_loc``/``*_scale`` buffers, which
    :meth:`set_normalization` fills from training data. The output is ``(B,)`` redshifts.

    Under ``torch.autocast`` (bf16/fp16, :mod:`astrokit.models.precision`) only the parts
    named in :attr:`reduced_precision_parts` run in the reduced precision; the others run in
    fp32 with autocast switched off. The default, ``("vit",)``, runs the ViT encoder --
    186 of the 217 MFLOP per sample of the full configuration -- in bf16 and keeps the
    Inception branch, the magnitude block and the head in fp32. Measured on the trained demo
    model over its 2,000-galaxy test survey (``benchmarks/precision.py``,
    ``parts_parity_on_demo_model``): bf16 everywhere moved redshifts by up to 8.5e-3 (median
    9.3e-4); the Inception branch, the magnitude block or the head in bf16 next to the ViT, by
    5.4e-3, 6.5e-3 and 8.5e-4; the ViT alone, by 6.7e-6 -- far inside the parity guard's 1e-3.
    The price: on one thread the full model ran 1.41-1.57x faster than fp32 this way and
    1.66-2.07x with everything in bf16 (same benchmark, two runs at load 3).
    """

    #: Names of the parts (``vit``, ``inception``, ``magnitudes``, ``head``) that run in the
    #: autocast precision; every other part is computed in fp32. Set on an instance to change.
    reduced_precision_parts: tuple[str, ...] = ("vit",)
    #: Set by :meth:`for_inference` to the reduced dtype the parts above hold their weights in.
    weights_dtype: torch.dtype | None = None

    def __init__(self, config: str | AstroMAEConfig | dict[str, Any] = "astromae") -> None:
        super().__init__()
        self.config = get_config(config)
        cfg = self.config
        self.vit = ViTEncoder(cfg)
        self.inception = InceptionBranch(cfg)
        mag_layers: list[nn.Module] = [nn.Linear(cfg.in_chans, cfg.mag_dim)]
        for _ in range(cfg.mag_layers - 1):
            mag_layers += [nn.ReLU(inplace=True), nn.Linear(cfg.mag_dim, cfg.mag_dim)]
        self.magnitudes = nn.Sequential(*mag_layers)
        self.head = nn.Sequential(
            nn.Linear(2 * cfg.branch_dim + cfg.mag_dim, cfg.head_dim),
            nn.ReLU(inplace=True),
            nn.Linear(cfg.head_dim, 1),
        )
        c = cfg.in_chans
        self.register_buffer("image_loc", torch.zeros(c))
        self.register_buffer("image_scale", torch.ones(c))
        self.register_buffer("mag_loc", torch.zeros(c))
        self.register_buffer("mag_scale", torch.ones(c))
        self.register_buffer("z_loc", torch.zeros(()))
        self.register_buffer("z_scale", torch.ones(()))

    @property
    def head_features(self) -> int:
        """Width of the fused feature vector fed to the head (3216 for AstroMAE)."""
        return self.head[0].in_features

    @torch.no_grad()
    def set_normalization(
        self,
        images: torch.Tensor,
        mags: torch.Tensor,
        z: torch.Tensor,
    ) -> None:
        """Fit the input/output normalisation buffers on (a sample of) training data.

        Robust statistics (median and 1.4826 x MAD) so a few bright or NaN pixels do not
        dominate; NaNs are ignored.
        """

        def robust(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            med = torch.nanmedian(x, dim=0).values
            mad = torch.nanmedian((x - med).abs(), dim=0).values * 1.4826
            return med, torch.clamp(mad, min=1e-6)

        pix = images.transpose(0, 1).reshape(images.shape[1], -1).T  # (B*H*W, C)
        self.image_loc.copy_(robust(pix)[0])
        self.image_scale.copy_(robust(pix)[1])
        mloc, mscale = robust(mags)
        self.mag_loc.copy_(mloc)
        self.mag_scale.copy_(mscale)
        known = z[~torch.isnan(z)]
        self.z_loc.copy_(known.mean())
        self.z_scale.copy_(torch.clamp(known.std(), min=1e-3))

    def forward(self, images: torch.Tensor, mags: torch.Tensor) -> torch.Tensor:
        """Predict redshifts ``(B,)`` from raw cutouts ``(B,C,H,W)`` and magnitudes ``(B,C)``."""
        x = (images - self.image_loc[:, None, None]) / self.image_scale[:, None, None]
        # asinh keeps faint structure linear and compresses bright cores (astronomy's usual
        # stretch), so a few very bright pixels cannot saturate the first layers.
        x = torch.asinh(x)
        m = (mags - self.mag_loc) / self.mag_scale
        features = torch.cat(
            [self._part("vit", x), self._part("inception", x), self._part("magnitudes", m)],
            dim=1,
        )
        return self._part("head", features).squeeze(1).float() * self.z_scale + self.z_loc

    @torch.no_grad()
    def for_inference(self, dtype: torch.dtype = torch.float32) -> AstroMAE:
        """A frozen copy prepared to predict (never to train), its reduced parts in ``dtype``.

        Two things a plain ``model(x, m)`` loop repeats on every batch are done once here:

        * each batch norm of the Inception branch is folded into the convolution before it
          (torch's ``fuse_conv_bn_eval``: the same affine map, one pass over the activations
          fewer);
        * for a reduced ``dtype`` (bf16, fp16) the parts in :attr:`reduced_precision_parts`
          hold their weights in it and run on tensors of it with autocast off, instead of
          autocast casting every weight and activation again on every call. Their layer norms
          and softmax then also run in that dtype: the parity guard
          (:mod:`astrokit.models.precision`) measures the result against fp32 before a run
          uses it.

        The other parts stay fp32 whatever autocast says, as in :meth:`_part`.
        """
        ready = copy.deepcopy(self).eval().requires_grad_(False)
        for module in ready.modules():
            if isinstance(module, _ConvBNReLU):
                module.fold_batch_norm()
        if dtype != torch.float32:
            for name in ready.reduced_precision_parts:
                getattr(ready, name).to(dtype)
            ready.weights_dtype = dtype
        return ready

    def _part(self, name: str, x: torch.Tensor) -> torch.Tensor:
        """Run sub-module ``name``, in fp32 unless autocast is on and it may use it."""
        module = getattr(self, name)
        device = x.device.type
        if self.weights_dtype is not None and name in self.reduced_precision_parts:
            with torch.autocast(device_type=device, enabled=False):
                return module(x.to(self.weights_dtype)).float()
        if name in self.reduced_precision_parts or not torch.is_autocast_enabled(device):
            return module(x)
        with torch.autocast(device_type=device, enabled=False):
            return module(x.float())


def count_parameters(model: nn.Module) -> int:
    """Number of trainable and frozen parameters (buffers excluded)."""
    return sum(p.numel() for p in model.parameters())


def count_flops(model: AstroMAE, batch: int = 1) -> int:
    """FLOPs of one forward pass per sample, counted by ``torch.utils.flop_counter``.

    Counts matrix multiplies and convolutions (2 FLOPs per multiply-add), which is where
    practically all of the work is; elementwise ops are ignored, as is usual.
    """
    from torch.utils.flop_counter import FlopCounterMode

    cfg = model.config
    param = next(model.parameters())
    images = torch.zeros(
        batch, cfg.in_chans, cfg.image_size, cfg.image_size, device=param.device, dtype=param.dtype
    )
    mags = torch.zeros(batch, cfg.in_chans, device=param.device, dtype=param.dtype)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(images, mags)
    finally:
        model.train(was_training)
    return counter.get_total_flops() // batch
