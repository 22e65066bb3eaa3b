"""The one generator of synthetic 1-D spectra: classes, redshifts, continua, lines and noise.

Two recipes use it. The platform's synthetic survey (:func:`astrokit.survey.synth_spectra`)
describes galaxy and QSO-like classes in physical flux units, with survey artefacts on top
(sky lines, masks, bad columns). The active-learning task
(:func:`astrokit.active.synthetic.line_spectra`) pins its difficulty to a per-spectrum line
signal-to-noise. Both describe their classes as :class:`SpectrumClass` recipes and call
:func:`generate_spectra`; what differs between them is numbers, not code.

The model of one spectrum, observed on the grid ``wave`` at redshift ``z``::

    flux = continuum(wave, z) * max(1 + sum_k a_k * profile_k, 0.1) + noise

* lines come from :data:`astrokit.lines.SPECTRAL_LINES` (vacuum wavelengths), redshifted to
  ``rest * (1 + z)``; ``a_k = strength_k * line_scale`` (negative strengths are absorption,
  and no absorption removes more than 90 % of the continuum);
* each profile is a Gaussian of the feature's velocity width *averaged over each pixel*, as a
  spectrograph bins it, so a line narrower than a pixel keeps its flux, not its peak;
* the noise is Gaussian with ``sigma = median|flux| / continuum_snr``, times
  ``1 + 4 * sky`` where a sky profile is given.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from astrokit.lines import SpectralLine, find_line

__all__ = ["Feature", "SpectrumClass", "feature", "generate_spectra", "line_profiles"]

C_KMS = 299_792.458

#: ``continuum(wave, z, rng) -> (len(z), len(wave))``: the class's continuum on the observed
#: grid for spectra at redshifts ``z``, any positive scale (the recipe's brightness is applied
#: by the caller).
Continuum = Callable[[np.ndarray, np.ndarray, np.random.Generator], np.ndarray]


@dataclass(frozen=True)
class Feature:
    """One line of a class: which line, how strong relative to the continuum, how wide.

    ``strength`` multiplies the spectrum's ``line_scale`` to give the profile's peak as a
    fraction of the continuum (negative: absorption depth). ``width_kms`` is the Gaussian
    sigma.
    """

    line: SpectralLine
    strength: float
    width_kms: float


def feature(name: str, strength: float, width_kms: float, *, near: float | None = None) -> Feature:
    """A :class:`Feature` of the line called ``name`` (see :func:`astrokit.lines.find_line`)."""
    return Feature(find_line(name, near), float(strength), float(width_kms))


@dataclass(frozen=True)
class SpectrumClass:
    """A class of spectra: its name, redshift range, continuum and line features."""

    name: str
    z_range: tuple[float, float]
    continuum: Continuum
    features: tuple[Feature, ...] = ()


def line_profiles(
    wave: np.ndarray, z: np.ndarray, features: Sequence[Feature], amplitude: np.ndarray
) -> np.ndarray:
    """Sum of the features' pixel-averaged Gaussian profiles at redshifts ``z``.

    Parameters
    ----------
    wave : ndarray, shape (L,)
        Observed wavelengths (Angstrom, increasing), the pixel centres.
    z : ndarray, shape (n,)
    features : sequence of Feature
    amplitude : ndarray, shape (n, len(features))
        Peak of each feature in each spectrum (a unit-peak profile is scaled by it).

    Returns
    -------
    ndarray, shape (n, L)
    """
    from scipy.special import erf

    wave = np.asarray(wave, dtype=np.float64)
    n = len(z)
    out = np.zeros((n, wave.size))
    if n == 0 or not features:
        return out
    # pixel edges: geometric midpoints (exact for a log grid, close for any smooth one)
    edges = np.sqrt(wave[1:] * wave[:-1])
    lo = np.concatenate([[wave[0] ** 2 / edges[0]], edges])[None, :]
    hi = np.concatenate([edges, [wave[-1] ** 2 / edges[-1]]])[None, :]
    one_plus_z = (1.0 + np.asarray(z, dtype=np.float64))[:, None]
    for k, feat in enumerate(features):
        centre = feat.line.rest_wavelength * one_plus_z
        width = centre * feat.width_kms / C_KMS
        cdf_hi = erf((hi - centre) / (np.sqrt(2.0) * width))
        cdf_lo = erf((lo - centre) / (np.sqrt(2.0) * width))
        # the mean of a unit-peak Gaussian over each pixel
        mean = (cdf_hi - cdf_lo) * np.sqrt(np.pi / 2.0) * width / (hi - lo)
        out += amplitude[:, k : k + 1] * mean
    return out


def generate_spectra(
    n: int,
    rng: np.random.Generator,
    wave: np.ndarray,
    classes: Sequence[SpectrumClass],
    fractions: Sequence[float],
    *,
    line_scale: np.ndarray,
    continuum_snr: np.ndarray,
    jitter: float = 0.0,
    sky: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Draw ``n`` noisy spectra of the given classes on ``wave``.

    Parameters
    ----------
    n : int
        Number of spectra.
    rng : numpy.random.Generator
        All randomness comes from it (the same generator state gives the same spectra).
    wave : ndarray, shape (L,)
        Observed wavelength grid, Angstrom.
    classes : sequence of SpectrumClass
    fractions : sequence of float
        Probability of each class (normalised here).
    line_scale : ndarray, shape (n,)
        Per-spectrum multiplier of every feature's strength (weak lines in hard cases...).
    continuum_snr : ndarray, shape (n,)
        Per-spectrum continuum signal-to-noise: ``sigma = median|flux| / continuum_snr``.
    jitter : float
        Each feature's strength is also multiplied by a uniform draw in
        ``[1 - jitter, 1 + jitter]``, per spectrum (line ratios vary between objects).
    sky : ndarray, shape (L,), optional
        Sky-line profile (0 to ~1): the noise is ``1 + 4 * sky`` times larger there.

    Returns
    -------
    dict
        ``class_index`` (n,) int, ``z`` (n,) float64, ``model`` (n, L) noiseless flux,
        ``flux`` (n, L) with noise, ``sigma`` (n, L) the noise's standard deviation.
    """
    wave = np.asarray(wave, dtype=np.float64)
    p = np.asarray(fractions, dtype=np.float64)
    if p.shape != (len(classes),) or np.any(p < 0) or p.sum() <= 0:
        raise ValueError(
            f"fractions must be {len(classes)} non-negative numbers, one per class, got "
            f"{list(fractions)}"
        )
    for name, values in (("line_scale", line_scale), ("continuum_snr", continuum_snr)):
        if np.shape(values) != (n,):
            raise ValueError(f"{name} must have shape ({n},), got {np.shape(values)}")
    cls = rng.choice(len(classes), size=n, p=p / p.sum())
    z = np.empty(n)
    model = np.empty((n, wave.size))
    for c, spec_class in enumerate(classes):
        idx = np.flatnonzero(cls == c)
        z[idx] = rng.uniform(*spec_class.z_range, len(idx))
        continuum = spec_class.continuum(wave, z[idx], rng)
        feats = spec_class.features
        strength = np.array([f.strength for f in feats]) * np.asarray(line_scale)[idx, None]
        if jitter and feats:
            strength = strength * rng.uniform(1 - jitter, 1 + jitter, (len(idx), len(feats)))
        relative = 1.0 + line_profiles(wave, z[idx], feats, strength)
        model[idx] = continuum * np.maximum(relative, 0.1)
    level = np.median(np.abs(model), axis=1) + 1e-6 if n else np.zeros(0)
    sigma = (level / np.asarray(continuum_snr, dtype=np.float64))[:, None] * np.ones(wave.size)
    if sky is not None:
        sigma = sigma * (1.0 + 4.0 * np.asarray(sky))[None, :]
    flux = model + rng.normal(size=model.shape) * sigma
    return {"class_index": cls, "z": z, "model": model, "flux": flux, "sigma": sigma}
