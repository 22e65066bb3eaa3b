"""TLS credentials made for one server's Dask cluster alone.

Each spawn gets a fresh certificate authority. It signs two certificates: one for the
cluster (scheduler and workers) and one for the notebook's client. Dask verifies peers
against the CA on both sides of every connection (``ssl.CERT_REQUIRED``), so a process
holding another server's credentials - or none - cannot join or use this cluster. The CA's
private key is never written: once the two certificates are signed, nobody can mint more.

Keys are elliptic-curve (P-256): generating them takes microseconds, which keeps spawns fast.
Files are written 0600 in a 0700 directory.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["ClusterCredentials", "make_credentials"]

_VALIDITY = dt.timedelta(days=365)


@dataclass(frozen=True)
class ClusterCredentials:
    """Paths of one server's TLS files.

    Attributes
    ----------
    directory
        The 0700 directory holding them.
    ca_file
        CA certificate (public) that every party verifies peers against.
    cluster_cert, cluster_key
        Certificate and key of the scheduler and workers.
    client_cert, client_key
        Certificate and key of the notebook's Dask client.
    """

    directory: Path
    ca_file: Path
    cluster_cert: Path
    cluster_key: Path
    client_cert: Path
    client_key: Path

    @classmethod
    def in_directory(cls, directory: str | os.PathLike[str]) -> ClusterCredentials:
        """The file layout under ``directory`` (the files need not exist yet)."""
        d = Path(directory)
        return cls(
            directory=d,
            ca_file=d / "ca.pem",
            cluster_cert=d / "cluster.pem",
            cluster_key=d / "cluster-key.pem",
            client_cert=d / "client.pem",
            client_key=d / "client-key.pem",
        )

    def exist(self) -> bool:
        """Whether all five files are present."""
        return all(
            p.is_file()
            for p in (
                self.ca_file,
                self.cluster_cert,
                self.cluster_key,
                self.client_cert,
                self.client_key,
            )
        )

    def security(self, role: str = "client"):
        """A :class:`distributed.Security` for ``role`` ``"client"`` or ``"cluster"``.

        The cluster role carries scheduler, worker and client certificates (the cluster
        manager runs a client-side connection to its own scheduler as well).
        """
        from distributed import Security

        if role == "client":
            return Security(
                tls_ca_file=str(self.ca_file),
                tls_client_cert=str(self.client_cert),
                tls_client_key=str(self.client_key),
                require_encryption=True,
            )
        if role == "cluster":
            cert, key = str(self.cluster_cert), str(self.cluster_key)
            return Security(
                tls_ca_file=str(self.ca_file),
                tls_scheduler_cert=cert,
                tls_scheduler_key=key,
                tls_worker_cert=cert,
                tls_worker_key=key,
                tls_client_cert=cert,
                tls_client_key=key,
                require_encryption=True,
            )
        raise ValueError(f"role must be 'client' or 'cluster', got {role!r}")


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "AstroKit"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` with mode 0600 from the start, atomically (tmp + rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


def _leaf(
    common_name: str,
    ca_key: ec.EllipticCurvePrivateKey,
    ca_name: x509.Name,
    now: dt.datetime,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        # Scheduler and workers are servers and clients of each other: both usages.
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def make_credentials(directory: str | os.PathLike[str], server_id: str) -> ClusterCredentials:
    """Create a CA and the cluster and client certificates for one server.

    Parameters
    ----------
    directory
        Where to write them; created with mode 0700 (an existing one is reused and its
        files replaced).
    server_id
        Unique id of the server, recorded in the certificates' common names.

    Returns
    -------
    ClusterCredentials
    """
    creds = ClusterCredentials.in_directory(directory)
    creds.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(creds.directory, 0o700)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(f"astrokit-ca-{server_id}")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    cluster_cert, cluster_key = _leaf(f"astrokit-cluster-{server_id}", ca_key, ca_name, now)
    client_cert, client_key = _leaf(f"astrokit-client-{server_id}", ca_key, ca_name, now)
    pem = serialization.Encoding.PEM
    _write_private(creds.ca_file, ca_cert.public_bytes(pem))
    _write_private(creds.cluster_cert, cluster_cert.public_bytes(pem))
    _write_private(creds.cluster_key, _key_pem(cluster_key))
    _write_private(creds.client_cert, client_cert.public_bytes(pem))
    _write_private(creds.client_key, _key_pem(client_key))
    return creds
