"""JupyterLab's Dask panel lists the server's own TLS cluster (astrokit.lab_cluster).

The panel's server side (dask-labextension) makes clusters with the factory the spawner
configures; here it makes one against a real cluster manager, as in a notebook server.
"""

from __future__ import annotations

import asyncio

import dask.config
import pytest
from astrokit_spawner.environment import ClientTLSPaths, notebook_cluster_environment
from astrokit_spawner.profiles import Profile
from helpers.dask_env import set_notebook_env
from helpers.polling import wait_until_async
from test_cluster_manager import Manager

from astrokit.connect import ConnectError
from astrokit.lab_cluster import ServerCluster

DASHBOARD = "/user/ada/proxy/20001/status"


def test_the_spawner_points_the_panel_at_this_cluster():
    profile = Profile("small", "Small", "", 1.0, 2**31, 2, 1, 2**30)
    env = notebook_cluster_environment(
        profile=profile,
        scheduler_address="tls://127.0.0.1:20000",
        tls=ClientTLSPaths(ca_file="ca", client_cert="cert", client_key="key"),
        dashboard_url=DASHBOARD,
    )
    config = dask.config.collect_env(env)
    assert config["labextension"]["factory"] == {
        "module": "astrokit.lab_cluster",
        "class": "ServerCluster",
    }
    assert config["labextension"]["initial"] == [{"name": "Your small cluster"}]


async def test_panel_lists_scales_and_releases_the_servers_cluster(tmp_path, monkeypatch):
    from dask_labextension.manager import make_cluster, make_cluster_model

    m = Manager(tmp_path, idle_timeout=600.0, idle_minimum=0)
    try:
        await asyncio.to_thread(m.wait_state, "ready")
        set_notebook_env(
            monkeypatch,
            {
                **m.client_env(),
                "ASTROKIT_DASHBOARD_URL": DASHBOARD,
                "ASTROKIT_PROFILE": "small",
                "DASK_LABEXTENSION__FACTORY__MODULE": "astrokit.lab_cluster",
                "DASK_LABEXTENSION__FACTORY__CLASS": "ServerCluster",
            },
        )
        cluster, adaptive = await make_cluster({})  # as the panel's "initial" does
        model = make_cluster_model("c1", cluster.name, cluster, adaptive)
        assert model["name"] == "Your small cluster"
        assert model["scheduler_address"] == m.address
        assert model["dashboard_link"] == DASHBOARD  # through the hub: the panel uses it as is
        await wait_until_async(lambda: len(cluster.scheduler_info["workers"]) == 2, 60, "2 workers")
        assert make_cluster_model("c1", "x", cluster, None)["workers"] == 2

        await cluster.scale(1)  # the panel's "Scale" dialog
        await wait_until_async(lambda: len(cluster.scheduler_info["workers"]) == 1, 60, "1 worker")
        with pytest.raises(ValueError, match=r"3 workers is outside 0\.\.2"):
            await cluster.scale(3)
        with pytest.raises(ConnectError, match="adapts by itself"):
            cluster.adapt(minimum=0, maximum=2)

        await cluster.close()  # "Shutdown": the workers go, the scheduler stays
        again = await ServerCluster(asynchronous=True)  # "New": the workers come back
        try:
            await wait_until_async(
                lambda: len(again.scheduler_info["workers"]) == 2, 60, "2 workers again"
            )
        finally:
            await again.close()
        assert m.proc.poll() is None  # the cluster manager was never stopped
    finally:
        m.close()


async def test_an_unreachable_scheduler_still_gives_the_panel_a_cluster(monkeypatch):
    # dask-labextension waits for its initial clusters before it answers the panel at all
    set_notebook_env(monkeypatch, {"ASTROKIT_SCHEDULER_ADDRESS": "tcp://127.0.0.1:9"})
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        cluster = await ServerCluster(asynchronous=True)
    assert cluster.scheduler_info["workers"] == {}
    await cluster.close()


def test_without_a_configured_cluster_the_error_says_so(monkeypatch):
    monkeypatch.delenv("ASTROKIT_SCHEDULER_ADDRESS", raising=False)
    set_notebook_env(monkeypatch, {})
    monkeypatch.setattr(dask.config, "config", {**dask.config.config, "scheduler-address": None})
    with pytest.raises(ConnectError, match="not started by AstroKit's spawner"):
        ServerCluster(asynchronous=True)
