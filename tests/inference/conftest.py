"""Fixtures for the photo-z model, training and distributed inference tests.

Data are synthetic galaxies from :func:`astrokit.survey.synth_galaxies` (the data layer's
generator); the checkpoints are the ``tiny`` configuration so that every test runs in seconds.
"""

from __future__ import annotations

import numpy as np
import pytest


def galaxies(n: int, seed: int) -> dict[str, np.ndarray]:
    """Synthetic galaxies as shard arrays (images, mags, ids, z)."""
    from astrokit.survey import synth_galaxies

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


def write_untrained_model(url: str, config: str, arrays: dict[str, np.ndarray], seed: int) -> str:
    """Save an untrained AstroMAE ``config`` checkpoint at ``url`` with its normalisation
    fitted on ``arrays``; returns ``url``."""
    import torch

    from astrokit.models.astromae import AstroMAE
    from astrokit.models.checkpoint import save_checkpoint

    torch.manual_seed(seed)
    model = AstroMAE(config)
    model.set_normalization(
        torch.from_numpy(arrays["images"]),
        torch.from_numpy(arrays["mags"]),
        torch.from_numpy(arrays["z"]),
    )
    save_checkpoint(model.eval(), url)
    return url


@pytest.fixture(scope="session")
def model_writer():
    """Factory fixture: ``model_writer(url, config, arrays, seed)`` -> url (untrained)."""
    return write_untrained_model


@pytest.fixture(scope="session")
def tiny_model_url(tmp_path_factory, galaxy_arrays) -> str:
    """A ``tiny`` checkpoint with normalisation fitted on the galaxies (untrained weights:
    inference tests check plumbing and exactness, not accuracy)."""
    url = (tmp_path_factory.mktemp("model") / "tiny.pt").as_uri()
    return write_untrained_model(url, "tiny", galaxy_arrays, seed=0)
