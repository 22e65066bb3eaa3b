"""The Slurm cluster backend: a server's Dask workers as Slurm jobs (dask-jobqueue).

A profile with ``backend: "slurm"`` keeps everything else of a server as it is - the cluster
manager process runs the TLS scheduler next to the notebook - but its workers are batch jobs
submitted with :class:`dask_jobqueue.SLURMCluster` from the cluster manager process. The
jobs therefore belong to whichever Unix account runs the manager: the user's own account
once the spawner starts the manager as the user, so ``sbatch`` accounting, QOS and limits
apply to that user, not to the hub.

This module holds

* :class:`SlurmSettings`, the admin's configuration (``c.AstroKitSpawner.slurm``), and the
  pure builders: :func:`cluster_kwargs` (``SLURMCluster`` keyword arguments from a profile
  and the settings), :func:`parse_squeue`, :func:`parse_walltime`, :func:`jobs_summary`,
  :func:`pending_failure`;
* :class:`SlurmBackend`, what the cluster manager runs: it starts the ``SLURMCluster``,
  watches the server's jobs with ``squeue`` every few seconds, replaces jobs Slurm ended
  (walltime, preemption, ``scancel``), fails a start whose jobs Slurm cannot or does not run
  (naming Slurm's reason), and reports job ids and states through the status file;
* :func:`cancel_jobs`, which the spawner calls on stop with the job ids kept in its state
  and the server's job name, so that jobs are cancelled even when the manager died.

Every job of one server carries the job name ``astrokit-<server id>`` (:func:`job_name`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shlex
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .cluster_manager import ClusterSpec

__all__ = [
    "ALIVE_STATES",
    "HOPELESS_REASONS",
    "SlurmBackend",
    "SlurmError",
    "SlurmJob",
    "SlurmSettings",
    "cancel_jobs",
    "cluster_kwargs",
    "job_name",
    "jobs_summary",
    "parse_squeue",
    "parse_walltime",
    "pending_failure",
    "squeue",
]

logger = logging.getLogger("astrokit_spawner.slurm")

#: Job states in which a job still holds (or waits for) its resources.
ALIVE_STATES = frozenset(
    {"PENDING", "CONFIGURING", "RUNNING", "RESIZING", "SUSPENDED", "REQUEUED", "REQUEUE_HOLD"}
)

#: Pending reasons that waiting cannot cure: the request itself is outside what the
#: partition, QOS or association allows. A start fails on these at once, naming the reason.
HOPELESS_REASONS = frozenset(
    {
        "PartitionTimeLimit",
        "PartitionNodeLimit",
        "PartitionConfig",
        "InvalidAccount",
        "InvalidQOS",
        "AccountNotAllowed",
        "QOSNotAllowed",
        "BadConstraints",
        "QOSMaxWallDurationPerJobLimit",
        "QOSMaxCpuPerJobLimit",
        "QOSMaxMemoryPerJob",
        "QOSMaxNodePerJobLimit",
        "AssocMaxWallDurationPerJobLimit",
        "AssocMaxCpuPerJobLimit",
        "AssocMaxMemPerJob",
        "AssocMaxNodesPerJob",
    }
)

_WALLTIME_RE = re.compile(
    r"^(?:(?P<days>\d+)-(?P<dh>\d+)(?::(?P<dm>\d+)(?::(?P<ds>\d+))?)?"
    r"|(?P<a>\d+)(?::(?P<b>\d+)(?::(?P<c>\d+))?)?)$"
)

#: Seconds between ``squeue`` calls of a running manager.
WATCH_INTERVAL = 2.0


class SlurmError(RuntimeError):
    """Slurm refused or could not run a server's jobs; the message names Slurm's reason."""


def parse_walltime(value: str, *, what: str = "walltime") -> int:
    """Seconds in a Slurm time limit (``MM``, ``MM:SS``, ``HH:MM:SS``, ``D-HH[:MM[:SS]]``).

    >>> parse_walltime("01:30:00"), parse_walltime("90"), parse_walltime("1-00")
    (5400, 5400, 86400)

    Raises
    ------
    ValueError
        Naming ``what`` and the value when it is not a Slurm time limit.
    """
    match = _WALLTIME_RE.match(str(value).strip()) if isinstance(value, str) else None
    if match is None:
        raise ValueError(
            f"{what}: {value!r} is not a Slurm time limit; use HH:MM:SS, MM, MM:SS or "
            "D-HH[:MM[:SS]], e.g. '01:00:00'"
        )
    g = {k: int(v) for k, v in match.groupdict().items() if v is not None}
    if "days" in g:
        seconds = g["days"] * 86400 + g["dh"] * 3600 + g.get("dm", 0) * 60 + g.get("ds", 0)
    elif "c" in g:  # HH:MM:SS
        seconds = g["a"] * 3600 + g["b"] * 60 + g["c"]
    else:  # MM or MM:SS
        seconds = g["a"] * 60 + g.get("b", 0)
    if seconds <= 0:
        raise ValueError(f"{what}: must be positive, got {value!r}")
    return seconds


@dataclass(frozen=True)
class SlurmSettings:
    """The admin's Slurm configuration (``c.AstroKitSpawner.slurm``), JSON-able.

    Attributes
    ----------
    partition, account, qos
        ``sbatch -p``, ``-A`` and ``--qos`` (empty: Slurm's default).
    walltime
        Default time limit of a worker job (a profile's ``walltime`` overrides it).
    prologue
        Shell lines run in the job script before the worker starts (``module load ...``,
        ``source /opt/astrokit/venv/bin/activate``).
    directives
        Extra ``#SBATCH`` directives, without the prefix (``"--constraint=skylake"``).
    interface
        Network interface the workers listen on and the scheduler is reached through
        (``ib0``); empty: the node's default.
    scheduler_host
        Address the workers use to reach the scheduler (the login node's address on the
        compute network). Empty: the address of ``interface`` on this host, else of its
        host name. The scheduler listens on all interfaces; the notebook keeps using
        loopback.
    python
        Python on the compute nodes (same environment as the hub's ``cluster_python``);
        empty: the cluster manager's own interpreter.
    local_directory
        Worker scratch on the compute node (empty: Dask's default, the node's temp dir).
    pending_timeout
        Seconds a start waits for pending jobs before it fails, naming Slurm's reason.
    death_timeout
        Seconds a worker job keeps trying to reach a vanished scheduler before it exits
        (so an orphaned job ends by itself).
    lifetime_margin
        Workers retire gracefully this many seconds before their walltime (``--lifetime``)
        and the manager submits a replacement.
    environment
        Variables for the ``sbatch``/``squeue``/``scancel`` calls and the jobs (e.g.
        ``SLURM_CONF``).
    cancel_command
        Command the *hub* runs to cancel a server's jobs on stop when the manager is gone
        (job ids and ``--name=...`` are appended). The hub must be allowed to cancel the
        user's jobs: root, a Slurm operator, or e.g. ``["sudo", "-u", "{user}", "scancel"]``
        (``{user}`` becomes the server's Unix account).
    """

    partition: str = ""
    account: str = ""
    qos: str = ""
    walltime: str = "01:00:00"
    prologue: tuple[str, ...] = ()
    directives: tuple[str, ...] = ()
    interface: str = ""
    scheduler_host: str = ""
    python: str = ""
    local_directory: str = ""
    pending_timeout: float = 60.0
    death_timeout: float = 60.0
    lifetime_margin: float = 300.0
    environment: Mapping[str, str] = field(default_factory=dict)
    cancel_command: tuple[str, ...] = ("scancel",)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> SlurmSettings:
        """Settings from the hub config (lists for the tuple fields).

        Raises
        ------
        ValueError
            On unknown keys or values of the wrong type, naming them.
        """
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"slurm: unknown setting(s) {unknown}; allowed: {sorted(names)}")
        values: dict[str, Any] = {}
        for key, value in data.items():
            if key in ("prologue", "directives", "cancel_command"):
                if isinstance(value, str) or not all(isinstance(v, str) for v in value):
                    raise ValueError(f"slurm {key}: expected a list of strings, got {value!r}")
                values[key] = tuple(value)
            elif key in ("pending_timeout", "death_timeout", "lifetime_margin"):
                if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                    raise ValueError(f"slurm {key}: expected seconds >= 0, got {value!r}")
                values[key] = float(value)
            elif key == "environment":
                if not isinstance(value, Mapping) or not all(
                    isinstance(k, str) and isinstance(v, str) for k, v in value.items()
                ):
                    raise ValueError(f"slurm environment: expected str -> str, got {value!r}")
                values[key] = dict(value)
            else:
                if not isinstance(value, str):
                    raise ValueError(f"slurm {key}: expected a string, got {value!r}")
                values[key] = value
        settings = cls(**values)
        parse_walltime(settings.walltime, what="slurm walltime")
        if not settings.cancel_command:
            raise ValueError("slurm cancel_command: must not be empty")
        return settings

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (the inverse of :meth:`from_mapping`)."""
        data = asdict(self)
        for key in ("prologue", "directives", "cancel_command"):
            data[key] = list(data[key])
        data["environment"] = dict(self.environment)
        return data


@dataclass(frozen=True)
class SlurmJob:
    """One line of ``squeue``: job id, state and pending reason (``"None"`` when running)."""

    job_id: str
    state: str
    reason: str
    name: str = ""

    @property
    def alive(self) -> bool:
        """Whether the job still runs or waits to run."""
        return self.state in ALIVE_STATES


#: ``squeue`` output format: fields separated by "|" (never part of ids, states or reasons).
SQUEUE_FORMAT = "%i|%T|%r|%j"


def job_name(server_id: str) -> str:
    """Slurm job name of every worker job of one server.

    >>> job_name("ada-default-1a2b3c4d")
    'astrokit-ada-default-1a2b3c4d'
    """
    return f"astrokit-{server_id}"


def parse_squeue(text: str) -> list[SlurmJob]:
    """Parse ``squeue -h -o '%i|%T|%r|%j'`` output.

    >>> parse_squeue("12|PENDING|Resources|astrokit-a\\n13|RUNNING|None|astrokit-a\\n")
    ... # doctest: +NORMALIZE_WHITESPACE
    [SlurmJob(job_id='12', state='PENDING', reason='Resources', name='astrokit-a'),
     SlurmJob(job_id='13', state='RUNNING', reason='None', name='astrokit-a')]
    """
    jobs = []
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) < 3 or not parts[0]:
            continue
        jobs.append(
            SlurmJob(
                job_id=parts[0],
                state=parts[1],
                reason=parts[2],
                name=parts[3] if len(parts) > 3 else "",
            )
        )
    return jobs


def jobs_summary(jobs: Sequence[SlurmJob], wanted: int) -> str:
    """A progress line: the jobs as Slurm sees them.

    >>> jobs_summary([SlurmJob("1", "RUNNING", "None"), SlurmJob("2", "PENDING", "Resources")], 2)
    'Slurm jobs: running 1/2, pending 1 (Resources)'
    """
    alive = [j for j in jobs if j.alive]
    running = sum(j.state == "RUNNING" for j in alive)
    pending = [j for j in alive if j.state != "RUNNING"]
    text = f"Slurm jobs: running {running}/{wanted}"
    if pending:
        reasons = sorted({j.reason for j in pending if j.reason and j.reason != "None"})
        text += f", pending {len(pending)}"
        if reasons:
            text += f" ({', '.join(reasons)})"
    return text


def pending_failure(
    jobs: Sequence[SlurmJob],
    submitted: Mapping[str, float],
    *,
    now: float,
    pending_timeout: float,
) -> str | None:
    """Why a start must give up on its pending jobs, or ``None`` while waiting is sensible.

    A job pending for a reason in :data:`HOPELESS_REASONS` fails at once; any other pending
    job fails once it has waited ``pending_timeout`` seconds since it was submitted.

    >>> pending_failure([SlurmJob("7", "PENDING", "PartitionTimeLimit")], {"7": 0.0},
    ...                 now=1.0, pending_timeout=60)
    "Slurm cannot run job 7: it is pending with reason PartitionTimeLimit (the request is outside what the partition, QOS or account allows)"
    >>> pending_failure([SlurmJob("7", "PENDING", "QOSMaxJobsPerUser")], {"7": 0.0},
    ...                 now=61.0, pending_timeout=60)
    'Slurm kept job 7 pending for 61 s with reason QOSMaxJobsPerUser'
    """  # noqa: E501
    for job in jobs:
        if job.state != "PENDING":
            continue
        if job.reason in HOPELESS_REASONS:
            return (
                f"Slurm cannot run job {job.job_id}: it is pending with reason {job.reason} "
                "(the request is outside what the partition, QOS or account allows)"
            )
        since = submitted.get(job.job_id)
        if since is not None and now - since >= pending_timeout:
            return (
                f"Slurm kept job {job.job_id} pending for {now - since:.0f} s with reason "
                f"{job.reason}"
            )
    return None


def _nested(flat: Mapping[str, Any]) -> dict[str, Any]:
    """``{"a.b.c": 1}`` -> ``{"a": {"b": {"c": 1}}}`` (Dask config keys)."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        node = out
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return out


def worker_prologue(settings: SlurmSettings, threads_per_worker: int) -> list[str]:
    """Job-script lines before the worker: the admin's prologue, then thread counts and the
    Dask settings every AstroKit worker runs with (:data:`astrokit.cluster.WORKER_DASK_CONFIG`,
    passed as Dask's own serialised-config variable so that it reaches the nanny)."""
    import dask.config

    from astrokit.cluster import WORKER_DASK_CONFIG

    threads = int(threads_per_worker)
    inherited = dask.config.serialize(_nested(WORKER_DASK_CONFIG))
    return [
        *settings.prologue,
        f"export OMP_NUM_THREADS={threads} MKL_NUM_THREADS={threads}",
        f"export DASK_INTERNAL_INHERIT_CONFIG={shlex.quote(inherited)}",
    ]


def cluster_kwargs(spec: ClusterSpec, settings: SlurmSettings, security: Any) -> dict[str, Any]:
    """Keyword arguments of :class:`dask_jobqueue.SLURMCluster` for one server.

    One job per Dask worker (``processes=1``) sized by the profile: ``--cpus-per-task`` =
    threads per worker, ``--mem`` = worker memory, ``-t`` = the profile's walltime (else
    the admin's). The scheduler listens on all interfaces on the spec's port (the notebook
    reaches it on loopback) and tells workers its ``scheduler_host`` address; the dashboard
    stays on loopback (reached through the hub).
    """
    walltime = spec.walltime or settings.walltime
    seconds = parse_walltime(walltime, what="walltime")
    directives = [*settings.directives]
    if settings.qos:
        directives.append(f"--qos={settings.qos}")
    worker_args: list[str] = []
    if settings.lifetime_margin and seconds > 2 * settings.lifetime_margin:
        # Retire before Slurm's SIGKILL at the walltime; the manager submits a replacement.
        worker_args += ["--lifetime", f"{int(seconds - settings.lifetime_margin)}s"]
    kwargs: dict[str, Any] = {
        "cores": spec.threads_per_worker,
        "processes": 1,
        "memory": f"{spec.memory_limit}B",
        "walltime": walltime,
        "job_name": job_name(spec.server_id),
        "job_extra_directives": directives,
        "job_script_prologue": worker_prologue(settings, spec.threads_per_worker),
        "worker_extra_args": worker_args,
        "death_timeout": settings.death_timeout,
        "log_directory": os.path.join(os.path.dirname(spec.status_file), "slurm-logs"),
        "python": settings.python or None,
        "security": security,
        "protocol": "tls://",
        "scheduler_options": {
            "host": "0.0.0.0",
            "port": spec.scheduler_port,
            "dashboard_address": f"127.0.0.1:{spec.dashboard_port}",
            "contact_address": f"tls://{scheduler_contact_host(settings)}:{spec.scheduler_port}",
        },
        "asynchronous": True,
        "silence_logs": False,
    }
    if settings.partition:
        kwargs["queue"] = settings.partition
    if settings.account:
        kwargs["account"] = settings.account
    if settings.interface:
        kwargs["interface"] = settings.interface
        # ...for the workers only: the scheduler's binding is set above.
        kwargs["scheduler_options"]["interface"] = None
    if settings.local_directory:
        kwargs["local_directory"] = settings.local_directory
    return kwargs


def scheduler_contact_host(settings: SlurmSettings) -> str:
    """The address workers reach the scheduler on (see :attr:`SlurmSettings.scheduler_host`)."""
    if settings.scheduler_host:
        return settings.scheduler_host
    if settings.interface:
        from distributed.utils import get_ip_interface

        return get_ip_interface(settings.interface)
    import socket

    return socket.gethostbyname(socket.gethostname())


def _env(settings: SlurmSettings) -> dict[str, str]:
    env = dict(os.environ)
    env.update(settings.environment)
    return env


async def _run(cmd: Sequence[str], env: Mapping[str, str], timeout: float) -> tuple[int, str]:
    """Run a Slurm command without blocking the event loop; (exit code, stdout+stderr)."""
    proc = await asyncio.create_subprocess_exec(
        *cmd,
        env=dict(env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        return 124, f"{cmd[0]} did not answer within {timeout:g} s"
    return proc.returncode or 0, out.decode(errors="replace")


async def squeue(name: str, env: Mapping[str, str], *, timeout: float = 20.0) -> list[SlurmJob]:
    """The jobs named ``name`` as Slurm sees them.

    Raises
    ------
    SlurmError
        When ``squeue`` fails (controller unreachable, not installed), with its message.
    """
    try:
        code, out = await _run(
            ["squeue", "-h", f"--name={name}", "-o", SQUEUE_FORMAT], env, timeout
        )
    except FileNotFoundError as exc:
        raise SlurmError("squeue is not installed on this host") from exc
    if code != 0:
        raise SlurmError(f"squeue failed ({code}): {out.strip()}")
    return parse_squeue(out)


async def cancel_jobs(
    settings: SlurmSettings,
    *,
    job_ids: Sequence[str],
    name: str,
    user: str = "",
    wait: float = 15.0,
) -> list[str]:
    """Cancel a server's jobs (by id and by job name) and wait until none is alive.

    Used by the spawner on stop, also when the manager is gone. Returns the ids still alive
    after ``wait`` seconds (normally none; ``[]`` too when Slurm cannot be reached, which is
    logged).
    """
    cmd = [part.replace("{user}", user) for part in settings.cancel_command]
    env = _env(settings)
    ids = [str(i) for i in job_ids if str(i).isdigit()]
    try:
        if ids:
            code, out = await _run([*cmd, *ids], env, 20.0)
            if code != 0:
                logger.info("scancel %s: %s", ids, out.strip())
        code, out = await _run([*cmd, f"--name={name}"], env, 20.0)
        if code != 0:
            logger.warning("scancel --name=%s failed (%d): %s", name, code, out.strip())
    except FileNotFoundError:
        logger.error("cannot cancel Slurm jobs %s of %s: %s not found", ids, name, cmd[0])
        return ids
    deadline = time.monotonic() + wait
    while True:
        try:
            left = [j.job_id for j in await squeue(name, env) if j.alive]
        except SlurmError as exc:
            logger.error("cannot check that jobs of %s ended: %s", name, exc)
            return []
        if not left or time.monotonic() > deadline:
            return left
        await asyncio.sleep(0.5)


class SlurmBackend:
    """What the cluster manager runs for a ``slurm`` spec (see :mod:`.cluster_manager`).

    Parameters
    ----------
    spec
        The server's cluster spec (``spec.slurm`` holds the :class:`SlurmSettings`).
    """

    def __init__(self, spec: ClusterSpec) -> None:
        self.spec = spec
        self.settings = SlurmSettings.from_mapping(spec.slurm)
        self.name = job_name(spec.server_id)
        self.env = _env(self.settings)
        #: job id -> monotonic time of submission, for every job this manager submitted.
        self.submitted: dict[str, float] = {}
        #: job ids whose worker joined the scheduler at least once.
        self.joined: set[str] = set()
        #: submitted job ids Slurm no longer runs (or never listed, after a grace period).
        self.ended: set[str] = set()
        self.submit_errors: list[str] = []
        self.jobs: list[SlurmJob] = []
        self.replaced = 0
        self._last_watch = 0.0
        self._retry_at = 0.0
        self._failures = 0

    async def start(self, security: Any) -> Any:
        """Start the ``SLURMCluster`` (scheduler in this process, no jobs yet)."""
        from dask_jobqueue import SLURMCluster
        from dask_jobqueue.slurm import SLURMJob

        # sbatch/squeue/scancel of dask-jobqueue inherit this process's environment.
        os.environ.update(self.settings.environment)
        backend = self

        class AstroKitSLURMJob(SLURMJob):
            """Records job ids and submission errors for the backend's bookkeeping."""

            async def start(self) -> None:
                try:
                    await super().start()
                except Exception as exc:
                    backend.submit_errors.append(str(exc).strip())
                    raise
                backend.submitted[str(self.job_id)] = time.monotonic()
                logger.info("submitted Slurm job %s (%s)", self.job_id, self.name)

        kwargs = cluster_kwargs(self.spec, self.settings, security)
        cluster = await SLURMCluster(job_cls=AstroKitSLURMJob, **kwargs)
        logger.info("worker job script:\n%s", cluster.job_script())
        return cluster

    def status_fields(self) -> dict[str, Any]:
        """What the status file carries for the spawner: job ids and a progress line."""
        live = [j for j in self.jobs if j.alive]
        ids = {i for i in self.submitted if i not in self.ended} | {j.job_id for j in live}
        return {
            "slurm_job_name": self.name,
            "slurm_jobs": sorted(ids, key=int),
            "detail": jobs_summary(live, self.spec.n_workers),
        }

    async def watch(self, cluster: Any, *, starting: bool, fresh: bool = False) -> str | None:
        """One round of bookkeeping; returns an error that must end the start, else None.

        Reads ``squeue``, records which jobs' workers joined, replaces jobs that ended while
        still wanted by the cluster (each replacement gets a new worker name, so Dask's own
        delayed clean-up of the lost worker cannot cancel it), and while ``starting``
        fails on submission errors, hopeless or too-long pending reasons, and jobs that
        ended before their worker joined.
        """
        now = time.monotonic()
        if self.submit_errors:
            error = self.submit_errors[-1]
            self.submit_errors.clear()
            if starting:
                return f"Slurm refused the worker job: {error}"
            logger.warning("Slurm refused a replacement job: %s", error)
            self._backoff(now)
        if not fresh and now - self._last_watch < WATCH_INTERVAL:
            return None  # ``fresh``: read squeue now (the state "ready" reports must be current)
        self._last_watch = now
        try:
            jobs = await squeue(self.name, self.env)
        except SlurmError as exc:
            logger.warning("%s", exc)
            return None
        self.jobs = jobs
        listed = {j.job_id: j for j in jobs}
        for job_id, since in self.submitted.items():
            entry = listed.get(job_id)
            if (entry is not None and not entry.alive) or (
                entry is None and now - since >= WATCH_INTERVAL
            ):
                self.ended.add(job_id)
        names_joined = {ws.name for ws in cluster.scheduler.workers.values()}
        by_id = {
            str(getattr(job, "job_id", None)): name for name, job in list(cluster.workers.items())
        }
        for job_id, name in by_id.items():
            if name in names_joined:
                self.joined.add(job_id)
        if starting:
            failure = pending_failure(
                jobs,
                self.submitted,
                now=now,
                pending_timeout=self.settings.pending_timeout,
            )
            if failure:
                return failure
        # Jobs of this cluster that Slurm no longer runs: ended (walltime, preemption,
        # scancel, node failure) or never listed (refused submission).
        gone = []
        for name, job in list(cluster.workers.items()):
            if name not in cluster.worker_spec:
                continue  # being retired by the cluster itself (scale down, adaptive)
            job_id = str(getattr(job, "job_id", None))
            entry = listed.get(job_id)
            if job_id in self.ended:
                gone.append((name, job_id, entry.state if entry else "ended"))
            elif job_id == "None":
                gone.append((name, job_id, "not submitted"))
        if not gone:
            if self._failures and all(j.state == "RUNNING" for j in jobs if j.alive):
                self._failures = 0
            return None
        if starting:
            for _name, job_id, state in gone:
                if job_id in self.submitted and job_id not in self.joined:
                    return (
                        f"Slurm job {job_id} ended ({state}) before its Dask worker joined; "
                        f"see its log in {self.spec.server_id}/slurm-logs"
                    )
        if now < self._retry_at:
            return None
        for name, job_id, state in gone:
            logger.warning("worker %s (Slurm job %s) ended (%s): replacing it", name, job_id, state)
            if job_id not in self.joined:
                self._backoff(now)
            cluster.workers.pop(name, None)
            cluster.worker_spec.pop(name, None)
            self.replaced += 1
        # scale() back to the cluster's own target adds fresh names and submits them.
        cluster.scale(len(cluster.worker_spec) + len(gone))
        return None

    def _backoff(self, now: float) -> None:
        self._failures += 1
        self._retry_at = now + min(60.0, 2.0 ** min(self._failures, 6))

    async def close(self) -> None:
        """After the cluster closed: cancel anything of this server that is still queued."""
        left = await cancel_jobs(self.settings, job_ids=list(self.submitted), name=self.name)
        if left:
            logger.error("Slurm jobs %s of %s still alive after scancel", left, self.name)
