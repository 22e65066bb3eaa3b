"""Fixtures for the active-learning tests: a small labelled pool and a real local Dask cluster."""

from __future__ import annotations

import pytest
from helpers.cluster import local_client
from toy_data import write_toy_pool


@pytest.fixture(scope="session")
def toy_pool(tmp_path_factory):
    """A 600-spectrum labelled pool in 4 shards (read-only for the tests)."""
    root = tmp_path_factory.mktemp("al-pool")
    return write_toy_pool(f"file://{root}/pool", 600)


@pytest.fixture(scope="module")
def dask_client():
    """A real LocalCluster on 127.0.0.1: 2 worker processes, 1 thread each."""
    with local_client() as client:
        yield client
