"""Fixtures for the Kubernetes backend: the in-memory API server and a kubeconfig for it."""

from __future__ import annotations

import json

import pytest
from k8s_fake_api import FakeApiServer, FakeKubernetes


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
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "fake", "cluster": {"server": url}}],
        "users": [{"name": "fake", "user": {"token": "fake-token"}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
        "current-context": "fake",
    }
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps(kubeconfig))
    monkeypatch.setenv("KUBECONFIG", str(path))
    # kubernetes_asyncio reads KUBECONFIG once, at import; point its default there too.
    import kubernetes_asyncio.config.kube_config as kube_config

    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(path))
    try:
        yield fake
    finally:
        from kubespawner import KubeSpawner

        await KubeSpawner._stop_all_reflectors()
        await server.stop()
