"""Per-server TLS credentials: file modes and real handshakes (own CA accepted, others refused)."""

from __future__ import annotations

import socket
import ssl
import stat
import threading

import pytest
from astrokit_spawner.tls import ClusterCredentials, make_credentials
from cryptography import x509


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_files_are_private(tmp_path):
    creds = make_credentials(tmp_path / "tls", "ada-default-1")
    assert creds.exist()
    assert _mode(creds.directory) == 0o700
    for path in (
        creds.ca_file,
        creds.cluster_cert,
        creds.cluster_key,
        creds.client_cert,
        creds.client_key,
    ):
        assert _mode(path) == 0o600, path
    assert sorted(p.name for p in creds.directory.iterdir()) == [
        "ca.pem",
        "client-key.pem",
        "client.pem",
        "cluster-key.pem",
        "cluster.pem",
    ]
    # The CA's private key is never written: no one can mint further certificates.
    assert not any("ca-key" in p.name for p in creds.directory.iterdir())
    assert ClusterCredentials.in_directory(creds.directory) == creds


def test_certificates_name_the_server_and_chain_to_its_ca(tmp_path):
    creds = make_credentials(tmp_path, "ada-default-1")
    ca = x509.load_pem_x509_certificate(creds.ca_file.read_bytes())
    client = x509.load_pem_x509_certificate(creds.client_cert.read_bytes())
    assert "astrokit-ca-ada-default-1" in ca.subject.rfc4514_string()
    assert "astrokit-client-ada-default-1" in client.subject.rfc4514_string()
    client.verify_directly_issued_by(ca)


def _handshake(server: ClusterCredentials, client: ClusterCredentials) -> None:
    """A real TLS handshake over a socket pair: server requires a client cert (as Dask)."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(server.cluster_cert, server.cluster_key)
    server_ctx.load_verify_locations(server.ca_file)
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.check_hostname = False
    client_ctx.load_cert_chain(client.client_cert, client.client_key)
    client_ctx.load_verify_locations(client.ca_file)
    a, b = socket.socketpair()
    a.settimeout(10)
    b.settimeout(10)
    errors: list[BaseException] = []

    def serve():
        try:
            with server_ctx.wrap_socket(a, server_side=True) as conn:
                conn.recv(1)
        except (ssl.SSLError, OSError) as exc:
            errors.append(exc)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with client_ctx.wrap_socket(b) as conn:
            conn.sendall(b"x")
    finally:
        thread.join(10)
    if errors:
        raise errors[0]


def test_own_credentials_handshake(tmp_path):
    creds = make_credentials(tmp_path, "ada")
    _handshake(creds, creds)


def test_other_servers_credentials_are_refused(tmp_path):
    ada = make_credentials(tmp_path / "ada", "ada")
    bob = make_credentials(tmp_path / "bob", "bob")
    with pytest.raises((ssl.SSLError, OSError)):
        _handshake(ada, bob)


def test_security_roles(tmp_path):
    creds = make_credentials(tmp_path, "ada")
    client = creds.security("client")
    assert client.require_encryption
    assert client.tls_client_cert == str(creds.client_cert)
    cluster = creds.security("cluster")
    assert cluster.tls_scheduler_key == str(creds.cluster_key)
    with pytest.raises(ValueError, match="role must be"):
        creds.security("admin")
