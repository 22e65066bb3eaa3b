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

Security model (see the README's "Security model"): when the hub runs as root, every
process of a server runs under the hub user's own Unix account (:mod:`.accounts`), inside
control groups that enforce the profile's memory, CPU and process limits
(:mod:`.cgroups`); the server's files (TLS keys, logs, state) belong to that account with
modes 0600/0700, and its Dask dashboard port accepts connections from that account only
(:mod:`.firewall`). Clusters are isolated from each other by TLS as well - the scheduler and
workers accept only peers holding certificates signed by that server's own CA. When the hub
is not root everything runs as the hub's own account; the spawner then serves one hub user
only, unless the admin sets ``single_account = True`` knowing that those users can then read
and stop each other's work.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import sys
import time
from pathlib import Path
from subprocess import DEVNULL, Popen
from typing import Any
from urllib.parse import unquote, urlparse

from jupyterhub.spawner import Spawner, SpawnException, set_user_setuid
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from traitlets import Bool, Float, Integer, Unicode, default

from astrokit.env import SHARED_URL, USER_URL

from . import firewall, ports, worker_cgroup
from .accounts import (
    AccountError,
    SystemAccount,
    account_name,
    chown_tree,
    ensure_account,
    make_parents_traversable,
)
from .cgroups import (
    CLUSTER,
    MANAGER,
    NOTEBOOK,
    CgroupError,
    Limits,
    ServerCgroups,
    detect,
    worker_slot,
)
from .cluster_manager import ClusterSpec, read_status
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
from .home import HomeSpec, home_command, welcome_text
from .options import ProfilesMixin
from .processes import ProcessRef
from .profiles import Profile
from .slurm_spawner import SlurmSpawnerMixin
from .start_queue import StartQueue
from .teardown import end_server, remove_server_dir
from .tls import make_credentials
from .warm_start import WarmProcess, WarmStarts

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


#: One start queue per hub process and limit (see AstroKitSpawner.concurrent_starts).
_START_QUEUES: dict[int, StartQueue] = {}
#: One set of templates per python and run directory in this hub (:mod:`.warm_start`).
_WARM_STARTS: dict[tuple[str, str], WarmStarts] = {}


def warm_starts(python: str, run_dir: str) -> WarmStarts:
    """This hub's templates for servers of ``python`` under ``run_dir`` (made once)."""
    key = (python, str(run_dir))
    if key not in _WARM_STARTS:
        _WARM_STARTS[key] = WarmStarts(python, Path(run_dir) / "warm-start")
    return _WARM_STARTS[key]


def close_warm_starts() -> None:
    """End this process's templates (what they forked keeps running)."""
    while _WARM_STARTS:
        _WARM_STARTS.popitem()[1].close()


def _ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, ..., 11th, 12th, 13th, 21st."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


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

    # --- isolation between users (embedded default) ------------------------------------
    system_user_prefix = Unicode(
        "astrokit-",
        help="""When the hub runs as root, each hub user's processes run as the system account
        <prefix><hub user name> (e.g. astrokit-ada), created on first spawn with a 0700 home
        (home_dir_template) and kept afterwards. Hub names that cannot become account names
        (upper case, spaces, longer than 32 characters with the prefix) are refused.""",
    ).tag(config=True)

    single_account = Bool(
        False,
        help="""Only when the hub does NOT run as root: allow more than one hub user to spawn,
        all of them under the hub's own account. Those users can then read each other's files,
        credentials and processes, and stop each other's work. Off by default: a non-root hub
        serves the first user who spawns and refuses every other one with a message. Ignored
        when the hub runs as root (servers never run as root).""",
    ).tag(config=True)

    enforce_limits = Bool(
        True,
        help="""Apply the profile's notebook memory/CPU and the cluster's memory/CPU as cgroup
        limits (v1 or v2, detected), with an equal CPU weight per account. When the hub runs
        as root and no cgroup hierarchy is writable, spawns fail with a message rather than
        run unlimited; set False to run without limits knowingly.""",
    ).tag(config=True)

    max_processes = Integer(
        4096,
        min=0,
        help="Most processes and threads one server may have (cgroup pids limit; 0: none).",
    ).tag(config=True)

    scheduler_memory = Integer(
        1024**3,
        min=0,
        help="""Bytes allowed on top of the workers' memory in the cluster's cgroup, for the
        cluster manager and the Dask scheduler.""",
    ).tag(config=True)

    dashboard_firewall = Bool(
        True,
        help="""When the hub runs as root, add a packet-filter rule (iptables, owner match) so
        that a server's Dask dashboard port accepts connections from its owner's account only:
        other users can reach it neither directly nor through their own
        /user/<name>/proxy/<port>/. Spawns fail with a message when iptables is missing.""",
    ).tag(config=True)

    # --- many users at once, and what they land in -------------------------------------
    concurrent_starts = Integer(
        help="""Server starts that run at the same time in this hub; further starts wait in
        line, in order, and their progress page shows their place. A start is CPU-bound for a
        few seconds and keeps two cores busy (the notebook server on one, the scheduler and
        workers on the other), so a workshop's worth of simultaneous starts finishes sooner a
        few at a time, the first users within seconds, than all together. Default: one start
        per two CPUs (at least 1). JupyterHub's concurrent_spawn_limit still caps how many
        may be pending at all.""",
    ).tag(config=True)

    @default("concurrent_starts")
    def _default_concurrent_starts(self) -> int:
        # Measured on 2 cores (benchmarks/workshop.py, 10 users): 2 at a time made pairs
        # ready every ~8.5 s (4.3 s a user); one start alone is ready in ~3.1 s.
        return max(1, (os.cpu_count() or 1) // 2)

    warm_start = Bool(
        True,
        help="""Fork each server's notebook and cluster manager from a template process of
        this hub that has already imported JupyterLab, JupyterHub's single-user app and
        distributed (:mod:`astrokit_spawner.warm_start`), instead of starting a fresh Python
        that imports them again: most of the CPU of a start. Off: every start execs.""",
    ).tag(config=True)

    tutorials_dir = Unicode(
        help="""Folder of teaching notebooks (*.ipynb) copied into each user's home as
        astrokit-tutorials/ at every start, without overwriting the user's edits
        (astrokit_spawner.home). Default: <store>/shared/tutorials for a file:// store (which
        `astrokit platform prepare` fills from the project's notebooks/); '' for none.""",
    ).tag(config=True)

    @default("tutorials_dir")
    def _default_tutorials_dir(self) -> str:
        parsed = urlparse(self.store_url)
        if parsed.scheme != "file":
            return ""
        return str(Path(unquote(parsed.path)) / "shared" / "tutorials")

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
    account = Unicode("")
    notebook_ref: ProcessRef | None = None
    manager_ref: ProcessRef | None = None

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._popens: list[Popen | WarmProcess] = []
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
                "account": self.account,
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
        self.account = data.get("account", "")
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
        self.account = ""
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
        env["USER"] = self.account or self.user.name
        env["LOGNAME"] = env["USER"]
        env["HOME"] = str(self.home_dir)
        env["SHELL"] = "/bin/bash"
        env.update(store_environment(self.store_settings(), self.user.name))
        if self.server_id:
            env[SERVER_ID] = self.server_id
        return env

    def _home_spec(self, profile: Profile, dashboard_url: str) -> HomeSpec:
        """What the user's home gets at this start (see :mod:`astrokit_spawner.home`)."""
        store = store_environment(self.store_settings(), self.user.name)
        links = {}
        if urlparse(self.store_url).scheme == "file":
            links = {
                "store-shared": unquote(urlparse(store[SHARED_URL]).path),
                "store-mine": unquote(urlparse(store[USER_URL]).path),
            }
        tutorials = bool(self.tutorials_dir) and Path(self.tutorials_dir).is_dir()
        return HomeSpec(
            home=str(self.home_dir),
            tutorials_source=self.tutorials_dir if tutorials else "",
            links=links,
            welcome=welcome_text(
                user=self.user.name,
                profile=profile.name,
                dashboard_url=dashboard_url,
                store_url=self.store_url,
                user_url=store[USER_URL],
                links=links,
                tutorials=tutorials,
            ),
        )

    def _prepare_store(self, account: SystemAccount | None) -> None:
        """Create the user's prefix for file:// stores (S3 prefixes need no creation).

        With accounts, ``users/`` is traversable but not listable (0711) and the user's own
        prefix belongs to the user alone (0700): the OS, not only the library, keeps other
        users out of it.
        """
        parsed = urlparse(self.store_url)
        if parsed.scheme != "file":
            return
        env = store_environment(self.store_settings(), self.user.name)
        user_path = Path(unquote(urlparse(env[USER_URL]).path))
        if account is not None:
            make_parents_traversable(user_path)
        user_path.mkdir(parents=True, exist_ok=True)
        if account is not None:
            if user_path.parent.stat().st_uid == 0:
                user_path.parent.chmod(0o711)
            os.chown(user_path, account.uid, account.gid)
            user_path.chmod(0o700)

    # --- accounts, limits ------------------------------------------------------------
    runs_as_root = Bool(
        help="""Whether servers run under per-user system accounts: true exactly when the hub
        is root. Not configurable; unit tests of the progress stream turn it off.""",
    )

    @default("runs_as_root")
    def _default_runs_as_root(self) -> bool:
        return os.geteuid() == 0

    async def _resolve_account(self) -> SystemAccount | None:
        """The user's system account (created if needed), or None on a non-root hub."""
        if not self.runs_as_root:
            self._claim_single_account()
            return None
        try:
            name = account_name(self.system_user_prefix, self.user.name)
            account = await ensure_account(name, self.home_dir)
        except AccountError as exc:
            raise SpawnException(str(exc), reason="account", status_code=400) from exc
        self.account = account.name
        return account

    def _claim_single_account(self) -> None:
        """On a non-root hub, serve one hub user only unless single_account is set."""
        if self.single_account:
            return
        owner_file = Path(self.run_dir) / "single-account-user"
        owner_file.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(owner_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            owner = owner_file.read_text().strip()
            if owner != self.user.name:
                raise SpawnException(
                    f"This hub does not run as root, so every server would run under its one "
                    f"account ({os.environ.get('USER') or os.getuid()}), where users could read "
                    f"and stop each other's work. It serves {owner!r} only; the admin can set "
                    "c.AstroKitSpawner.single_account = True to share that account knowingly.",
                    reason="single-account",
                    status_code=403,
                ) from None
            return
        with os.fdopen(fd, "w") as handle:
            handle.write(self.user.name + "\n")

    def _check_reachable(self, account: SystemAccount) -> None:
        """Fail early, with the path, if the account cannot run this Python environment."""
        for exe in (self.cmd[0], self.cluster_python):
            path = Path(exe).absolute()
            for directory in {*path.parents, *path.resolve().parents}:
                mode = directory.stat().st_mode
                if not mode & 0o001:
                    raise SpawnException(
                        f"The Python environment {path.parent} cannot be used by account "
                        f"{account.name}: {directory} is not searchable by other users",
                        reason="environment",
                        status_code=500,
                    )

    def _cgroups(self) -> ServerCgroups | None:
        """The server's cgroups (not created), or None when limits are not enforced."""
        if not (self.enforce_limits and self.runs_as_root and self.server_id):
            return None
        tree = detect()
        if tree is None:
            return None
        return tree.server(self.account or "hub", self.server_id)

    def _make_cgroups(
        self, profile: Profile, account: SystemAccount | None
    ) -> tuple[ServerCgroups | None, dict[str, str]]:
        """Create the server's cgroups; return them and the cluster's extra environment."""
        cgroups = self._cgroups()
        if cgroups is None:
            if self.enforce_limits and self.runs_as_root:
                raise SpawnException(
                    "Resource limits cannot be enforced: no writable cgroup hierarchy "
                    "(v1 or v2) under /sys/fs/cgroup",
                    reason="limits",
                    status_code=500,
                    log_message="set c.AstroKitSpawner.enforce_limits = False to run unlimited",
                )
            return None, {}
        limits = {
            NOTEBOOK: Limits(memory_bytes=profile.notebook_memory, cpus=profile.notebook_cpu),
            CLUSTER: Limits(
                memory_bytes=profile.n_workers * profile.worker_memory + self.scheduler_memory,
                cpus=float(profile.n_workers * profile.threads_per_worker),
            ),
        }
        # Workers on this machine get a memory-limited slot each; Slurm's run elsewhere.
        slots = profile.n_workers if profile.backend == "local" else 0
        try:
            cgroups.create(
                limits,
                server_pids=self.max_processes or None,
                worker_slots=slots,
                worker_limits=Limits(memory_bytes=profile.worker_memory),
                owner=(account.uid, account.gid) if account else None,
            )
        except (CgroupError, OSError) as exc:
            raise SpawnException(
                "Resource limits could not be applied", reason="limits", status_code=500,
                log_message=str(exc),
            ) from exc  # fmt: skip
        if not slots:
            return cgroups, {}
        locks = Path(self.server_dir) / "worker-slots"
        locks.mkdir(mode=0o700, exist_ok=True)
        if account is not None:
            os.chown(locks, account.uid, account.gid)
        config = {
            "locks": str(locks),
            "slots": [cgroups.procs_files(worker_slot(k)) for k in range(slots)],
        }
        return cgroups, {
            worker_cgroup.ENV: json.dumps(config),
            "DASK_DISTRIBUTED__WORKER__PRELOAD": repr([worker_cgroup.__name__]),
        }

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
    def _warm_starts(self) -> WarmStarts:
        return warm_starts(self.cluster_python, self.run_dir)

    async def _launch(
        self,
        cmd: list[str],
        env: dict[str, str],
        log_path: Path,
        cwd: Path,
        *,
        account: SystemAccount | None,
        cgroups: ServerCgroups | None,
        part: str,
    ) -> Popen | WarmProcess:
        """Start one top-level process of the server, as ``account`` inside its cgroup."""
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        if account is not None:
            os.fchown(fd, account.uid, account.gid)
        if self.warm_start:
            try:
                warm = await asyncio.to_thread(
                    self._warm_starts().launch,
                    cmd,
                    env,
                    fd,
                    cwd,
                    account=account,
                    cgroup_procs=cgroups.procs_files(part) if cgroups is not None else [],
                )
            except BaseException:
                os.close(fd)
                raise
            if warm is not None:
                os.close(fd)
                self._popens.append(warm)
                return warm
        switch_user = set_user_setuid(account.name, chdir=False) if account else None

        def preexec() -> None:
            # Runs in the child between fork and exec: the cgroup first (it needs root),
            # then the account; everything the process starts inherits both.
            if cgroups is not None:
                cgroups.enter(part)
            if switch_user is not None:
                switch_user()

        with os.fdopen(fd, "ab") as log:
            proc = Popen(
                cmd,
                env=env,
                cwd=str(cwd),
                stdin=DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # own session: survives hub restarts, one group to end
                preexec_fn=preexec if (cgroups or switch_user) else None,
            )
        self._popens.append(proc)
        return proc

    def _write_owned(self, path: Path, text: str, account: SystemAccount | None) -> None:
        """Write a file the server's processes read (0600, owned by the account)."""
        tmp = path.with_name(f".{path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        if account is not None:
            os.chown(tmp, account.uid, account.gid)
        os.replace(tmp, path)

    async def start(self) -> tuple[str, int]:
        """Start the cluster and the notebook; return once both are ready."""
        self._events = []
        self._parts = {}
        self._start_done = False
        queue = _START_QUEUES.setdefault(self.concurrent_starts, StartQueue(self.concurrent_starts))

        def waiting(place: int) -> None:
            self._emit(
                1,
                f"Waiting to start: {_ordinal(place)} in line "
                f"({queue.running} server{'s' if queue.running != 1 else ''} starting now)",
            )

        try:
            async with queue.slot(waiting):
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
        self._emit(5, f"Profile {profile.name}: {profile.summary()}")
        account = await self._resolve_account()
        if account is not None:
            self._check_reachable(account)
        servers = Path(self.run_dir) / "servers"
        if account is not None:
            # Each server's directory (0700) is reachable by its owner only.
            make_parents_traversable(servers / "x")
        servers.mkdir(parents=True, exist_ok=True)
        server_dir = servers / self.server_id
        server_dir.mkdir(mode=0o700, exist_ok=False)
        self.server_dir = str(server_dir)
        # Picked outside the kernel's ephemeral range and reserved in this hub: no worker
        # or other user's start can take them before our processes bind them (.ports).
        self.port = self.port or ports.pick_port()
        self.dashboard_port = ports.pick_port()

        # Key generation and file writes run off the event loop: a hub serving many users
        # must keep answering while one of them spawns.
        creds = await asyncio.to_thread(make_credentials, server_dir / "tls", self.server_id)
        self._emit(10, "TLS credentials made for this server")

        self.home_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._prepare_store(account)
        if account is not None:
            await asyncio.to_thread(chown_tree, server_dir, account)
        cgroups, cluster_cgroup_env = self._make_cgroups(profile, account)
        if account is not None and self.dashboard_firewall:
            try:
                await firewall.allow_only_owner(self.dashboard_port, account.uid, self.server_id)
            except firewall.FirewallError as exc:
                raise SpawnException(
                    "Your Dask dashboard could not be made private", reason="firewall",
                    status_code=500, log_message=str(exc),
                ) from exc  # fmt: skip
        base_env = self.get_env()

        # The scheduler port is chosen here so that the notebook, which needs the address in
        # its environment, can start at the same time as the cluster.
        scheduler_port = ports.pick_port()
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
        self._write_owned(server_dir / "cluster-spec.json", spec.to_json(), account)
        manager = await self._launch(
            cluster_manager_command(self.cluster_python, str(server_dir / "cluster-spec.json")),
            {
                **cluster_environment(base_env, threads_per_worker=profile.threads_per_worker),
                **cluster_cgroup_env,
            },
            server_dir / "cluster.log",
            server_dir,
            account=account,
            cgroups=cgroups,
            part=MANAGER,
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
        # The notebook's process first prepares the home as the user (tutorials, store links,
        # WELCOME.md), then becomes the notebook server (exec): .home.
        home_spec = server_dir / "home.json"
        self._write_owned(home_spec, self._home_spec(profile, dashboard_url).to_json(), account)
        notebook = await self._launch(
            [
                *home_command(self.cluster_python, str(home_spec)),
                *notebook_command(
                    self.cmd, self.get_args(), as_root=account is None and self.runs_as_root
                ),
            ],
            env,
            server_dir / "notebook.log",
            self.home_dir,
            account=account,
            cgroups=cgroups,
            part=NOTEBOOK,
        )
        self.notebook_ref = ProcessRef.of(notebook.pid)
        self._write_owned(
            server_dir / "notebook.json", json.dumps(self.notebook_ref.to_dict()), account
        )
        self._emit(20, "Starting the notebook server")

        await _all_or_cancel(
            self._wait_cluster(spec, manager),
            self._wait_notebook(notebook, server_dir / "notebook.log"),
        )
        self._emit(100, f"Ready: notebook and {profile.n_workers} Dask workers")
        return ("127.0.0.1", self.port)

    async def _wait_cluster(self, spec: ClusterSpec, manager: Popen | WarmProcess) -> None:
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

    async def _wait_notebook(self, notebook: Popen | WarmProcess, log: Path) -> None:
        url = f"http://127.0.0.1:{self.port}{self.server.base_url}api"
        client = AsyncHTTPClient()
        # As long as the cluster may take: both start at once on the same cores.
        seconds = max(self.http_timeout, self.cluster_start_timeout)
        deadline = time.monotonic() + seconds
        while True:
            if time.monotonic() > deadline:
                raise SpawnException(
                    f"The notebook server did not answer within {seconds:g} s",
                    reason="notebook",
                    status_code=500,
                    log_message=_log_tail(log),
                )
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
        await end_server(
            self.server_id,
            refs=[self.notebook_ref, self.manager_ref],
            account=self.account,
            grace=grace,
        )
        await self.cancel_slurm_jobs()  # Slurm hook 3: no job outlives the server
        self._reap()
        if self.server_dir:
            await remove_server_dir(self.server_dir)

    async def stop(self, now: bool = False) -> None:
        """End every process of the server (notebook, kernels, scheduler, workers)."""
        if not self.server_id:
            return
        self.log.info("stopping %s (server %s)", self._log_name, self.server_id)
        await self._terminate(grace=0.0 if now else self.stop_grace)
        self.clear_state()
