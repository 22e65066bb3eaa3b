"""Running the photo-z model on arrays: the input policy and batched prediction.

Shared by training (validation passes), in-process inference and the Dask workers, so that
every path screens inputs and batches the same way.

Input policy
------------
A row is *bad* -- reported, never silently predicted -- when more than ``max_nan_fraction``
of its pixels are NaN/inf (default 5 %, i.e. more than ~256 of 5,120 values), or any of its
5 magnitudes is not finite. Rows with fewer bad pixels are predicted after filling those
pixels with the median of the finite pixels of the same band of the same cutout (a local
background estimate), which is what a survey pipeline's interpolation over masked pixels
approximates.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch is imported where it is used: the client side of a run needs none
    import torch

    from astrokit.models.precision import PrecisionChoice

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_MAX_NAN_FRACTION",
    "Screened",
    "default_batch_size",
    "predict_arrays",
    "screen_inputs",
]

#: Default largest fraction of non-finite pixels a cutout may have and still be predicted.
DEFAULT_MAX_NAN_FRACTION = 0.05

#: Status strings used in prediction files and reports.
OK = "ok"
BAD_PIXELS = "bad_pixels"
BAD_MAGS = "bad_mags"
BAD_FILE = "bad_file"


@dataclass
class Screened:
    """Result of :func:`screen_inputs`.

    Attributes
    ----------
    images, mags : np.ndarray
        Inputs with tolerated NaNs filled (bad rows left as they were).
    status : np.ndarray
        Per-row ``"ok"``, ``"bad_pixels"`` or ``"bad_mags"``.
    nan_fraction : np.ndarray
        Per-row fraction of non-finite pixels.
    """

    images: np.ndarray
    mags: np.ndarray
    status: np.ndarray
    nan_fraction: np.ndarray

    @property
    def ok(self) -> np.ndarray:
        """Boolean mask of rows to predict."""
        return self.status == OK


def screen_inputs(
    images: np.ndarray, mags: np.ndarray, *, max_nan_fraction: float = DEFAULT_MAX_NAN_FRACTION
) -> Screened:
    """Apply the input policy (module docstring) to a batch of rows.

    Parameters
    ----------
    images : np.ndarray
        ``(N, C, H, W)`` float32 cutouts.
    mags : np.ndarray
        ``(N, C)`` magnitudes.
    max_nan_fraction : float
        Largest tolerated fraction of non-finite pixels per row, in [0, 1].
    """
    if not 0.0 <= max_nan_fraction <= 1.0:
        raise ValueError(f"max_nan_fraction must be in [0, 1], got {max_nan_fraction}")
    images = np.asarray(images, dtype=np.float32)
    mags = np.asarray(mags, dtype=np.float32)
    n = images.shape[0]
    bad_pix = ~np.isfinite(images)
    frac = bad_pix.reshape(n, -1).mean(axis=1) if n else np.zeros(0)
    status = np.full(n, OK, dtype=object)
    status[~np.isfinite(mags).all(axis=1)] = BAD_MAGS
    status[frac > max_nan_fraction] = BAD_PIXELS
    fill_rows = np.flatnonzero((frac > 0) & (status == OK))
    if fill_rows.size:
        images = images.copy()
        for i in fill_rows:
            for c in range(images.shape[1]):
                band = images[i, c]
                bad = ~np.isfinite(band)
                if bad.any():
                    band[bad] = np.median(band[~bad]) if (~bad).any() else 0.0
    return Screened(images=images, mags=mags, status=status.astype(str), nan_fraction=frac)


def default_batch_size(device: torch.device) -> int:
    """Batch size that keeps the device busy without wasting memory.

    On CPU, 256 samples of a ViT with 17 tokens are big enough for efficient GEMMs and small
    enough to stay in cache-friendly sizes; on a GPU larger batches are needed to fill it.
    """
    return 1024 if device.type == "cuda" else 256


def predict_arrays(
    model: torch.nn.Module,
    images: np.ndarray,
    mags: np.ndarray,
    *,
    batch_size: int | None = None,
    device: torch.device | None = None,
    precision: PrecisionChoice | None = None,
) -> np.ndarray:
    """Predict redshifts for already-screened rows, batch by batch, without autograd.

    Returns a float32 array of ``len(images)`` predictions. The model is not moved; inputs go
    to the model's device (or ``device``). ``precision`` (from
    :func:`astrokit.models.precision.resolve_precision`) runs the forward passes under its
    autocast; None or fp32 runs them in float32.
    """
    import torch

    from astrokit.models.precision import autocast

    if device is None:
        device = next(model.parameters()).device
    if batch_size is None:
        batch_size = default_batch_size(device)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    n = len(images)
    out = np.empty(n, dtype=np.float32)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), autocast(precision):
            for start in range(0, n, batch_size):
                stop = min(n, start + batch_size)
                x = torch.from_numpy(np.ascontiguousarray(images[start:stop])).to(device)
                m = torch.from_numpy(np.ascontiguousarray(mags[start:stop])).to(device)
                out[start:stop] = model(x, m).float().cpu().numpy()
    finally:
        model.train(was_training)
    return out
