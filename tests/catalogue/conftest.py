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


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory, catalogue_url):
    """A small photometry model trained briefly on the catalogue: (url, TrainResult)."""
    from astrokit.catalogue_training import train_catalogue

    url = (tmp_path_factory.mktemp("model") / "phot.pt").as_uri()
    result = train_catalogue(
        catalogue_url,
        out=url,
        bands=BANDS,
        errors=ERRORS,
        z_column=Z_COLUMN,
        hidden=32,
        layers=2,
        components=3,
        epochs=6,
        patience=3,
        batch_size=128,
    )
    return url, result


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
