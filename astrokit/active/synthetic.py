"""A spectral classification task of controlled difficulty, for active-learning benchmarks.

:func:`line_spectra` draws spectra directly on a pool grid: a sloped continuum with Gaussian
noise, and class-dependent features at a random redshift —

``emission``     narrow H-alpha, [O III] and H-beta emission (a minority, as in Škoda et al. 2020);
``absorption``   Ca II H+K, Mg b and Na D absorption (the majority);
``broadline``    one broad H-alpha (+H-beta) emission line (rare);
``featureless``  continuum only.

What makes active learning worthwhile here is what makes it worthwhile on survey data: the
class imbalance, and a tail of hard cases — feature strengths are log-uniform in signal-to-noise
from :attr:`snr_range`, so a fraction of objects sit near the detection limit while most are
easy. Unlike :func:`astrokit.survey.synth_spectra` (the platform's general synthetic survey),
the difficulty here is pinned by two numbers, which keeps benchmark results comparable run to
run. :func:`build_pool_from_line_spectra` writes such a pool shard by shard.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from astrokit.active.pool import DEFAULT_GRID, LogGrid, Pool, build_pool, preprocess
from astrokit.store import Store

__all__ = ["LINE_CLASSES", "build_pool_from_line_spectra", "line_spectra"]

LINE_CLASSES = ("emission", "absorption", "broadline", "featureless")
#: Default class fractions: emission-line objects a minority.
DEFAULT_FRACTIONS = (0.12, 0.48, 0.08, 0.32)

# rest wavelengths (Angstrom) and relative strengths
_NARROW = ((6564.6, 1.0), (5008.2, 0.8), (4862.7, 0.35))
_ABSORPTION = ((3934.8, 1.0), (3969.6, 0.8), (5176.7, 0.6), (5895.6, 0.5))
_BROAD = ((6564.6, 1.0), (4862.7, 0.4))


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
    from scipy.special import erf

    if n < 0:
        raise ValueError(f"line_spectra: n must be >= 0, got {n}")
    p = np.asarray(fractions, dtype=float)
    if p.shape != (4,) or np.any(p < 0) or p.sum() <= 0:
        raise ValueError(f"line_spectra: fractions must be 4 non-negative numbers, got {fractions}")
    lo, hi = snr_range
    if not 0 < lo < hi:
        raise ValueError(f"line_spectra: snr_range must satisfy 0 < low < high, got {snr_range}")
    rng = np.random.default_rng(seed)
    wave = grid.wave
    cls = rng.choice(4, size=n, p=p / p.sum())
    z = rng.uniform(*z_range, n)
    snr = np.exp(rng.uniform(np.log(lo), np.log(hi), n))
    sigma = 0.05  # noise per pixel relative to a unit continuum
    slope = rng.uniform(-0.4, 0.4, n)[:, None]
    bend = rng.uniform(-0.15, 0.15, n)[:, None]
    x = (np.log(wave) - np.log(wave).mean())[None, :]
    flux = 1.0 + slope * x + bend * x**2 + rng.normal(0.0, sigma, (n, wave.size))
    height = (snr * sigma)[:, None]
    one_plus_z = (1.0 + z)[:, None]

    # pixel edges: geometric midpoints (log grid); a line's flux is averaged over each pixel,
    # as a spectrograph bins it, so a line narrower than a pixel keeps its flux, not its peak
    edges = np.sqrt(wave[1:] * wave[:-1])
    lo_edge = np.concatenate([[wave[0] ** 2 / edges[0]], edges])[None, :]
    hi_edge = np.concatenate([edges, [wave[-1] ** 2 / edges[-1]]])[None, :]

    def lines(table: Sequence[tuple[float, float]], width_kms: float) -> np.ndarray:
        out = np.zeros((n, wave.size))
        for rest, strength in table:
            centre = rest * one_plus_z
            width = centre * width_kms / 299_792.458
            cdf_hi = erf((hi_edge - centre) / (np.sqrt(2.0) * width))
            cdf_lo = erf((lo_edge - centre) / (np.sqrt(2.0) * width))
            # mean of a unit-peak Gaussian over the pixel
            out += strength * (cdf_hi - cdf_lo) * np.sqrt(np.pi / 2.0) * width / (hi_edge - lo_edge)
        return out

    flux += np.where(cls[:, None] == 0, height * lines(_NARROW, 250.0), 0.0)
    flux -= np.where(cls[:, None] == 1, 0.6 * height * lines(_ABSORPTION, 400.0), 0.0)
    flux += np.where(cls[:, None] == 2, height * lines(_BROAD, 3000.0), 0.0)
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
