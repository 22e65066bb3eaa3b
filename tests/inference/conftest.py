"""Fixtures for the photo-z model, training and distributed inference tests.

Data are synthetic galaxies from :func:`astrokit.survey.synth_galaxies` (the data layer's
generator); the checkpoints are the ``tiny`` configuration so that every test runs in seconds.
"""

from __future__ import annotations

import numpy as np
import pytest


def _fallback_galaxies(n: int, seed: int) -> dict[str, np.ndarray]:
    # Used only while astrokit.survey (the data layer's generator) is not in this checkout:
    # exponential-disc galaxies whose size shrinks and colours redden with redshift.
    rng = np.random.default_rng(seed)
    z = rng.gamma(2.0, 0.08, n).astype(np.float32)
    yy, xx = np.mgrid[:32, :32] - 15.5
    r_e = (4.0 / (1 + 3 * z))[:, None, None] * rng.uniform(0.7, 1.3, n)[:, None, None]
    q = rng.uniform(0.4, 1, n)[:, None, None]
    th = rng.uniform(0, np.pi, n)[:, None, None]
    xr = xx * np.cos(th) + yy * np.sin(th)
    yr = (-xx * np.sin(th) + yy * np.cos(th)) / q
    prof = np.exp(-np.sqrt(xr**2 + yr**2) / r_e)
    color = np.stack(
        [np.exp(-3 * z) * 0.3, 0.6 * np.exp(-1.5 * z), np.ones(n), 1 + 0.8 * z, 1 + 1.2 * z], 1
    )
    flux = 10 ** (-0.4 * (rng.uniform(16, 20, n) + 5 * np.log10(1 + z)))[:, None] * color * 1e7
    img = flux[:, :, None, None] * prof[:, None] / prof.sum((1, 2))[:, None, None, None]
    img = img + rng.normal(0, 0.5, img.shape)
    mags = -2.5 * np.log10(np.maximum(flux, 1e-3)) + 22.5 + rng.normal(0, 0.05, (n, 5))
    return {
        "images": img.astype(np.float32),
        "mags": mags.astype(np.float32),
        "ids": np.array([f"gal-{seed}-{i:06d}" for i in range(n)]),
        "z": z,
    }


def galaxies(n: int, seed: int) -> dict[str, np.ndarray]:
    """Synthetic galaxies as shard arrays (images, mags, ids, z)."""
    try:
        from astrokit.survey import synth_galaxies
    except ImportError:
        return _fallback_galaxies(n, seed)

    d = synth_galaxies(n, seed=seed)
    return {
        "images": np.asarray(d["images"], dtype=np.float32),
        "mags": np.asarray(d["mags"], dtype=np.float32),
        "ids": np.asarray(d["ids"]).astype(str),
        "z": np.asarray(d["z"], dtype=np.float32),
    }


def write_shard_set(url: str, arrays: dict[str, np.ndarray], rows_per_shard: int, store=None):
    """Write ``arrays`` as a shard set at ``url``; returns the Manifest."""
    from astrokit.shards import Manifest, shard_name, write_shard

    n = len(arrays["ids"])
    infos = [
        write_shard(
            f"{url}/{shard_name(i)}",
            {k: v[s : s + rows_per_shard] for k, v in arrays.items()},
            store=store,
        )
        for i, s in enumerate(range(0, n, rows_per_shard))
    ]
    manifest = Manifest(shards=infos)
    manifest.save(url, store=store)
    return manifest


@pytest.fixture(scope="session")
def make_galaxies():
    """Factory fixture: ``make_galaxies(n, seed)`` -> shard arrays."""
    return galaxies


@pytest.fixture(scope="session")
def shard_writer():
    """Factory fixture: ``shard_writer(url, arrays, rows_per_shard, store=None)`` -> Manifest."""
    return write_shard_set


@pytest.fixture(scope="session")
def galaxy_arrays() -> dict[str, np.ndarray]:
    """300 synthetic galaxies (about 6 MB)."""
    return galaxies(300, seed=7)


@pytest.fixture(scope="session")
def tiny_model_url(tmp_path_factory, galaxy_arrays) -> str:
    """A ``tiny`` checkpoint with normalisation fitted on the galaxies (untrained weights:
    inference tests check plumbing and exactness, not accuracy)."""
    import torch

    from astrokit.models.astromae import AstroMAE
    from astrokit.models.checkpoint import save_checkpoint

    torch.manual_seed(0)
    model = AstroMAE("tiny")
    model.set_normalization(
        torch.from_numpy(galaxy_arrays["images"]),
        torch.from_numpy(galaxy_arrays["mags"]),
        torch.from_numpy(galaxy_arrays["z"]),
    )
    model.eval()
    url = (tmp_path_factory.mktemp("model") / "tiny.pt").as_uri()
    save_checkpoint(model, url)
    return url


@pytest.fixture(scope="module")
def cluster_client():
    """A real LocalCluster: 2 worker processes x 1 thread on 127.0.0.1."""
    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        worker_dashboard_address=None,
    )
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()
