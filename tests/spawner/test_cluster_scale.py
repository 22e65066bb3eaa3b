"""Scaling a server's cluster from the notebook, within the profile's size (scale_cluster)."""

from __future__ import annotations

import pytest
from distributed import Client, LocalCluster
from helpers.dask_env import set_notebook_env
from test_cluster_manager import Manager

from astrokit.connect import ConnectError, connect, scale_cluster, scale_on_scheduler


def _workers(client) -> int:
    return len(client.scheduler_info(n_workers=-1)["workers"])


def test_scale_down_and_connect_scales_back(tmp_path, monkeypatch):
    # As the spawner runs it: adaptive on (idle timeout 600 s), which must not undo the scale.
    m = Manager(tmp_path, idle_timeout=600.0, idle_minimum=0)
    try:
        m.wait_state("ready")
        set_notebook_env(monkeypatch, m.client_env())
        with connect(timeout=60) as client:
            assert _workers(client) == 2
            assert scale_cluster(client, 1, timeout=60) == 1
            assert _workers(client) == 1
            assert client.submit(pow, 2, 10).result(timeout=60) == 1024  # still computes
        with connect(timeout=60) as client:  # connect() wakes it to the profile's size
            assert _workers(client) == 2
            with pytest.raises(ValueError, match=r"n_workers=3 is outside 0\.\.2"):
                scale_cluster(client, 3)
            # The manager enforces the cap itself, whatever a client sends.
            with pytest.raises(ValueError, match=r"n_workers=5 is outside 0\.\.2"):
                client.run_on_scheduler(scale_on_scheduler, n_workers=5)
            assert _workers(client) == 2
    finally:
        m.close()


def test_a_cluster_without_the_manager_cannot_be_scaled(monkeypatch):
    monkeypatch.setenv("ASTROKIT_N_WORKERS", "1")
    with (
        LocalCluster(n_workers=1, processes=False, dashboard_address="127.0.0.1:0") as cluster,
        Client(cluster) as client,
        pytest.raises(ConnectError, match="cannot be scaled from the notebook"),
    ):
        scale_cluster(client, 0)
