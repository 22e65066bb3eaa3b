"""Photometry-only photo-z: a mixture density network on magnitudes, colours and errors.

:class:`PhotometryMDN` maps one catalogue row -- magnitudes in ``n_bands`` bands, the
``n_bands - 1`` adjacent colours and, when the catalogue has them, the magnitude errors (as
``log10`` errors) -- to a Gaussian mixture p(z) with ``components`` terms (Bishop 1994;
D'Isanto & Polsterer 2018 for photo-z). Inputs are standardised with training-set statistics
held as buffers, so a checkpoint is self-contained. Errors are *used*, not only passed
through: the network sees them as inputs and learns that faint, noisy rows have wider p(z).

:func:`summarise_mixture` turns the mixtures into what a catalogue needs: the median (the
point estimate ``z_pred``), the central 68 % interval (``z_lo``, ``z_hi``: 15.87th and
84.13th percentiles), the mean, and -- when the true redshift is known -- PIT and CRPS
(:mod:`astrokit.metrics`).

Checkpoints are the same kind of file as the image model's (:mod:`~astrokit.models.checkpoint`):
``torch.save`` of a dict with tensors and JSON-like values only (loaded with
``weights_only=True``), with ``"model": "photometry_mdn"`` and the catalogue columns the model
was trained on, so that inference can default to them.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from astrokit.errors import UserError

log = logging.getLogger(__name__)

__all__ = [
    "MODEL_NAME",
    "PhotometryCheckpoint",
    "PhotometryConfig",
    "PhotometryMDN",
    "load_photometry_checkpoint",
    "mixture_quantiles",
    "predict_mixture",
    "save_photometry_checkpoint",
    "summarise_mixture",
]

MODEL_NAME = "photometry_mdn"
FORMAT_VERSION = 1
#: Smallest component sigma, in standardised-z units (keeps the likelihood bounded).
MIN_SIGMA = 1e-3


class PhotometryModelError(UserError, ValueError):
    """A configuration or checkpoint that this code cannot build or use."""


@dataclass
class PhotometryConfig:
    """Shape of a :class:`PhotometryMDN`.

    Attributes
    ----------
    n_bands : int
        Number of magnitude columns (>= 2).
    use_errors : bool
        Whether magnitude errors are inputs.
    hidden : int
        Width of the hidden layers.
    layers : int
        Number of hidden layers.
    components : int
        Gaussians in the mixture.
    dropout : float
        Dropout after each hidden layer (0 disables).
    """

    n_bands: int = 5
    use_errors: bool = True
    hidden: int = 128
    layers: int = 3
    components: int = 5
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if int(self.n_bands) < 2:
            raise PhotometryModelError(f"n_bands must be >= 2, got {self.n_bands}")
        for name in ("hidden", "layers", "components"):
            if int(getattr(self, name)) < 1:
                raise PhotometryModelError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= float(self.dropout) < 1.0:
            raise PhotometryModelError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def n_features(self) -> int:
        """Inputs per row: magnitudes, colours and (optionally) log errors."""
        return 2 * self.n_bands - 1 + (self.n_bands if self.use_errors else 0)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def make_features(mags: np.ndarray, errors: np.ndarray | None, use_errors: bool) -> np.ndarray:
    """Feature matrix (float32): magnitudes, adjacent colours, ``log10`` errors.

    Raises
    ------
    PhotometryModelError
        The model uses errors but none are given, or shapes disagree.
    """
    mags = np.asarray(mags, dtype=np.float64)
    parts = [mags, mags[:, :-1] - mags[:, 1:]]
    if use_errors:
        if errors is None:
            raise PhotometryModelError(
                "this model was trained with magnitude errors; give the error columns "
                "(--errors / errors=...)"
            )
        errors = np.asarray(errors, dtype=np.float64)
        if errors.shape != mags.shape:
            raise PhotometryModelError(
                f"errors have shape {errors.shape} but magnitudes {mags.shape}"
            )
        parts.append(np.log10(np.maximum(errors, 1e-4)))
    return np.concatenate(parts, axis=1).astype(np.float32)


class PhotometryMDN(nn.Module):
    """MLP with a Gaussian-mixture head: features -> (weights, means, sigmas) of p(z).

    Parameters
    ----------
    config : PhotometryConfig or dict
    """

    def __init__(self, config: PhotometryConfig | dict | None = None) -> None:
        super().__init__()
        if config is None:
            config = PhotometryConfig()
        elif isinstance(config, dict):
            config = PhotometryConfig(**config)
        self.config = config
        width, layers = int(config.hidden), []
        n_in = config.n_features
        for _ in range(int(config.layers)):
            layers += [nn.Linear(n_in, width), nn.SiLU()]
            if config.dropout:
                layers.append(nn.Dropout(config.dropout))
            n_in = width
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(n_in, 3 * int(config.components))
        self.register_buffer("feat_mean", torch.zeros(config.n_features))
        self.register_buffer("feat_std", torch.ones(config.n_features))
        self.register_buffer("z_mean", torch.tensor(0.0))
        self.register_buffer("z_std", torch.tensor(1.0))

    def set_normalization(self, features: np.ndarray, z: np.ndarray) -> None:
        """Standardise inputs and z with these (training-set) statistics."""
        f = torch.as_tensor(np.asarray(features, dtype=np.float32))
        self.feat_mean.copy_(f.mean(0))
        self.feat_std.copy_(f.std(0).clamp_min(1e-6))
        zt = torch.as_tensor(np.asarray(z, dtype=np.float32))
        self.z_mean.fill_(float(zt.mean()))
        self.z_std.fill_(max(float(zt.std()), 1e-6))

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Log-weights, means and sigmas of the mixture in *standardised* z units."""
        h = self.body((features - self.feat_mean) / self.feat_std)
        logits, means, raw_sigma = self.head(h).chunk(3, dim=-1)
        log_w = torch.log_softmax(logits, dim=-1)
        sigmas = nn.functional.softplus(raw_sigma) + MIN_SIGMA
        return log_w, means, sigmas

    def nll(self, features: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Mean negative log-likelihood of ``z`` (standardised units, a constant aside)."""
        log_w, means, sigmas = self(features)
        t = ((z - self.z_mean) / self.z_std)[:, None]
        log_p = log_w - torch.log(sigmas) - 0.5 * ((t - means) / sigmas) ** 2
        return -torch.logsumexp(log_p, dim=-1).mean()

    @torch.no_grad()
    def mixture(self, features: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Weights, means and sigmas of p(z) in redshift units (float64 numpy, (n, k))."""
        log_w, means, sigmas = self(features)
        zs, zm = float(self.z_std), float(self.z_mean)
        return (
            log_w.exp().double().cpu().numpy(),
            (means.double() * zs + zm).cpu().numpy(),
            (sigmas.double() * zs).cpu().numpy(),
        )


def predict_mixture(
    model: PhotometryMDN,
    mags: np.ndarray,
    errors: np.ndarray | None,
    *,
    batch_size: int = 8192,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mixture parameters (weights, means, sigmas; each (n, k)) for rows of magnitudes."""
    feats = make_features(mags, errors, model.config.use_errors)
    model.eval()
    dev = next(model.parameters()).device
    k = int(model.config.components)
    out = [np.empty((len(feats), k)) for _ in range(3)]
    for s in range(0, len(feats), batch_size):
        w, m, sd = model.mixture(torch.from_numpy(feats[s : s + batch_size]).to(dev))
        for arr, val in zip(out, (w, m, sd), strict=True):
            arr[s : s + batch_size] = val
    return out[0], out[1], out[2]


def mixture_quantiles(
    weights: np.ndarray, means: np.ndarray, sigmas: np.ndarray, q: list[float]
) -> np.ndarray:
    """Quantiles ``q`` of each row's mixture by bisection on its CDF: shape (n, len(q))."""
    from astrokit.metrics import gaussian_mixture_cdf

    n = weights.shape[0]
    lo = np.min(means - 8 * sigmas, axis=1)[:, None].repeat(len(q), 1)
    hi = np.max(means + 8 * sigmas, axis=1)[:, None].repeat(len(q), 1)
    target = np.asarray(q, dtype=np.float64)[None, :].repeat(n, 0)
    # 34 halvings of a start interval ~1-2 wide leave ~1e-10: far below the float32 output
    for _ in range(34):
        mid = 0.5 * (lo + hi)
        below = gaussian_mixture_cdf(weights, means, sigmas, mid) < target
        lo = np.where(below, mid, lo)
        hi = np.where(below, hi, mid)
    return 0.5 * (lo + hi)


def summarise_mixture(
    weights: np.ndarray,
    means: np.ndarray,
    sigmas: np.ndarray,
    z_true: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Per-row p(z) summary: ``z_pred`` (median), ``z_lo``/``z_hi`` (central 68 %),
    ``z_mean``, and with ``z_true`` the ``pit`` and ``crps`` (NaN where z_true is unknown)."""
    from astrokit.metrics import CENTRAL_68, crps_gaussian_mixture, gaussian_mixture_cdf

    tail = (1.0 - CENTRAL_68) / 2.0
    qs = mixture_quantiles(weights, means, sigmas, [0.5, tail, 1.0 - tail])
    out = {
        "z_pred": qs[:, 0],
        "z_lo": qs[:, 1],
        "z_hi": qs[:, 2],
        "z_mean": (weights * means).sum(1),
    }
    n = weights.shape[0]
    out["pit"] = np.full(n, np.nan)
    out["crps"] = np.full(n, np.nan)
    if z_true is not None:
        zt = np.asarray(z_true, dtype=np.float64)
        known = np.isfinite(zt)
        if known.any():
            out["pit"][known] = gaussian_mixture_cdf(
                weights[known], means[known], sigmas[known], zt[known]
            )
            out["crps"][known] = crps_gaussian_mixture(
                weights[known], means[known], sigmas[known], zt[known]
            )
    return out


# -- checkpoints -----------------------------------------------------------------------------


@dataclass
class PhotometryCheckpoint:
    """A loaded photometry model with what was stored beside it."""

    model: PhotometryMDN
    config: PhotometryConfig
    columns: dict[str, Any]
    metrics: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    sha256: str = ""
    url: str = ""


def photometry_checkpoint_bytes(
    model: PhotometryMDN,
    *,
    columns: dict[str, Any],
    metrics: dict[str, Any] | None = None,
    meta: dict[str, Any] | None = None,
) -> bytes:
    from astrokit.models.checkpoint import model_bytes

    return model_bytes(
        MODEL_NAME,
        model,
        format_version=FORMAT_VERSION,
        metrics=metrics or {},
        meta=meta or {},
        columns=dict(columns),
    )


def save_photometry_checkpoint(
    model: PhotometryMDN,
    url: str,
    *,
    columns: dict[str, Any],
    metrics: dict[str, Any] | None = None,
    meta: dict[str, Any] | None = None,
    store: Any = None,
) -> str:
    """Write the model atomically to ``url``; returns the sha256 of the bytes written.

    ``columns`` is the :class:`~astrokit.catalogue.CatalogueSpec` (as a dict) it was trained on.
    """
    from astrokit.models.checkpoint import store_checkpoint

    data = photometry_checkpoint_bytes(model, columns=columns, metrics=metrics, meta=meta)
    return store_checkpoint(data, url, store, what="photometry checkpoint")


def parse_photometry_checkpoint(data: bytes, *, where: str = "checkpoint") -> PhotometryCheckpoint:
    """Build the model from checkpoint bytes (see :func:`load_photometry_checkpoint`)."""
    from astrokit.models.checkpoint import (
        CheckpointFormatError,
        CheckpointMismatchError,
        check_format_version,
        read_payload,
    )

    payload = read_payload(data, where)
    kind = payload.get("model") if isinstance(payload, dict) else None
    if kind != MODEL_NAME:
        raise CheckpointFormatError(
            f"{where}: a {kind or 'non-AstroKit'!s} checkpoint, not a photometry model "
            f"({MODEL_NAME!r}); catalogues need a model trained by "
            "`astrokit train CATALOGUE --bands ...`"
        )
    check_format_version(payload, where, FORMAT_VERSION)
    try:
        cfg = PhotometryConfig(**payload["config"])
    except (TypeError, PhotometryModelError) as exc:
        raise CheckpointFormatError(f"{where}: stored configuration is invalid: {exc}") from exc
    model = PhotometryMDN(cfg)
    expected = model.state_dict()
    state = payload["state_dict"]
    for key, tensor in expected.items():
        got = state.get(key)
        if not isinstance(got, torch.Tensor) or got.shape != tensor.shape:
            shape = tuple(got.shape) if isinstance(got, torch.Tensor) else "missing"
            raise CheckpointMismatchError(
                f"{where}: layer {key!r} is {shape} in the checkpoint but the stored "
                f"configuration expects {tuple(tensor.shape)}"
            )
    model.load_state_dict(state)
    model.eval()
    return PhotometryCheckpoint(
        model=model,
        config=cfg,
        columns=dict(payload.get("columns") or {}),
        metrics=dict(payload.get("metrics") or {}),
        meta=dict(payload.get("meta") or {}),
        sha256=hashlib.sha256(data).hexdigest(),
        url=where,
    )


def load_photometry_checkpoint(url: str, *, store: Any = None) -> PhotometryCheckpoint:
    """Load a checkpoint written by :func:`save_photometry_checkpoint` (on CPU).

    Raises
    ------
    astrokit.models.checkpoint.CheckpointFormatError
        Not a photometry checkpoint (e.g. an image model), or a newer format.
    astrokit.models.checkpoint.CheckpointMismatchError
        Weights that do not fit the stored configuration.
    astrokit.store.StoreNotFound
        No file at ``url``.
    """
    from astrokit.store import resolve

    st, full = resolve(url, store)
    return parse_photometry_checkpoint(st.read_bytes(full), where=full)
