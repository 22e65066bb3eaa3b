"""Fixtures for the Kubernetes backend: the in-memory API server and a kubeconfig for it."""

from __future__ import annotations

import pytest
from k8s_fake_api import FakeApiServer, FakeKubernetes
from k8s_helpers import use_kubeconfig


@pytest.fixture
async def kube(tmp_path, monkeypatch):
    """A fresh in-memory API server on 127.0.0.1, with ``KUBECONFIG`` pointing at it.

    Yields the :class:`FakeKubernetes` (its ``url`` attribute holds the server URL). On
    teardown KubeSpawner's class-level reflectors are stopped, so no watch outlives the test.
    """
    fake = FakeKubernetes(namespaces=("default", "jhub"))
    server = FakeApiServer(fake)
    url = await server.start()
    fake.url = url
    import kubernetes_asyncio.config.kube_config as kube_config

    path = tmp_path / "kubeconfig"
    # restore kubernetes_asyncio's default kubeconfig location after the test
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(path))
    use_kubeconfig(url, path)
    monkeypatch.setenv("KUBECONFIG", str(path))
    try:
        yield fake
    finally:
        from kubespawner import KubeSpawner

        await KubeSpawner._stop_all_reflectors()
        await server.stop()
