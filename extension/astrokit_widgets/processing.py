"""Pure array operations behind the spectrum viewer: smoothing, uncertainties, frames, units.

Kept apart from the widget so each step can be tested against literal values. All functions
take and return plain numpy arrays; masked pixels are given as a boolean array (True = bad).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import astropy.units as u
import numpy as np

SmoothingKind = Literal["none", "box", "gaussian"]

#: Wavelength units offered by the viewer: label -> astropy unit.
WAVELENGTH_UNITS: dict[str, u.UnitBase] = {
    "Å": u.AA,
    "nm": u.nm,
    "µm": u.micron,
}


@dataclass
class Trace:
    """What the viewer draws for one spectrum (after unit, frame, crop and smoothing).

    Attributes
    ----------
    x : numpy.ndarray
        Wavelengths in the display unit and frame.
    y : numpy.ndarray
        Flux, NaN where a pixel is hidden (masked and ``show_masked=False``) or undefined.
    sigma : numpy.ndarray
        1-sigma uncertainty, NaN where unknown (zero or missing inverse variance).
    mask : numpy.ndarray
        True for pixels flagged bad in the input.
    """

    x: np.ndarray
    y: np.ndarray
    sigma: np.ndarray
    mask: np.ndarray


def sigma_from_ivar(ivar: np.ndarray) -> np.ndarray:
    """1-sigma uncertainty from an inverse variance; NaN where ``ivar <= 0`` or not finite."""
    ivar = np.asarray(ivar, dtype=np.float64)
    out = np.full(ivar.shape, np.nan)
    good = np.isfinite(ivar) & (ivar > 0)
    out[good] = 1.0 / np.sqrt(ivar[good])
    return out


def smoothing_kernel(kind: SmoothingKind, width: float) -> np.ndarray:
    """Normalised convolution kernel.

    Parameters
    ----------
    kind : {"none", "box", "gaussian"}
        ``box``: a top hat ``width`` pixels wide (rounded up to an odd number so the kernel
        is centred and does not shift features). ``gaussian``: standard deviation ``width``
        pixels, truncated at ±4 sigma.
    width : float
        Width in pixels; must be positive unless ``kind == "none"``.

    Returns
    -------
    numpy.ndarray
        Kernel summing to one; ``[1.0]`` for ``none``.
    """
    if kind == "none":
        return np.ones(1)
    if not np.isfinite(width) or width <= 0:
        raise ValueError(f"smoothing width must be a positive number of pixels, got {width!r}")
    if kind == "box":
        n = int(np.ceil(width))
        n += 1 - n % 2
        return np.full(n, 1.0 / n)
    if kind == "gaussian":
        half = max(1, int(np.ceil(4.0 * width)))
        offsets = np.arange(-half, half + 1, dtype=np.float64)
        kernel = np.exp(-0.5 * (offsets / width) ** 2)
        return kernel / kernel.sum()
    raise ValueError(f"smoothing must be 'none', 'box' or 'gaussian', got {kind!r}")


def smooth(
    flux: np.ndarray,
    sigma: np.ndarray,
    bad: np.ndarray,
    kind: SmoothingKind,
    width: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Smooth flux and propagate its uncertainty, ignoring bad pixels.

    A normalised convolution: bad (masked or non-finite) pixels get zero weight and the
    kernel is renormalised over the good ones, so a masked cosmic ray does not bleed into
    its neighbours and the edges are not pulled towards zero. The variance is propagated
    as ``sum(k_i^2 var_i) / (sum k_i)^2`` over the good pixels.

    Parameters
    ----------
    flux, sigma : numpy.ndarray
        1-D flux and 1-sigma uncertainty (NaN = unknown).
    bad : numpy.ndarray of bool
        Pixels to leave out of the average.
    kind, width
        See :func:`smoothing_kernel`.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        Smoothed flux and its uncertainty; NaN where no good pixel lies under the kernel.
    """
    flux = np.asarray(flux, dtype=np.float64)
    sigma = np.asarray(sigma, dtype=np.float64)
    kernel = smoothing_kernel(kind, width)
    good = ~np.asarray(bad, dtype=bool) & np.isfinite(flux)
    if kernel.size == 1:
        return np.where(good, flux, np.nan), np.where(good, sigma, np.nan)
    weights = good.astype(np.float64)
    norm = np.convolve(weights, kernel, mode="same")
    total = np.convolve(np.where(good, flux, 0.0), kernel, mode="same")
    known = good & np.isfinite(sigma)
    var = np.convolve(np.where(known, sigma**2, 0.0), kernel**2, mode="same")
    var_norm = np.convolve(known.astype(np.float64), kernel, mode="same")
    with np.errstate(invalid="ignore", divide="ignore"):
        out_flux = np.where(norm > 1e-12, total / norm, np.nan)
        out_sigma = np.where(var_norm > 1e-12, np.sqrt(var) / var_norm, np.nan)
    return out_flux, out_sigma


def to_display_wavelength(
    wavelength_aa: np.ndarray, *, unit: str, frame: str, z: float
) -> np.ndarray:
    """Observed-frame Angstrom -> display unit and frame (rest frame divides by 1 + z)."""
    if unit not in WAVELENGTH_UNITS:
        raise ValueError(f"unit must be one of {sorted(WAVELENGTH_UNITS)}, got {unit!r}")
    if frame not in ("observed", "rest"):
        raise ValueError(f"frame must be 'observed' or 'rest', got {frame!r}")
    if frame == "rest" and z <= -1.0:
        raise ValueError(f"redshift must be > -1 to move to the rest frame, got {z!r}")
    x = np.asarray(wavelength_aa, dtype=np.float64)
    if frame == "rest":
        x = x / (1.0 + z)
    return (x * u.AA).to_value(WAVELENGTH_UNITS[unit])


def from_display_wavelength(x: np.ndarray, *, unit: str, frame: str, z: float) -> np.ndarray:
    """Inverse of :func:`to_display_wavelength`: display unit and frame -> observed Angstrom."""
    if unit not in WAVELENGTH_UNITS:
        raise ValueError(f"unit must be one of {sorted(WAVELENGTH_UNITS)}, got {unit!r}")
    aa = (np.asarray(x, dtype=np.float64) * WAVELENGTH_UNITS[unit]).to_value(u.AA)
    return aa * (1.0 + z) if frame == "rest" else aa


def build_trace(
    wavelength_aa: np.ndarray,
    flux: np.ndarray,
    sigma: np.ndarray,
    mask: np.ndarray,
    *,
    unit: str = "Å",
    frame: str = "observed",
    z: float = 0.0,
    crop_aa: tuple[float | None, float | None] = (None, None),
    smoothing: SmoothingKind = "none",
    width: float = 1.0,
    show_masked: bool = True,
) -> Trace:
    """Apply crop (observed Angstrom), smoothing, masking, unit and frame to one spectrum.

    Cropping happens after smoothing so the kernel sees the pixels just outside the range
    and the edges of a crop are not biased.
    """
    wavelength_aa = np.asarray(wavelength_aa, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool)
    flux = np.asarray(flux, dtype=np.float64)
    sigma = np.asarray(sigma, dtype=np.float64)
    if smoothing == "none":
        y = flux.copy()
        s = sigma.copy()
    else:
        y, s = smooth(flux, sigma, mask, smoothing, width)
        # Shown masked pixels keep a value (the smoothed neighbours') so they can be seen.
    if not show_masked:
        y = np.where(mask, np.nan, y)
        s = np.where(mask, np.nan, s)
    lo, hi = crop_aa
    keep = np.ones(wavelength_aa.shape, dtype=bool)
    if lo is not None:
        keep &= wavelength_aa >= lo
    if hi is not None:
        keep &= wavelength_aa <= hi
    x = to_display_wavelength(wavelength_aa[keep], unit=unit, frame=frame, z=z)
    return Trace(x=x, y=y[keep], sigma=s[keep], mask=mask[keep])
