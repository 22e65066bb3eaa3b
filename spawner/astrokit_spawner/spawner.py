"""``AstroKitSpawner``: a notebook server with its own Dask cluster, as local processes.

The embedded default. For each server it

1. resolves the requested profile within the user's caps (:mod:`astrokit_spawner.options`);
2. makes TLS credentials for that server alone (:mod:`astrokit_spawner.tls`);
3. starts, concurrently, the cluster manager (a TLS ``LocalCluster`` in its own process and
   session, :mod:`astrokit_spawner.cluster_manager`) and ``jupyterhub-singleuser``
   (JupyterLab, with jupyter-server-proxy for the dashboard), both from this environment;
4. returns from ``start()`` only once the notebook answers HTTP *and* all workers joined,
   streaming the stages through ``progress()``.

``poll()`` reports the server stopped when the notebook or the scheduler (the manager) died,
and then ends whatever is left; ``stop()`` ends every process the spawn started (see
:mod:`astrokit_spawner.processes`). State (pids with creation times, scheduler address, paths)
survives a hub restart through ``get_state``/``load_state``.

Security model: like JupyterHub's ``SimpleLocalProcessSpawner``, every process runs as the
hub's OS user. Clusters are isolated from each other by TLS - the scheduler and workers
accept only peers holding certificates signed by that server's own CA, so a client with
another server's credentials (or none) is refused. This protects against mistakes and
against other users' *network* access; it is not a sandbox between mutually hostile users,
who share an OS account here and could read each other's files. Deployments that need that
use system users or the Kubernetes backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import sys
import time
from pathlib import Path
from subprocess import DEVNULL, Popen
from typing import Any
from urllib.parse import unquote, urlparse

from jupyterhub.spawner import Spawner, SpawnException
from jupyterhub.utils import random_port
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from traitlets import Bool, Float, Integer, Unicode, default

from .cluster_manager import ClusterSpec, read_status, write_json_atomic
from .environment import (
    SERVER_ID,
    ClientTLSPaths,
    StoreSettings,
    cluster_environment,
    cluster_manager_command,
    dashboard_path,
    notebook_cluster_environment,
    notebook_command,
    safe_slug,
    store_environment,
)
from .options import ProfilesMixin
from .processes import ProcessRef, terminate_server
from .profiles import Profile
from .slurm_spawner import SlurmSpawnerMixin
from .tls import make_credentials

__all__ = ["AstroKitSpawner"]

#: Seconds between readiness checks while starting.
_POLL = 0.05

#: Progress once both processes are launched, and the share of each concurrent stage after.
_PROGRESS_BASE = 20
_PROGRESS_WEIGHTS = {"scheduler": 10, "workers": 45, "notebook": 20}


async def _all_or_cancel(*coros) -> None:
    """Await all coroutines; when one fails (or we are cancelled) cancel the rest first."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        # Collect them, so no "exception was never retrieved" noise follows the real error.
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def _log_tail(path: Path, lines: int = 15) -> str:
    """Last lines of a log file, for error messages (empty if unreadable)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])


class AstroKitSpawner(SlurmSpawnerMixin, ProfilesMixin, Spawner):
    """Spawn a JupyterLab server plus a per-server, TLS-secured Dask cluster as local processes.

    Select it with ``c.JupyterHub.spawner_class = "astrokit"``. Profiles and caps are
    configured on :class:`~astrokit_spawner.options.ProfilesMixin`; the traits below
    configure where things live and how the cluster behaves when idle.
    """

    run_dir = Unicode(
        help="""Directory for per-server state (TLS files, logs, scratch) and, by default,
        home directories and the store. Default: $ASTROKIT_RUN_DIR, else ~/.astrokit.""",
    ).tag(config=True)

    @default("run_dir")
    def _default_run_dir(self) -> str:
        return os.environ.get("ASTROKIT_RUN_DIR") or str(Path.home() / ".astrokit")

    home_dir_template = Unicode(
        "{run_dir}/home/{username}",
        help="""Home (and working) directory of a user's notebook server; {run_dir} and
        {username} are expanded. Created on spawn.""",
    ).tag(config=True)

    store_url = Unicode(
        help="""Root URL of the object store handed to notebooks and workers as
        ASTROKIT_STORE_URL (file:///... or s3://bucket). Default: $ASTROKIT_STORE_URL, else
        file://{run_dir}/store. For file:// stores the user's prefix users/<name>/ is created
        on spawn.""",
    ).tag(config=True)

    @default("store_url")
    def _default_store_url(self) -> str:
        return os.environ.get("ASTROKIT_STORE_URL") or f"file://{Path(self.run_dir) / 'store'}"

    s3_endpoint = Unicode(
        help="S3 endpoint URL for s3:// stores (default: $ASTROKIT_S3_ENDPOINT; empty: AWS)."
    ).tag(config=True)

    @default("s3_endpoint")
    def _default_s3_endpoint(self) -> str:
        return os.environ.get("ASTROKIT_S3_ENDPOINT", "")

    s3_anon = Bool(
        help="Anonymous S3 access for public buckets (default: $ASTROKIT_S3_ANON == '1')."
    ).tag(config=True)

    @default("s3_anon")
    def _default_s3_anon(self) -> bool:
        return os.environ.get("ASTROKIT_S3_ANON", "") == "1"

    aws_access_key_id = Unicode(
        help="S3 access key given to notebooks and workers (default: $AWS_ACCESS_KEY_ID)."
    ).tag(config=True)

    @default("aws_access_key_id")
    def _default_aws_access_key_id(self) -> str:
        return os.environ.get("AWS_ACCESS_KEY_ID", "")

    aws_secret_access_key = Unicode(
        help="S3 secret key given to notebooks and workers (default: $AWS_SECRET_ACCESS_KEY)."
    ).tag(config=True)

    @default("aws_secret_access_key")
    def _default_aws_secret_access_key(self) -> str:
        return os.environ.get("AWS_SECRET_ACCESS_KEY", "")

    model_url = Unicode(
        help="Default photo-z checkpoint URL, as ASTROKIT_MODEL_URL (default: from the env)."
    ).tag(config=True)

    @default("model_url")
    def _default_model_url(self) -> str:
        return os.environ.get("ASTROKIT_MODEL_URL", "")

    cluster_python = Unicode(
        sys.executable,
        help="Python that runs the cluster manager and the Dask workers (needs astrokit).",
    ).tag(config=True)

    cluster_idle_timeout = Float(
        600.0,
        help="""Seconds a Dask worker may sit idle before the cluster releases it (adaptive
        scaling down to cluster_idle_minimum). astrokit.connect() and new work scale it back
        up. 0 keeps all workers for the server's lifetime.""",
    ).tag(config=True)

    cluster_idle_minimum = Integer(
        0,
        min=0,
        help="Workers kept while the cluster is idle (0 or 1 are typical).",
    ).tag(config=True)

    cluster_start_timeout = Float(
        120.0,
        help="Seconds the cluster may take to start all workers before the spawn fails.",
    ).tag(config=True)

    stop_grace = Float(
        10.0,
        help="Seconds processes get to exit after SIGTERM on stop before SIGKILL.",
    ).tag(config=True)

    @default("cmd")
    def _default_cmd(self) -> list[str]:
        return [str(Path(sys.executable).parent / "jupyterhub-singleuser")]

    @default("default_url")
    def _default_default_url(self) -> str:
        return "/lab"

    # --- per-spawn state (persisted through get_state/load_state) ----------------------
    server_id = Unicode("")
    server_dir = Unicode("")
    scheduler_address = Unicode("")
    dashboard_port = Integer(0)
    notebook_ref: ProcessRef | None = None
    manager_ref: ProcessRef | None = None

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._popens: list[Popen] = []
        self._events: list[dict[str, Any]] = []
        self._parts: dict[str, float] = {}
        self._event_signal = asyncio.Event()
        self._start_done = True

    # --- state ----------------------------------------------------------------------
    def get_state(self) -> dict[str, Any]:
        """Spawner state for the hub's database (JSON)."""
        state = super().get_state()
        if self.server_id:
            state["astrokit"] = {
                "server_id": self.server_id,
                "server_dir": self.server_dir,
                "scheduler_address": self.scheduler_address,
                "dashboard_port": self.dashboard_port,
                "port": self.port,
                "notebook": self.notebook_ref.to_dict() if self.notebook_ref else None,
                "manager": self.manager_ref.to_dict() if self.manager_ref else None,
                "profile": self.astrokit_profile.to_dict() if self.astrokit_profile else None,
            }
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore state after a hub restart."""
        super().load_state(state)
        data = state.get("astrokit") or {}
        if not data:
            return
        self.server_id = data.get("server_id", "")
        self.server_dir = data.get("server_dir", "")
        self.scheduler_address = data.get("scheduler_address", "")
        self.dashboard_port = int(data.get("dashboard_port") or 0)
        self.port = int(data.get("port") or 0)
        self.notebook_ref = ProcessRef.from_dict(data.get("notebook"))
        self.manager_ref = ProcessRef.from_dict(data.get("manager"))
        if data.get("profile"):
            self.astrokit_profile = Profile.from_dict(data["profile"])

    def clear_state(self) -> None:
        """Forget the (stopped) server."""
        super().clear_state()
        self.server_id = ""
        self.server_dir = ""
        self.scheduler_address = ""
        self.dashboard_port = 0
        self.notebook_ref = None
        self.manager_ref = None

    # --- environment ----------------------------------------------------------------
    @property
    def home_dir(self) -> Path:
        """The user's home and working directory."""
        return Path(self.home_dir_template.format(run_dir=self.run_dir, username=self.user.name))

    def store_settings(self) -> StoreSettings:
        """The store settings handed to notebooks and workers."""
        return StoreSettings(
            store_url=self.store_url,
            s3_endpoint=self.s3_endpoint,
            s3_anon=self.s3_anon,
            aws_access_key_id=self.aws_access_key_id,
            aws_secret_access_key=self.aws_secret_access_key,
            model_url=self.model_url,
        )

    def get_env(self) -> dict[str, str]:
        """JupyterHub's environment plus home, store variables and the server id."""
        env = super().get_env()
        env["USER"] = self.user.name
        env["HOME"] = str(self.home_dir)
        env["SHELL"] = "/bin/bash"
        env.update(store_environment(self.store_settings(), self.user.name))
        if self.server_id:
            env[SERVER_ID] = self.server_id
        return env

    def _prepare_store(self) -> None:
        """Create the user's prefix for file:// stores (S3 prefixes need no creation)."""
        parsed = urlparse(self.store_url)
        if parsed.scheme != "file":
            return
        env = store_environment(self.store_settings(), self.user.name)
        user_path = Path(unquote(urlparse(env["ASTROKIT_USER_URL"]).path))
        user_path.mkdir(parents=True, exist_ok=True)

    # --- progress -------------------------------------------------------------------
    def _advance(self, part: str, fraction: float, message: str) -> None:
        """Emit progress for one of the concurrent stages; the total never goes back."""
        self._parts[part] = max(self._parts.get(part, 0.0), fraction)
        total = _PROGRESS_BASE + sum(
            weight * self._parts.get(name, 0.0) for name, weight in _PROGRESS_WEIGHTS.items()
        )
        self._emit(int(total), message)

    def _emit(self, progress: int, message: str) -> None:
        self._events.append({"progress": progress, "message": message})
        self.log.info("%s: %s", self._log_name, message)
        signal_, self._event_signal = self._event_signal, asyncio.Event()
        signal_.set()

    async def progress(self):
        """Stream the real stages of the running start(); never raises."""
        index = 0
        try:
            while True:
                while index < len(self._events):
                    yield self._events[index]
                    index += 1
                if self._start_done:
                    return
                signal_ = self._event_signal
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(signal_.wait(), timeout=1.0)
        except asyncio.CancelledError:
            raise
        except Exception:  # progress must never break the spawn page
            self.log.exception("progress stream for %s failed", self._log_name)

    # --- start ----------------------------------------------------------------------
    def _launch(self, cmd: list[str], env: dict[str, str], log_path: Path, cwd: Path) -> Popen:
        with open(log_path, "ab") as log:
            proc = Popen(
                cmd,
                env=env,
                cwd=str(cwd),
                stdin=DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # own session: survives hub restarts, one group to end
            )
        self._popens.append(proc)
        return proc

    async def start(self) -> tuple[str, int]:
        """Start the cluster and the notebook; return once both are ready."""
        self._events = []
        self._parts = {}
        self._start_done = False
        try:
            return await self._start()
        except BaseException as exc:
            # Covers SpawnException, unexpected errors and cancellation by start_timeout:
            # nothing of a failed spawn may remain.
            self.log.warning("spawn of %s failed (%r); cleaning up", self._log_name, exc)
            await asyncio.shield(self._terminate(grace=2.0))
            self.clear_state()
            raise
        finally:
            self._start_done = True
            self._emit_signal_only()

    def _emit_signal_only(self) -> None:
        signal_, self._event_signal = self._event_signal, asyncio.Event()
        signal_.set()

    async def _start(self) -> tuple[str, int]:
        profile = self.resolve_user_profile()
        self.server_id = "-".join(
            [
                safe_slug(self.user.name, max_length=24),
                safe_slug(self.name or "default", max_length=16),
                secrets.token_hex(4),
            ]
        )
        server_dir = Path(self.run_dir) / "servers" / self.server_id
        server_dir.mkdir(mode=0o700, parents=True, exist_ok=False)
        self.server_dir = str(server_dir)
        self.port = self.port or random_port()
        self.dashboard_port = random_port()

        self._emit(5, f"Profile {profile.name}: {profile.summary()}")
        creds = make_credentials(server_dir / "tls", self.server_id)
        self._emit(10, "TLS credentials made for this server")

        self.home_dir.mkdir(parents=True, exist_ok=True)
        self._prepare_store()
        base_env = self.get_env()

        # The scheduler port is chosen here so that the notebook, which needs the address in
        # its environment, can start at the same time as the cluster.
        scheduler_port = random_port()
        self.scheduler_address = f"tls://127.0.0.1:{scheduler_port}"
        spec = ClusterSpec(
            server_id=self.server_id,
            n_workers=profile.n_workers,
            threads_per_worker=profile.threads_per_worker,
            memory_limit=profile.worker_memory,
            credentials_dir=str(creds.directory),
            status_file=str(server_dir / "cluster-status.json"),
            local_directory=str(server_dir / "dask-scratch"),
            idle_timeout=self.cluster_idle_timeout,
            idle_minimum=min(self.cluster_idle_minimum, profile.n_workers),
            watch_file=str(server_dir / "notebook.json"),
            start_timeout=self.cluster_start_timeout,
            scheduler_port=scheduler_port,
            dashboard_port=self.dashboard_port,
            **self.slurm_spec_fields(profile),  # Slurm hook 1: workers as Slurm jobs
        )
        (server_dir / "cluster-spec.json").write_text(spec.to_json())
        manager = self._launch(
            cluster_manager_command(self.cluster_python, str(server_dir / "cluster-spec.json")),
            cluster_environment(base_env, threads_per_worker=profile.threads_per_worker),
            server_dir / "cluster.log",
            server_dir,
        )
        self.manager_ref = ProcessRef.of(manager.pid)
        self._emit(15, "Starting the Dask scheduler")

        dashboard_url = dashboard_path(self.server.base_url, self.dashboard_port)
        env = dict(base_env)
        env.update(
            notebook_cluster_environment(
                profile=profile,
                scheduler_address=self.scheduler_address,
                tls=ClientTLSPaths(
                    ca_file=str(creds.ca_file),
                    client_cert=str(creds.client_cert),
                    client_key=str(creds.client_key),
                ),
                dashboard_url=dashboard_url,
            )
        )
        notebook = self._launch(
            notebook_command(self.cmd, self.get_args(), as_root=os.geteuid() == 0),
            env,
            server_dir / "notebook.log",
            self.home_dir,
        )
        self.notebook_ref = ProcessRef.of(notebook.pid)
        write_json_atomic(server_dir / "notebook.json", self.notebook_ref.to_dict())
        self._emit(20, "Starting the notebook server")

        await _all_or_cancel(
            self._wait_cluster(spec, manager),
            self._wait_notebook(notebook, server_dir / "notebook.log"),
        )
        self._emit(100, f"Ready: notebook and {profile.n_workers} Dask workers")
        return ("127.0.0.1", self.port)

    async def _wait_cluster(self, spec: ClusterSpec, manager: Popen) -> None:
        log = Path(self.server_dir) / "cluster.log"
        seen_state, seen_workers = "", -1
        deadline = time.monotonic() + self.cluster_start_timeout + 30
        while True:
            status = read_status(spec.status_file) or {}
            state = status.get("state", "")
            workers = int(status.get("workers") or 0)
            if state != seen_state and state in ("scheduler", "ready"):
                if seen_state == "":
                    self._advance(
                        "scheduler", 1.0, f"Dask scheduler up at {self.scheduler_address}"
                    )
                seen_state = state if state == "ready" else "scheduler"
            if workers != seen_workers and seen_state:
                seen_workers = workers
                self._advance(
                    "workers",
                    workers / max(1, spec.n_workers),
                    f"Dask workers {workers}/{spec.n_workers}",
                )
            slurm_line = self.slurm_progress(status)  # Slurm hook 2: jobs as Slurm sees them
            if slurm_line:
                self._advance("workers", workers / max(1, spec.n_workers), slurm_line)
            if state == "ready":
                return
            if state == "failed" or manager.poll() is not None:
                reason = status.get("error") or f"exit code {manager.poll()}"
                raise SpawnException(
                    f"Your Dask cluster did not start: {reason}",
                    reason="cluster",
                    status_code=500,
                    log_message=f"cluster of {self._log_name} failed: {reason}\n{_log_tail(log)}",
                )
            if time.monotonic() > deadline:
                raise SpawnException(
                    f"Your Dask cluster did not become ready within "
                    f"{self.cluster_start_timeout:g} s",
                    reason="cluster",
                    status_code=500,
                    log_message=_log_tail(log),
                )
            await asyncio.sleep(_POLL)

    async def _wait_notebook(self, notebook: Popen, log: Path) -> None:
        url = f"http://127.0.0.1:{self.port}{self.server.base_url}api"
        client = AsyncHTTPClient()
        while True:
            if notebook.poll() is not None:
                raise SpawnException(
                    f"The notebook server exited during start (code {notebook.poll()})",
                    reason="notebook",
                    status_code=500,
                    log_message=f"notebook of {self._log_name} exited:\n{_log_tail(log)}",
                )
            try:
                response = await client.fetch(
                    HTTPRequest(url, request_timeout=2.0), raise_error=False
                )
            except (OSError, HTTPClientError, TimeoutError):
                response = None
            # Only jupyter_server's own answer counts (not whatever else may hold the port).
            if response is not None and response.code == 200 and b"version" in response.body:
                self._advance("notebook", 1.0, "Notebook server answering")
                return
            await asyncio.sleep(_POLL)

    # --- poll / stop ----------------------------------------------------------------
    def _reap(self) -> None:
        """Collect exit statuses of our own children so none stays a zombie."""
        for proc in list(self._popens):
            if proc.poll() is not None:
                self._popens.remove(proc)

    async def poll(self) -> int | None:
        """None while notebook and scheduler run; else end what is left and return 0."""
        if not self.server_id:
            return 0
        if not self._start_done:
            return None  # start() is bringing it up; it reports its own failures
        self._reap()
        notebook_alive = self.notebook_ref is not None and self.notebook_ref.alive()
        manager_alive = self.manager_ref is not None and self.manager_ref.alive()
        if notebook_alive and manager_alive:
            return None
        dead = [
            name
            for name, alive in (("notebook", notebook_alive), ("scheduler", manager_alive))
            if not alive
        ]
        self.log.warning(
            "%s: %s no longer running; ending the rest", self._log_name, " and ".join(dead)
        )
        await self._terminate(grace=min(self.stop_grace, 5.0))
        self.clear_state()
        return 0

    async def _terminate(self, *, grace: float) -> None:
        server_id = self.server_id
        survivors = await terminate_server(
            [self.notebook_ref, self.manager_ref], server_id, grace=grace
        )
        await self.cancel_slurm_jobs()  # Slurm hook 3: no job outlives the server
        self._reap()
        if survivors:
            self.log.error("%s: pids %s survived SIGKILL", self._log_name, survivors)
        if self.server_dir:
            # Credentials and scratch of a stopped server are useless; keep nothing around.
            shutil.rmtree(self.server_dir, ignore_errors=True)

    async def stop(self, now: bool = False) -> None:
        """End every process of the server (notebook, kernels, scheduler, workers)."""
        if not self.server_id:
            return
        self.log.info("stopping %s (server %s)", self._log_name, self.server_id)
        await self._terminate(grace=0.0 if now else self.stop_grace)
        self.clear_state()
