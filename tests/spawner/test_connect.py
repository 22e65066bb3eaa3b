"""astrokit.connect() errors and astrokit.cluster.client_or_local() choices."""

from __future__ import annotations

import socket
import time

import distributed
import pytest
from astrokit_spawner.tls import make_credentials

from astrokit.cluster import client_or_local, current_client
from astrokit.connect import ConnectError, connect, dashboard_link, security_from_env

CLUSTER_VARS = (
    "ASTROKIT_SCHEDULER_ADDRESS",
    "DASK_SCHEDULER_ADDRESS",
    "DASK_DISTRIBUTED__COMM__TLS__CA_FILE",
    "DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT",
    "DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY",
    "ASTROKIT_N_WORKERS",
    "ASTROKIT_DASHBOARD_URL",
)


@pytest.fixture
def clean_env(monkeypatch):
    for name in CLUSTER_VARS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_no_cluster_configured(clean_env):
    with pytest.raises(ConnectError, match="ASTROKIT_SCHEDULER_ADDRESS is not set"):
        connect()


def test_tls_address_without_credentials(clean_env):
    clean_env.setenv("ASTROKIT_SCHEDULER_ADDRESS", "tls://127.0.0.1:1")
    with pytest.raises(ConnectError, match="needs TLS credentials"):
        connect()


def test_incomplete_tls_configuration_names_the_missing_variables(clean_env, tmp_path):
    creds = make_credentials(tmp_path, "x")
    clean_env.setenv("DASK_DISTRIBUTED__COMM__TLS__CA_FILE", str(creds.ca_file))
    with pytest.raises(ConnectError, match="CLIENT__CERT, DASK_DISTRIBUTED__COMM__TLS__CLIENT"):
        security_from_env()


def test_missing_credential_file_is_named(clean_env, tmp_path):
    creds = make_credentials(tmp_path, "x")
    clean_env.setenv("DASK_DISTRIBUTED__COMM__TLS__CA_FILE", str(creds.ca_file))
    clean_env.setenv("DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT", str(tmp_path / "gone.pem"))
    clean_env.setenv("DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY", str(creds.client_key))
    with pytest.raises(ConnectError, match=r"gone\.pem', which is not a readable file"):
        security_from_env()


def test_security_from_env(clean_env, tmp_path):
    assert security_from_env() is None
    creds = make_credentials(tmp_path, "x")
    env = {
        "DASK_DISTRIBUTED__COMM__TLS__CA_FILE": str(creds.ca_file),
        "DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT": str(creds.client_cert),
        "DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY": str(creds.client_key),
    }
    security = security_from_env(env)
    assert security.require_encryption
    assert security.tls_client_key == str(creds.client_key)


def test_unreachable_scheduler_fails_within_the_timeout(clean_env):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    start = time.monotonic()
    with pytest.raises(
        ConnectError, match=f"cannot reach the Dask scheduler at tcp://127.0.0.1:{port}"
    ):
        connect(address=f"tcp://127.0.0.1:{port}", timeout=1)
    assert time.monotonic() - start < 15


def test_dashboard_link(clean_env):
    assert dashboard_link() is None
    clean_env.setenv("ASTROKIT_DASHBOARD_URL", "/user/ada/proxy/1234/status")
    assert dashboard_link() == "/user/ada/proxy/1234/status"


@pytest.fixture(scope="module")
def plain_cluster():
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        yield cluster


def test_client_or_local_passes_an_explicit_client_through(plain_cluster, clean_env):
    with distributed.Client(plain_cluster, set_as_default=False) as client:
        with client_or_local(client) as chosen:
            assert chosen is client
        assert client.status == "running"  # not closed: the caller owns it


def test_client_or_local_uses_the_default_client(plain_cluster, clean_env):
    with distributed.Client(plain_cluster) as client:
        assert current_client() is client
        with client_or_local() as chosen:
            assert chosen is client
        assert client.status == "running"


def test_client_or_local_connects_to_the_configured_scheduler(plain_cluster, clean_env):
    clean_env.setenv("ASTROKIT_SCHEDULER_ADDRESS", plain_cluster.scheduler_address)
    clean_env.setenv("ASTROKIT_N_WORKERS", "1")
    assert current_client() is None
    with client_or_local() as chosen:
        assert chosen.scheduler.address == plain_cluster.scheduler_address
        assert chosen.submit(len, "abc").result() == 3
    assert chosen.status == "closed"


def test_client_or_local_falls_back_to_a_temporary_local_cluster(clean_env):
    assert current_client() is None
    with client_or_local(n_workers=2) as chosen:
        workers = chosen.scheduler_info(n_workers=-1)["workers"]
        assert len(workers) == 2
        assert all(w["nthreads"] == 1 for w in workers.values())
        cluster = chosen.cluster
    assert chosen.status == "closed"
    assert cluster.status.name == "closed"
