"""A cluster manager process (``python -m astrokit_spawner.cluster_manager SPEC``) for tests.

:class:`ManagerProcess` starts it the way the spawner does - its own session, a spec file,
the server's TLS credentials, the hub's environment - and reads its status file. The local
backend's tests use it as it is; the Slurm backend's tests add their settings and cancel the
jobs left behind (:meth:`ManagerProcess.release`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

from astrokit_spawner.cluster_manager import ClusterSpec, read_status
from astrokit_spawner.processes import tagged_processes
from astrokit_spawner.tls import make_credentials

from helpers.polling import wait_until

__all__ = ["ManagerProcess"]


class ManagerProcess:
    """A cluster manager process started the way the spawner starts it.

    ``spec`` is a :class:`ClusterSpec` of 2 one-thread workers of 768 MiB, no idle release
    and a 60 s start timeout, with ``overrides`` applied; ``env`` is added to this process's
    environment; ``cwd`` is where the manager runs (default: here).
    """

    #: Seconds :meth:`close` waits for the manager to stop after SIGTERM.
    stop_wait: float = 30

    def __init__(
        self,
        base: Path,
        env: dict[str, str] | None = None,
        *,
        cwd: Path | None = None,
        **overrides: Any,
    ) -> None:
        self.server_id = f"test-{uuid.uuid4().hex[:8]}"
        base.mkdir(parents=True, exist_ok=True)
        self.creds = make_credentials(base / "tls", self.server_id)
        self.spec = ClusterSpec(
            server_id=self.server_id,
            n_workers=2,
            threads_per_worker=1,
            memory_limit=768 * 1024**2,
            credentials_dir=str(self.creds.directory),
            status_file=str(base / "status.json"),
            local_directory=str(base / "scratch"),
            idle_timeout=0,
            start_timeout=60,
        )
        self.spec = replace(self.spec, **overrides)
        spec_path = base / "spec.json"
        spec_path.write_text(self.spec.to_json())
        env = dict(os.environ, **(env or {}), ASTROKIT_SERVER_ID=self.server_id)
        # Dask's nanny writes its pre-spawn variables into the os.environ of the process that
        # starts workers, so an earlier LocalCluster in this test session may have left
        # MALLOC_TRIM_THRESHOLD_ here; the hub's environment has none.
        env.pop("MALLOC_TRIM_THRESHOLD_", None)
        self.log = base / "cluster.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "astrokit_spawner.cluster_manager", str(spec_path)],
                env=env,
                stdout=log,
                stderr=log,
                start_new_session=True,
                cwd=cwd,
            )

    def status(self) -> dict:
        return read_status(self.spec.status_file) or {}

    def wait_state(self, *states: str, timeout: float = 120) -> dict:
        """Wait for the status file to report one of ``states``; fail if the manager exits."""

        def check():
            status = self.status()
            if status.get("state") in states:
                return status
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"manager exited ({self.proc.returncode}), status {status}:\n"
                    f"{self.log.read_text()[-4000:]}"
                )
            return None

        return wait_until(check, timeout, f"state {states}")

    @property
    def address(self) -> str:
        return self.status()["address"]

    def client_env(self) -> dict[str, str]:
        """What ``connect()`` reads in this server's notebook."""
        return {
            "ASTROKIT_SCHEDULER_ADDRESS": self.address,
            "DASK_DISTRIBUTED__COMM__TLS__CA_FILE": str(self.creds.ca_file),
            "DASK_DISTRIBUTED__COMM__TLS__CLIENT__CERT": str(self.creds.client_cert),
            "DASK_DISTRIBUTED__COMM__TLS__CLIENT__KEY": str(self.creds.client_key),
            "ASTROKIT_N_WORKERS": str(self.spec.n_workers),
        }

    def release(self) -> None:
        """What a backend leaves outside the manager's processes (nothing here)."""

    def close(self) -> None:
        """SIGTERM (SIGKILL to its session after :attr:`stop_wait`), then :meth:`release`
        and kill whatever process still carries the server's tag."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(self.stop_wait)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.release()
        for proc in tagged_processes(self.server_id):
            proc.kill()
