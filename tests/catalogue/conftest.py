"""Fixtures for catalogue photo-z: a synthetic photometric catalogue and a model trained on it.

The catalogue comes from :func:`astrokit.survey_catalogue.synth_photometry` (the synthetic
survey's galaxies observed with realistic magnitude errors) with injected faults; the model
trains for a few epochs on one thread, so each fixture takes seconds.
"""

from __future__ import annotations

import numpy as np
import pytest

from astrokit.survey_catalogue import ERROR_COLUMNS, MAG_COLUMNS, Z_COLUMN

BANDS = ",".join(MAG_COLUMNS)
ERRORS = ",".join(ERROR_COLUMNS)


@pytest.fixture(scope="session")
def catalogue_columns() -> dict[str, np.ndarray]:
    """2,000 rows; ~3 % injected faults (NaN, -99, NaN error), 5 % without a redshift."""
    from astrokit.survey_catalogue import synth_photometry

    return synth_photometry(2000, seed=7, bad_fraction=0.03, unknown_z_fraction=0.05)


@pytest.fixture(scope="session")
def catalogue_url(tmp_path_factory, catalogue_columns) -> str:
    """The catalogue as parquet with 400-row row groups (5 groups)."""
    from astrokit.survey_catalogue import write_catalogue

    path = tmp_path_factory.mktemp("catalogue") / "phot.parquet"
    return write_catalogue(path.as_uri(), catalogue_columns, row_group_size=400)


def train_small(catalogue: str, out: str, **options):
    """``train_catalogue`` on the synthetic catalogue's columns with a small, quick network
    (16 hidden units, 1 layer, 2 components); ``options`` override any of it."""
    from astrokit.catalogue_training import train_catalogue

    settings = {
        "bands": BANDS,
        "errors": ERRORS,
        "z_column": Z_COLUMN,
        "hidden": 16,
        "layers": 1,
        "components": 2,
    }
    return train_catalogue(catalogue, out=out, **{**settings, **options})


@pytest.fixture(scope="session")
def train_model():
    """Factory fixture: ``train_model(catalogue_url, out, **options)`` -> TrainResult."""
    return train_small


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory, catalogue_url):
    """A small photometry model trained briefly on the catalogue: (url, TrainResult)."""
    url = (tmp_path_factory.mktemp("model") / "phot.pt").as_uri()
    result = train_small(
        catalogue_url,
        url,
        hidden=32,
        layers=2,
        components=3,
        epochs=6,
        patience=3,
        batch_size=128,
    )
    return url, result
