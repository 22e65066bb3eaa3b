"""A tiny labelled spectra generator for the active-learning tests.

Gaussian lines on a sloped continuum with noise, four classes, the emission-line class a
minority. Written here rather than taken from the survey module so that these tests pin the
loop's behaviour on data whose difficulty is fixed.
"""

from __future__ import annotations

import numpy as np

from astrokit.active.pool import LogGrid, build_pool, preprocess

CLASSES = ["emission", "absorption", "broadline", "featureless"]
GRID = LogGrid(3700.0, 9300.0, 128)


def toy_spectra(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` preprocessed spectra on :data:`GRID` and their class names."""
    rng = np.random.default_rng(seed)
    wave = GRID.wave
    cls = rng.choice(4, size=n, p=[0.15, 0.4, 0.15, 0.3])
    z = rng.uniform(0.0, 0.3, n)
    flux = 1.0 + 0.2 * (wave / 6000.0)[None, :] + rng.normal(0.0, 0.1, (n, len(wave)))
    line = 6563.0 * (1 + z)[:, None]
    flux += np.where(cls[:, None] == 0, 1.5 * np.exp(-0.5 * ((wave - line) / 40.0) ** 2), 0)
    flux += np.where(cls[:, None] == 2, 0.8 * np.exp(-0.5 * ((wave - line) / 200.0) ** 2), 0)
    k = 3950.0 * (1 + z)[:, None]
    flux -= np.where(cls[:, None] == 1, 0.6 * np.exp(-0.5 * ((wave - k) / 60.0) ** 2), 0)
    return preprocess(wave, flux, GRID), np.array(CLASSES)[cls]


def write_toy_pool(url: str, n: int, *, seed: int = 0, per_shard: int = 150):
    """Write a labelled toy pool of ``n`` spectra in shards of ``per_shard``."""

    def batches():
        for k, start in enumerate(range(0, n, per_shard)):
            count = min(per_shard, n - start)
            flux, labels = toy_spectra(count, seed * 1000 + k)
            ids = np.array([f"toy-{start + j:05d}" for j in range(count)])
            yield {"flux": flux, "ids": ids, "labels": labels}

    return build_pool(url, batches(), classes=CLASSES, grid=GRID, meta={"builder": "toy"})


def small_model(n_classes: int, seed: int):
    """The default CNN with training sized for the toy pool (fast on 1 thread)."""
    from astrokit.active.models import default_model

    return default_model(n_classes, seed=seed, epochs=6, min_steps=40, num_threads=1)
