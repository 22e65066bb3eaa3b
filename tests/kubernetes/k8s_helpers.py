"""Helpers shared by the Kubernetes tests and ``benchmarks/k8s_spawn.py``.

Spawners built here talk to an in-memory API server (:mod:`k8s_fake_api`) through a
kubeconfig, exactly as KubeSpawner talks to a real cluster.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlparse

from astrokit_spawner.kubernetes import AstroKitKubeSpawner
from jupyterhub.objects import Server

IMAGE = "ghcr.io/astrokit/notebook:0.1.0"


def use_kubeconfig(url: str, path: Path) -> Path:
    """Write a kubeconfig for ``url`` to ``path`` and make kubernetes_asyncio read it.

    kubernetes_asyncio reads ``KUBECONFIG`` once, at import, into a module default; that
    default is set here (the caller restores it if it must, e.g. pytest's monkeypatch).
    """
    import kubernetes_asyncio.config.kube_config as kube_config

    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "fake", "cluster": {"server": url}}],
        "users": [{"name": "fake", "user": {"token": "fake-token"}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
        "current-context": "fake",
    }
    path.write_text(json.dumps(kubeconfig))
    kube_config.KUBE_CONFIG_DEFAULT_LOCATION = str(path)
    return path


def make_spawner(
    kube: Any,
    *,
    user: str = "alice",
    groups: tuple[str, ...] | list[str] = (),
    user_options: dict[str, Any] | None = None,
    **config: Any,
) -> AstroKitKubeSpawner:
    """A spawner for ``user`` talking to ``kube`` (its ``url``); ``config`` sets traits."""
    hub_user = SimpleNamespace(
        name=user,
        id=1,
        url=f"/user/{user}/",
        groups=[SimpleNamespace(name=g) for g in groups],
    )
    settings = {
        "namespace": "jhub",
        "image": IMAGE,
        "k8s_api_host": kube.url,
        "start_timeout": 20,
        "k8s_api_request_retry_timeout": 5,
        "dask_cluster_start_timeout": 10,
        "store_url": "s3://astrokit",
        "s3_endpoint": "http://minio.jhub.svc:9000",
        "aws_access_key_id": "AKIDTEST",
        "aws_secret_access_key": "s3cr3t",
        **config,
    }
    spawner = AstroKitKubeSpawner(_mock=True, user=hub_user, **settings)
    spawner.server = Server(base_url=f"/user/{user}/")
    spawner.api_token = "test-token"
    spawner.user_options = user_options or {}
    return spawner


async def start_server(spawner: AstroKitKubeSpawner, timeout: float = 30) -> str:
    """Start like the hub does: await start() and record the returned URL on the server."""
    url = await asyncio.wait_for(spawner.start(), timeout)
    parsed = urlparse(url)
    spawner.server.ip, spawner.server.port = parsed.hostname, parsed.port
    return url
