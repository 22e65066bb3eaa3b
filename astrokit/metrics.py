"""Photometric-redshift quality metrics (Pasquet et al. 2019 conventions).

``delta_z = (z_pred - z_true) / (1 + z_true)`` is the normalised residual. From it:
``sigma_mad = 1.4826 * median(|delta_z - median(delta_z)|)`` (a robust scatter),
``bias = mean(delta_z)``, ``outlier_fraction = mean(|delta_z| > 0.05)``; ``mse`` and ``mae``
are on the raw residual ``z_pred - z_true`` as in AstroMAE's tables.

For predicted distributions p(z) (the catalogue models, :mod:`astrokit.models.photometry`):
the coverage of the 68 % interval, the PIT histogram and the CRPS, as LSST DESC's RAIL
evaluates photo-z PDFs.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from astrokit.errors import UserError

__all__ = [
    "CENTRAL_68",
    "OUTLIER_THRESHOLD",
    "MetricsError",
    "crps_gaussian_mixture",
    "delta_z",
    "gaussian_mixture_cdf",
    "interval_coverage",
    "photoz_metrics",
    "pit_histogram",
    "uncertainty_metrics",
]

#: |delta_z| above which a prediction counts as a catastrophic outlier.
OUTLIER_THRESHOLD = 0.05


class MetricsError(UserError, ValueError):
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


# -- uncertainties: coverage, PIT and CRPS (as RAIL / Polsterer et al. 2016 judge p(z)) ------

#: Two-sided probability of the "68 %" interval (+-1 sigma of a Gaussian).
CENTRAL_68 = 0.6826894921370859


def _finite_pairs(*arrays: np.ndarray, names: tuple[str, ...]) -> tuple[np.ndarray, ...]:
    arrs = [np.asarray(a, dtype=np.float64).ravel() for a in arrays]
    for name, arr in zip(names[1:], arrs[1:], strict=True):
        if arr.shape != arrs[0].shape:
            raise MetricsError(f"{names[0]} has {arrs[0].size} values but {name} has {arr.size}")
    return tuple(arrs)


def interval_coverage(z_lo: np.ndarray, z_hi: np.ndarray, z_true: np.ndarray) -> float:
    """Fraction of rows with ``z_lo <= z_true <= z_hi`` (rows with a non-finite value excluded).

    A calibrated 68 % interval covers 0.68 of the true redshifts.

    Raises
    ------
    MetricsError
        Shapes differ, or no row has all three values finite.
    """
    lo, hi, zt = _finite_pairs(z_lo, z_hi, z_true, names=("z_lo", "z_hi", "z_true"))
    ok = np.isfinite(lo) & np.isfinite(hi) & np.isfinite(zt)
    if not ok.any():
        raise MetricsError("no row has a finite interval and a finite true redshift")
    return float(np.mean((lo[ok] <= zt[ok]) & (zt[ok] <= hi[ok])))


def pit_histogram(pit: np.ndarray, *, bins: int = 10) -> dict[str, Any]:
    """Histogram of probability integral transform values ``PIT = CDF_i(z_true,i)``.

    For calibrated p(z) the PIT values are uniform on [0, 1]: a U shape means too narrow
    distributions (over-confident), a hump too wide ones, a slope a bias.

    Parameters
    ----------
    pit : array_like
        PIT values in [0, 1]; non-finite ones are ignored.
    bins : int
        Number of equal-width bins on [0, 1] (default 10).

    Returns
    -------
    dict
        ``edges`` (bins + 1 floats), ``counts`` (ints), ``density`` (counts / (n / bins), so 1.0
        everywhere for a perfectly uniform PIT), ``n``, ``ks`` (Kolmogorov-Smirnov distance
        to the uniform distribution) and ``outside_0.01_0.99`` (fraction of PIT values below
        0.01 or above 0.99: true redshifts in the far tails, i.e. catastrophic p(z) misses;
        0.02 when calibrated).

    Raises
    ------
    MetricsError
        ``bins`` < 1, a PIT value outside [0, 1], or no finite value.
    """
    if int(bins) < 1:
        raise MetricsError(f"bins must be >= 1, got {bins}")
    values = np.asarray(pit, dtype=np.float64).ravel()
    values = values[np.isfinite(values)]
    if values.size == 0:
        raise MetricsError("no finite PIT value")
    if values.min() < 0.0 or values.max() > 1.0:
        bad = values[(values < 0.0) | (values > 1.0)][0]
        raise MetricsError(f"PIT values must be in [0, 1], got {bad!r}")
    edges = np.linspace(0.0, 1.0, int(bins) + 1)
    counts, _ = np.histogram(values, bins=edges)
    srt = np.sort(values)
    n = srt.size
    ks = max(np.max(np.arange(1, n + 1) / n - srt), np.max(srt - np.arange(n) / n))
    return {
        "edges": edges.tolist(),
        "counts": counts.astype(int).tolist(),
        "density": (counts * bins / n).tolist(),
        "n": int(n),
        "ks": float(ks),
        "outside_0.01_0.99": float(np.mean((values < 0.01) | (values > 0.99))),
    }


def _norm_cdf(x: np.ndarray) -> np.ndarray:
    from scipy.special import ndtr

    return ndtr(x)


def _a_term(mu: np.ndarray, var: np.ndarray) -> np.ndarray:
    """``E|X|`` for ``X ~ N(mu, var)``: ``2 s phi(mu/s) + mu (2 Phi(mu/s) - 1)``."""
    s = np.sqrt(var)
    with np.errstate(divide="ignore", invalid="ignore"):
        u = np.where(s > 0, mu / np.where(s > 0, s, 1.0), 0.0)
    phi = np.exp(-0.5 * u**2) / math.sqrt(2.0 * math.pi)
    out = 2.0 * s * phi + mu * (2.0 * _norm_cdf(u) - 1.0)
    return np.where(s > 0, out, np.abs(mu))


def gaussian_mixture_cdf(
    weights: np.ndarray, means: np.ndarray, sigmas: np.ndarray, z: np.ndarray
) -> np.ndarray:
    """CDF of per-row Gaussian mixtures at ``z``.

    Parameters
    ----------
    weights, means, sigmas : array_like, shape (n, k)
        Mixture components per row (weights summing to 1, sigmas > 0).
    z : array_like, shape (n,) or (n, m)
        Where to evaluate each row's CDF (one or ``m`` points per row).

    Returns
    -------
    numpy.ndarray
        Shape of ``z``.
    """
    w = np.asarray(weights, dtype=np.float64)
    mu = np.asarray(means, dtype=np.float64)
    sd = np.asarray(sigmas, dtype=np.float64)
    zz = np.asarray(z, dtype=np.float64)
    if w.shape != mu.shape or w.shape != sd.shape or w.ndim != 2:
        raise MetricsError(
            f"weights, means and sigmas must share one (n, k) shape; got {w.shape}, "
            f"{mu.shape}, {sd.shape}"
        )
    squeeze = zz.ndim == 1
    z2 = zz[:, None] if squeeze else zz
    if z2.shape[0] != w.shape[0]:
        raise MetricsError(f"z has {z2.shape[0]} rows but the mixtures have {w.shape[0]}")
    # Weights from a float32 softmax sum to 1 only within ~1e-7, which put CDFs far in the
    # upper tail above 1 (a PIT of 1.00000004 failed a training run): renormalise in float64,
    # and keep the rounding of the sum inside [0, 1].
    w = w / w.sum(axis=1, keepdims=True)
    cdf = (w[:, None, :] * _norm_cdf((z2[:, :, None] - mu[:, None, :]) / sd[:, None, :])).sum(-1)
    cdf = np.clip(cdf, 0.0, 1.0)
    return cdf[:, 0] if squeeze else cdf


def crps_gaussian_mixture(
    weights: np.ndarray, means: np.ndarray, sigmas: np.ndarray, z_true: np.ndarray
) -> np.ndarray:
    """Continuous ranked probability score of per-row Gaussian mixtures, in closed form.

    ``CRPS(F, y) = E|X - y| - E|X - X'| / 2`` (Gneiting & Raftery 2007) with, for a mixture,
    ``E|X - y| = sum_i w_i A(mu_i - y, s_i^2)`` and ``E|X - X'| = sum_ij w_i w_j
    A(mu_i - mu_j, s_i^2 + s_j^2)``, ``A(m, v) = E|N(m, v)|`` (Grimit et al. 2006). It is in
    redshift units, lower is better, and reduces to ``|z_pred - z_true|`` for a point
    prediction.

    Returns
    -------
    numpy.ndarray, shape (n,)
        NaN where ``z_true`` is not finite.
    """
    w = np.asarray(weights, dtype=np.float64)
    mu = np.asarray(means, dtype=np.float64)
    sd = np.asarray(sigmas, dtype=np.float64)
    y = np.asarray(z_true, dtype=np.float64).ravel()
    if w.shape != mu.shape or w.shape != sd.shape or w.ndim != 2 or w.shape[0] != y.size:
        raise MetricsError(
            f"expected weights/means/sigmas of shape (n, k) and z_true of n; got {w.shape}, "
            f"{mu.shape}, {sd.shape} and {y.shape}"
        )
    first = (w * _a_term(mu - y[:, None], sd**2)).sum(1)
    pair = _a_term(mu[:, :, None] - mu[:, None, :], sd[:, :, None] ** 2 + sd[:, None, :] ** 2)
    second = 0.5 * (w[:, :, None] * w[:, None, :] * pair).sum((1, 2))
    out = first - second
    out[~np.isfinite(y)] = np.nan
    return out


def uncertainty_metrics(
    z_lo: np.ndarray,
    z_hi: np.ndarray,
    z_true: np.ndarray,
    *,
    pit: np.ndarray | None = None,
    crps: np.ndarray | None = None,
    bins: int = 10,
) -> dict[str, Any]:
    """Summary of predicted uncertainties over rows with a known redshift.

    Returns
    -------
    dict
        ``coverage_68`` (:func:`interval_coverage`), ``interval_width_median`` (median of
        ``(z_hi - z_lo) / 2 / (1 + z_true)``, comparable to sigma_MAD), and when given,
        ``crps_mean`` / ``crps_median`` and ``pit`` (:func:`pit_histogram`).
    """
    lo, hi, zt = _finite_pairs(z_lo, z_hi, z_true, names=("z_lo", "z_hi", "z_true"))
    ok = np.isfinite(lo) & np.isfinite(hi) & np.isfinite(zt)
    out: dict[str, Any] = {
        "n": int(ok.sum()),
        "coverage_68": interval_coverage(lo, hi, zt),
        "interval_width_median": float(np.median((hi[ok] - lo[ok]) / 2.0 / (1.0 + zt[ok]))),
    }
    if crps is not None:
        c = np.asarray(crps, dtype=np.float64).ravel()
        c = c[np.isfinite(c)]
        if c.size:
            out["crps_mean"] = float(c.mean())
            out["crps_median"] = float(np.median(c))
    if pit is not None:
        p = np.asarray(pit, dtype=np.float64).ravel()
        if np.isfinite(p).any():
            out["pit"] = pit_histogram(p, bins=bins)
    return out
