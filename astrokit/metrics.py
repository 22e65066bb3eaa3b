"""Photometric-redshift quality metrics (Pasquet et al. 2019 conventions).

``delta_z = (z_pred - z_true) / (1 + z_true)`` is the normalised residual. From it:
``sigma_mad = 1.4826 * median(|delta_z - median(delta_z)|)`` (a robust scatter),
``bias = mean(delta_z)``, ``outlier_fraction = mean(|delta_z| > 0.05)``; ``mse`` and ``mae``
are on the raw residual ``z_pred - z_true`` as in AstroMAE's tables.
"""

from __future__ import annotations

import numpy as np

__all__ = ["OUTLIER_THRESHOLD", "MetricsError", "delta_z", "photoz_metrics"]

#: |delta_z| above which a prediction counts as a catastrophic outlier.
OUTLIER_THRESHOLD = 0.05


class MetricsError(ValueError):
    """Inputs to a metric are malformed (shape mismatch, no valid rows)."""


def delta_z(z_pred: np.ndarray, z_true: np.ndarray) -> np.ndarray:
    """Normalised residual ``(z_pred - z_true) / (1 + z_true)``."""
    z_pred = np.asarray(z_pred, dtype=np.float64)
    z_true = np.asarray(z_true, dtype=np.float64)
    if z_pred.shape != z_true.shape:
        raise MetricsError(f"z_pred has shape {z_pred.shape} but z_true has {z_true.shape}")
    return (z_pred - z_true) / (1.0 + z_true)


def photoz_metrics(
    z_pred: np.ndarray, z_true: np.ndarray, *, outlier_threshold: float = OUTLIER_THRESHOLD
) -> dict[str, float]:
    """Photo-z metrics over the rows where both values are finite.

    Parameters
    ----------
    z_pred, z_true : array_like
        Predicted and true redshifts, same shape.
    outlier_threshold : float
        |delta_z| above which a row is an outlier (default 0.05).

    Returns
    -------
    dict
        ``n`` (rows used), ``sigma_mad``, ``bias``, ``outlier_fraction``, ``mse``, ``mae``,
        ``delta_z_median``. Rows where either value is NaN/inf are excluded (and not counted).

    Raises
    ------
    MetricsError
        Shapes differ, or no row has both values finite.
    """
    z_pred = np.asarray(z_pred, dtype=np.float64).ravel()
    z_true = np.asarray(z_true, dtype=np.float64).ravel()
    if z_pred.shape != z_true.shape:
        raise MetricsError(f"z_pred has {z_pred.size} values but z_true has {z_true.size}")
    ok = np.isfinite(z_pred) & np.isfinite(z_true)
    if not ok.any():
        raise MetricsError("no row has both a finite prediction and a finite true redshift")
    zp, zt = z_pred[ok], z_true[ok]
    dz = delta_z(zp, zt)
    med = float(np.median(dz))
    resid = zp - zt
    return {
        "n": int(ok.sum()),
        "sigma_mad": float(1.4826 * np.median(np.abs(dz - med))),
        "bias": float(dz.mean()),
        "outlier_fraction": float(np.mean(np.abs(dz) > outlier_threshold)),
        "mse": float(np.mean(resid**2)),
        "mae": float(np.mean(np.abs(resid))),
        "delta_z_median": med,
    }
