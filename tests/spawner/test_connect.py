"""astrokit.connect() errors and astrokit.cluster.client_or_local() choices."""

from __future__ import annotations

import socket
import time

import dask.config
import distributed
import pytest
from astrokit_spawner.tls import make_credentials

from astrokit.cluster import client_or_local, current_client
from astrokit.connect import (
    ConnectError,
    configured_address,
    connect,
    dashboard_link,
    security_from_env,
)

CLUSTER_VARS = (
    "ASTROKIT_SCHEDULER_ADDRESS",
    "DASK_SCHEDULER_ADDRESS",
    "DASK_DISTRIBUTED__COMM__TLS__CA_FILE",
    "DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT",
    "DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY",
    "ASTROKIT_N_WORKERS",
    "ASTROKIT_DASHBOARD_URL",
)


#: Dask's settings the library reads (the DASK_* variables above set them at import).
DASK_SETTINGS = (
    "scheduler-address",
    "distributed.comm.tls.ca-file",
    "distributed.comm.tls.client.cert",
    "distributed.comm.tls.client.key",
)


@pytest.fixture
def clean_env(monkeypatch):
    for name in CLUSTER_VARS:
        monkeypatch.delenv(name, raising=False)
    with dask.config.set(dict.fromkeys(DASK_SETTINGS)):
        yield monkeypatch


def _flat(tree: dict, prefix: str = "") -> dict:
    """Dotted keys for dask.config.set (a nested dict would replace whole sections)."""
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _tls_config(ca=None, cert=None, key=None) -> dict:
    return dict(zip(DASK_SETTINGS[1:], (ca, cert, key), strict=True))


def test_no_cluster_configured(clean_env):
    with pytest.raises(ConnectError, match="ASTROKIT_SCHEDULER_ADDRESS is not set"):
        connect()


def test_tls_address_without_credentials(clean_env):
    clean_env.setenv("ASTROKIT_SCHEDULER_ADDRESS", "tls://127.0.0.1:1")
    with pytest.raises(ConnectError, match="needs TLS credentials"):
        connect()


def test_incomplete_tls_configuration_names_the_missing_settings(clean_env, tmp_path):
    creds = make_credentials(tmp_path, "x")
    with (
        dask.config.set(_tls_config(ca=str(creds.ca_file))),
        pytest.raises(
            ConnectError,
            match=r"tls\.client\.cert \(DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT\), "
            r"distributed\.comm\.tls\.client\.key \(DASK_\w+__KEY\) not set",
        ),
    ):
        security_from_env()
    # the same through the variables, parsed by Dask's own rules
    env = {"DASK_DISTRIBUTED__COMM__TLS__CA_FILE": str(creds.ca_file)}
    with pytest.raises(ConnectError, match="CLIENT__CERT"):
        security_from_env(env)


def test_missing_credential_file_is_named(clean_env, tmp_path):
    creds = make_credentials(tmp_path, "x")
    config = _tls_config(str(creds.ca_file), str(tmp_path / "gone.pem"), str(creds.client_key))
    with (
        dask.config.set(config),
        pytest.raises(ConnectError, match=r"gone\.pem', which is not a readable file"),
    ):
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
    # without a mapping: Dask's live configuration, however it was set
    config = _tls_config(str(creds.ca_file), str(creds.client_cert), str(creds.client_key))
    with dask.config.set(config):
        live = security_from_env()
    assert live.tls_ca_file == str(creds.ca_file) and live.require_encryption


def test_dask_environment_variables_reach_the_library_through_dask_config(clean_env, tmp_path):
    """DASK_* variables are parsed by Dask (at import, or on refresh), not by AstroKit."""
    creds = make_credentials(tmp_path, "x")
    clean_env.setenv("DASK_SCHEDULER_ADDRESS", "tls://127.0.0.1:9")
    clean_env.setenv("DASK_DISTRIBUTED__COMM__TLS__CA_FILE", str(creds.ca_file))
    clean_env.setenv("DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT", str(creds.client_cert))
    clean_env.setenv("DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY", str(creds.client_key))
    with dask.config.set(_flat(dask.config.collect_env())):  # what Dask does at import
        assert configured_address() == "tls://127.0.0.1:9"
        assert security_from_env().tls_client_cert == str(creds.client_cert)
    assert configured_address() is None  # the fixture cleared Dask's setting


def test_tls_address_needs_the_dask_ca_setting(clean_env):
    with (
        dask.config.set({"scheduler-address": "tls://127.0.0.1:1"}),
        pytest.raises(
            ConnectError, match=r"needs TLS credentials.*distributed\.comm\.tls\.ca-file"
        ),
    ):
        connect()


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
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address="127.0.0.1:0"
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


def test_client_or_local_connects_to_dasks_scheduler_address(plain_cluster, clean_env):
    clean_env.setenv("ASTROKIT_N_WORKERS", "1")
    with (
        dask.config.set({"scheduler-address": plain_cluster.scheduler_address}),
        client_or_local() as chosen,
    ):
        assert chosen.scheduler.address == plain_cluster.scheduler_address
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
