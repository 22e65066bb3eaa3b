"""Pure builders for what a server's processes receive: commands, environment, store URLs.

No I/O here: each function maps settings to strings or dicts and is tested against literal
values. Variable names come from :mod:`astrokit.env`, the contract with the notebook side.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

from astrokit import env as names

from .profiles import Profile

__all__ = [
    "CLUSTER_ONLY_EXCLUDED_PREFIXES",
    "SERVER_ID",
    "ClientTLSPaths",
    "StoreSettings",
    "cluster_environment",
    "cluster_manager_command",
    "dashboard_path",
    "notebook_cluster_environment",
    "notebook_command",
    "safe_slug",
    "store_environment",
    "user_prefix",
]

#: Environment variable carrying the server's unique id in every process it started; the
#: spawner finds leftovers by it, so nothing survives a stop.
SERVER_ID = "ASTROKIT_SERVER_ID"

#: Variables never handed to the cluster: hub credentials meant for the notebook alone.
CLUSTER_ONLY_EXCLUDED_PREFIXES: tuple[str, ...] = ("JUPYTERHUB_", "JPY_")


@dataclass(frozen=True)
class StoreSettings:
    """Where the object store is and how to reach it.

    Attributes
    ----------
    store_url
        Store root, ``file:///...`` or ``s3://bucket[/prefix]``.
    s3_endpoint
        S3 endpoint URL (MinIO, Ceph RGW, moto); empty means AWS.
    s3_anon
        Anonymous S3 access (public buckets).
    aws_access_key_id, aws_secret_access_key
        S3 credentials handed to the notebook and workers (empty: not set).
    model_url
        Default photo-z checkpoint URL (empty: not set).
    """

    store_url: str
    s3_endpoint: str = ""
    s3_anon: bool = False
    aws_access_key_id: str = ""
    aws_secret_access_key: str = ""
    model_url: str = ""


@dataclass(frozen=True)
class ClientTLSPaths:
    """Paths of the TLS files the notebook's Dask client uses."""

    ca_file: str
    client_cert: str
    client_key: str


def safe_slug(text: str, *, max_length: int = 40) -> str:
    """Lower-case ``[a-z0-9-]`` form of ``text`` for ids and directory names.

    >>> safe_slug("Ada.Lovelace@example.org")
    'ada-lovelace-example-org'
    """
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return (slug or "x")[:max_length].rstrip("-") or "x"


def user_prefix(store_url: str, user_name: str) -> tuple[str, str]:
    """The shared area and the user's own prefix under a store root.

    The user name is percent-quoted so that it is always exactly one path component.

    >>> user_prefix("s3://survey/", "ada")
    ('s3://survey/shared', 's3://survey/users/ada')
    >>> user_prefix("file:///srv/store", "a/b")
    ('file:///srv/store/shared', 'file:///srv/store/users/a%2Fb')
    """
    root = store_url.rstrip("/")
    return f"{root}/shared", f"{root}/users/{quote(user_name, safe='@.-_+')}"


def store_environment(store: StoreSettings, user_name: str) -> dict[str, str]:
    """Store variables for the notebook and the workers (empty settings are left out)."""
    shared, own = user_prefix(store.store_url, user_name)
    env = {names.STORE_URL: store.store_url, names.SHARED_URL: shared, names.USER_URL: own}
    if store.s3_endpoint:
        env[names.S3_ENDPOINT] = store.s3_endpoint
    if store.s3_anon:
        env[names.S3_ANON] = "1"
    if store.aws_access_key_id:
        env["AWS_ACCESS_KEY_ID"] = store.aws_access_key_id
    if store.aws_secret_access_key:
        env["AWS_SECRET_ACCESS_KEY"] = store.aws_secret_access_key
    if store.model_url:
        env[names.MODEL_URL] = store.model_url
    return env


def dashboard_path(server_base_url: str, port: int) -> str:
    """The dashboard through the hub and jupyter-server-proxy.

    >>> dashboard_path("/user/ada/", 8787)
    '/user/ada/proxy/8787/status'
    >>> dashboard_path("/hub-prefix/user/ada/gpu", 40001)
    '/hub-prefix/user/ada/gpu/proxy/40001/status'
    """
    return f"{server_base_url.rstrip('/')}/proxy/{int(port)}/status"


def cluster_environment(base: Mapping[str, str], *, threads_per_worker: int) -> dict[str, str]:
    """Environment of the cluster manager and its workers, derived from the notebook's base.

    Hub credentials (``JUPYTERHUB_*``) stay with the notebook; store settings, ``PATH``,
    ``HOME`` and the server id carry over. Thread counts of numerical libraries follow the
    profile's threads per worker.
    """
    env = {
        key: value
        for key, value in base.items()
        if not key.startswith(CLUSTER_ONLY_EXCLUDED_PREFIXES)
    }
    threads = str(int(threads_per_worker))
    env["OMP_NUM_THREADS"] = threads
    env["MKL_NUM_THREADS"] = threads
    env["PYTHONUNBUFFERED"] = "1"
    return env


def notebook_cluster_environment(
    *,
    profile: Profile,
    scheduler_address: str,
    tls: ClientTLSPaths,
    dashboard_url: str | None,
) -> dict[str, str]:
    """Variables that point the notebook at its cluster (``astrokit.connect()``, ``Client()``).

    Both AstroKit's names and Dask's own configuration variables are set, so a bare
    ``distributed.Client()`` connects over TLS with no arguments.
    """
    env = {
        names.SCHEDULER_ADDRESS: scheduler_address,
        names.DASK_SCHEDULER_ADDRESS: scheduler_address,
        names.DASK_TLS_CA: tls.ca_file,
        names.DASK_TLS_CLIENT_CERT: tls.client_cert,
        names.DASK_TLS_CLIENT_KEY: tls.client_key,
        names.DASK_REQUIRE_ENCRYPTION: "True",
        names.N_WORKERS: str(profile.n_workers),
        names.PROFILE: profile.name,
    }
    if dashboard_url:
        env[names.DASHBOARD_URL] = dashboard_url
        # Dask formats this template with the environment and the dashboard's port, so the
        # link is right for this cluster and for any LocalCluster the user starts too.
        env[names.DASK_DASHBOARD_LINK] = "{JUPYTERHUB_SERVICE_PREFIX}proxy/{port}/status"
    # JupyterLab's Dask panel: its factory is a handle on this cluster, and one is made at
    # start, so the panel lists the cluster with no setup (astrokit.lab_cluster).
    env[names.DASK_LABEXTENSION_FACTORY_MODULE] = "astrokit.lab_cluster"
    env[names.DASK_LABEXTENSION_FACTORY_CLASS] = "ServerCluster"
    env[names.DASK_LABEXTENSION_INITIAL] = repr([{"name": f"Your {profile.name} cluster"}])
    return env


def cluster_manager_command(python: str, spec_path: str) -> list[str]:
    """Command line of a server's cluster manager process.

    >>> cluster_manager_command("/venv/bin/python", "/run/spec.json")
    ['/venv/bin/python', '-m', 'astrokit_spawner.cluster_manager', '/run/spec.json']
    """
    return [python, "-m", "astrokit_spawner.cluster_manager", spec_path]


def notebook_command(cmd: list[str], args: list[str], *, as_root: bool) -> list[str]:
    """Command line of the notebook server: JupyterHub's ``cmd`` + ``args``.

    Jupyter refuses to run as root unless told to; containers often run the hub as root.

    >>> notebook_command(["jupyterhub-singleuser"], ["--debug"], as_root=True)
    ['jupyterhub-singleuser', '--debug', '--allow-root']
    """
    command = [*cmd, *args]
    if as_root and "--allow-root" not in command:
        command.append("--allow-root")
    return command
