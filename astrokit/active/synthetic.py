"""A spectral classification task of controlled difficulty, for active-learning benchmarks.

:func:`line_spectra` draws spectra directly on a pool grid with the project's one spectrum
generator (:mod:`astrokit.synthetic_spectra`, lines from :mod:`astrokit.lines` at vacuum
wavelengths): a sloped continuum with Gaussian noise, and class-dependent features at a random
redshift —

``emission``     narrow H-alpha, [O III] and H-beta emission (a minority, as in Škoda et al. 2020);
``absorption``   Ca II H+K, Mg b and Na D absorption (the majority);
``broadline``    one broad H-alpha (+H-beta) emission line (rare);
``featureless``  continuum only.

What makes active learning worthwhile here is what makes it worthwhile on survey data: the
class imbalance, and a tail of hard cases — feature strengths are log-uniform in signal-to-noise
from :attr:`snr_range`, so a fraction of objects sit near the detection limit while most are
easy. Unlike the recipe of :func:`astrokit.survey.synth_spectra` (the platform's general
synthetic survey), the difficulty here is pinned by two numbers, which keeps benchmark results
comparable run to run. :func:`build_pool_from_line_spectra` writes such a pool shard by shard.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from astrokit.active.pool import DEFAULT_GRID, LogGrid, Pool, build_pool, preprocess
from astrokit.store import Store
from astrokit.synthetic_spectra import SpectrumClass, feature, generate_spectra

__all__ = ["LINE_CLASSES", "build_pool_from_line_spectra", "line_spectra"]

LINE_CLASSES = ("emission", "absorption", "broadline", "featureless")
#: Default class fractions: emission-line objects a minority.
DEFAULT_FRACTIONS = (0.12, 0.48, 0.08, 0.32)

_NARROW_KMS, _ABSORPTION_KMS, _BROAD_KMS = 250.0, 400.0, 3000.0


def _bent_continuum(wave: np.ndarray, z: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A unit continuum with a random slope and curvature in ln(wavelength)."""
    slope = rng.uniform(-0.4, 0.4, len(z))[:, None]
    bend = rng.uniform(-0.15, 0.15, len(z))[:, None]
    x = (np.log(wave) - np.log(wave).mean())[None, :]
    return 1.0 + slope * x + bend * x**2


def _classes(z_range: tuple[float, float]) -> tuple[SpectrumClass, ...]:
    """The task's classes (:data:`LINE_CLASSES` order). Strengths are line S/N per unit S/N."""
    return (
        SpectrumClass(
            "emission",
            z_range,
            _bent_continuum,
            (
                feature("Hα", 1.0, _NARROW_KMS),  # noqa: RUF001 (Greek letters are the names)
                feature("[O III]", 0.8, _NARROW_KMS, near=5008),
                feature("Hβ", 0.35, _NARROW_KMS),
            ),
        ),
        SpectrumClass(
            "absorption",
            z_range,
            _bent_continuum,
            (
                feature("Ca II K", -0.6, _ABSORPTION_KMS),
                feature("Ca II H", -0.48, _ABSORPTION_KMS),
                feature("Mg b", -0.36, _ABSORPTION_KMS),
                feature("Na D", -0.3, _ABSORPTION_KMS),
            ),
        ),
        SpectrumClass(
            "broadline",
            z_range,
            _bent_continuum,
            (feature("Hα", 1.0, _BROAD_KMS), feature("Hβ", 0.4, _BROAD_KMS)),  # noqa: RUF001
        ),
        SpectrumClass("featureless", z_range, _bent_continuum),
    )


def line_spectra(
    n: int,
    seed: int,
    grid: LogGrid = DEFAULT_GRID,
    *,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    snr_range: tuple[float, float] = (3.0, 40.0),
    z_range: tuple[float, float] = (0.0, 0.35),
) -> dict[str, np.ndarray]:
    """Draw ``n`` labelled spectra on ``grid``.

    Parameters
    ----------
    n, seed : int
    grid : LogGrid
    fractions : four floats
        Class probabilities in :data:`LINE_CLASSES` order (normalised).
    snr_range : (low, high)
        Peak feature height in units of the per-pixel noise, drawn log-uniformly.
    z_range : (low, high)
        Uniform redshift range.

    Returns
    -------
    dict
        ``flux`` (n, grid.n) float32 preprocessed (:func:`~astrokit.active.pool.preprocess`),
        ``labels`` (n,) str, ``z`` (n,) float32, ``snr`` (n,) float32.
    """
    if n < 0:
        raise ValueError(f"line_spectra: n must be >= 0, got {n}")
    p = np.asarray(fractions, dtype=float)
    if p.shape != (4,) or np.any(p < 0) or p.sum() <= 0:
        raise ValueError(f"line_spectra: fractions must be 4 non-negative numbers, got {fractions}")
    lo, hi = snr_range
    if not 0 < lo < hi:
        raise ValueError(f"line_spectra: snr_range must satisfy 0 < low < high, got {snr_range}")
    rng = np.random.default_rng(seed)
    snr = np.exp(rng.uniform(np.log(lo), np.log(hi), n))
    # The continuum S/N is fixed (noise 5 % of a unit continuum): the line S/N, a feature's
    # peak over the noise, is then ``snr * strength``.
    continuum_snr = 20.0
    drawn = generate_spectra(
        n,
        rng,
        grid.wave,
        _classes(z_range),
        p,
        line_scale=snr / continuum_snr,
        continuum_snr=np.full(n, continuum_snr),
    )
    wave, flux, cls, z = grid.wave, drawn["flux"], drawn["class_index"], drawn["z"]
    return {
        "flux": preprocess(wave, flux, grid),
        "labels": np.array(LINE_CLASSES)[cls],
        "z": z.astype(np.float32),
        "snr": snr.astype(np.float32),
    }


def build_pool_from_line_spectra(
    out_url: str,
    n: int,
    *,
    seed: int = 0,
    grid: LogGrid = DEFAULT_GRID,
    rows_per_shard: int = 2500,
    store: Store | None = None,
    **kwargs: Any,
) -> Pool:
    """Write a labelled pool of ``n`` :func:`line_spectra`, one shard at a time."""

    def batches():
        for k, start in enumerate(range(0, n, rows_per_shard)):
            count = min(rows_per_shard, n - start)
            draw = line_spectra(
                count, int(np.random.SeedSequence([seed, k]).generate_state(1)[0]), grid, **kwargs
            )
            ids = np.array([f"lines{seed}-{start + j:08d}" for j in range(count)])
            yield {"flux": draw["flux"], "ids": ids, "labels": draw["labels"]}

    return build_pool(
        out_url,
        batches(),
        classes=list(LINE_CLASSES),
        grid=grid,
        store=store,
        meta={
            "builder": "line_spectra",
            "seed": int(seed),
            "n": int(n),
            **{k: str(v) for k, v in kwargs.items()},
        },
    )
