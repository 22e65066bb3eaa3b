"""The per-server Dask cluster as its own process: ``python -m astrokit_spawner.cluster_manager``.

Why one manager process rather than separate ``dask scheduler`` / ``dask worker`` commands:
``distributed.LocalCluster`` already starts nanny-supervised worker processes with memory
limits, restarts crashed workers, and provides ``adapt()`` for releasing idle workers. Running
it in a child process of its own (its own session, so a hub restart does not touch it) keeps
the scheduler and workers out of the hub, gives the spawner one process group to end, and
lets us report progress (scheduler up, workers k/N) through a small status file.

The manager

1. starts a TLS scheduler and a dashboard on 127.0.0.1 (ports from the spec) with the
   server's credentials (:mod:`astrokit_spawner.tls`);
2. scales to the profile's workers (nannies with ``memory_limit``), writing the status file
   (atomically) each time the count changes, and ``"ready"`` once all have joined;
3. turns on ``adapt(minimum=idle_minimum, maximum=n_workers)`` so that workers idle for
   ``idle_timeout`` seconds are released, and installs the ``astrokit-wake`` scheduler plugin
   (:func:`scale_plugin`) that :func:`astrokit.connect` uses to scale back up and
   :func:`astrokit.connect.scale_cluster` to scale within the profile's size;
4. exits, closing the cluster, on SIGTERM/SIGINT, or when the notebook process it watches
   has died (so a cluster never outlives its notebook, even while the hub is down).

The spec's ``backend`` picks where workers run: ``"local"`` (nannies on this machine, the
embedded default) or ``"slurm"`` (one batch job per worker through dask-jobqueue's
``SLURMCluster``, see :mod:`astrokit_spawner.slurm`; the scheduler still runs here). With
Slurm the manager also watches the server's jobs, replaces those Slurm ended, fails a start
whose jobs cannot run (naming Slurm's reason), reports job ids and states in the status
file, and cancels every job of the server when it exits.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import os
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["ClusterSpec", "main", "read_status", "scale_plugin", "write_json_atomic"]

logger = logging.getLogger("astrokit_spawner.cluster_manager")

#: Seconds between checks of the watched notebook process and worker count.
WATCH_INTERVAL = 0.2


@dataclass(frozen=True)
class ClusterSpec:
    """What the manager starts; written by the spawner as JSON next to the status file.

    Attributes
    ----------
    server_id
        Unique id of the server (also in every process's environment).
    n_workers, threads_per_worker, memory_limit
        Cluster shape; ``memory_limit`` in bytes per worker.
    credentials_dir
        Directory of the server's TLS files (:class:`~astrokit_spawner.tls.ClusterCredentials`).
    status_file
        JSON file the manager writes its state to.
    local_directory
        Scratch space for worker spill files.
    idle_timeout
        Seconds a worker may be idle before it is released; 0 disables releasing.
    idle_minimum
        Workers kept when idle (0 or 1 typically).
    watch_file
        JSON file ``{"pid": int, "create_time": float}`` of the notebook; when that process
        is gone the manager shuts down. Empty string: watch nothing.
    start_timeout
        Seconds to wait for all workers before reporting failure.
    scheduler_port, dashboard_port
        Ports on 127.0.0.1 (0: any free one). The spawner picks the scheduler port itself so
        that the notebook can start with the address while the cluster is still starting.
    backend
        ``"local"`` (worker processes here) or ``"slurm"`` (worker jobs on Slurm).
    walltime
        Time limit of a Slurm worker job (empty: the Slurm settings' default).
    slurm
        :class:`~astrokit_spawner.slurm.SlurmSettings` as a dict (``backend="slurm"``).
    """

    server_id: str
    n_workers: int
    threads_per_worker: int
    memory_limit: int
    credentials_dir: str
    status_file: str
    local_directory: str
    idle_timeout: float = 600.0
    idle_minimum: int = 0
    watch_file: str = ""
    start_timeout: float = 120.0
    scheduler_port: int = 0
    dashboard_port: int = 0
    backend: str = "local"
    walltime: str = ""
    slurm: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        """Serialise to JSON."""
        return json.dumps(asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> ClusterSpec:
        """Read a spec written by :meth:`to_json`."""
        return cls(**json.loads(Path(path).read_text()))


def write_json_atomic(path: str | os.PathLike[str], data: dict[str, Any]) -> None:
    """Write JSON so readers never see a partial file (temporary file + ``os.replace``)."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, sort_keys=True))
    os.replace(tmp, target)


def read_status(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The manager's last status, or ``None`` if it has not written one yet."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        return None


def adaptive_timing(idle_timeout: float) -> tuple[float, int]:
    """Adaptive ``interval`` (s) and ``wait_count`` so that interval x count ~ idle_timeout.

    Adaptive releases a worker only after it was a candidate for ``wait_count`` consecutive
    checks; the interval is capped at 5 s so that scaling up stays responsive.
    """
    interval = min(5.0, max(0.5, idle_timeout / 10.0))
    return interval, max(1, math.ceil(idle_timeout / interval))


def _watched_alive(watch_file: str) -> bool:
    """False only when the watched file names a process that is gone (or was replaced)."""
    if not watch_file:
        return True
    try:
        info = json.loads(Path(watch_file).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return True  # notebook not started yet
    import psutil

    try:
        proc = psutil.Process(int(info["pid"]))
        if abs(proc.create_time() - float(info["create_time"])) > 1.0:
            return False  # pid reused by another process
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


class _Status:
    def __init__(self, spec: ClusterSpec) -> None:
        self.spec = spec
        self.data: dict[str, Any] = {
            "pid": os.getpid(),
            "server_id": spec.server_id,
            "n_workers": spec.n_workers,
            "workers": 0,
            "state": "starting",
        }

    def update(self, **changes: Any) -> None:
        if all(self.data.get(k) == v for k, v in changes.items()):
            return
        self.data.update(changes, time=time.time())
        write_json_atomic(self.spec.status_file, self.data)


def scale_plugin(cluster: Any, maximum: int) -> Any:
    """The ``astrokit-wake`` scheduler plugin, through which the notebook scales ``cluster``.

    :func:`astrokit.connect.connect` calls ``wake()`` to scale back to the profile's size
    after idle workers were released, and :func:`astrokit.connect.scale_cluster` calls
    ``scale(n)``. Both stay within ``0..maximum`` (the profile's workers), so a notebook can
    never grow its cluster past what the hub allowed.
    """
    from distributed.diagnostics.plugin import SchedulerPlugin

    from astrokit.connect import WAKE_PLUGIN

    class ScalePlugin(SchedulerPlugin):
        name = WAKE_PLUGIN

        def wake(self) -> None:
            logger.info("woken by a client: scaling to %d workers", maximum)
            cluster.scale(maximum)

        def scale(self, n_workers: int) -> int:
            # Checked here as well as in the client: this is where the cap is enforced.
            if isinstance(n_workers, bool) or not isinstance(n_workers, int):
                raise TypeError(f"n_workers must be a whole number, not {n_workers!r}")
            if not 0 <= n_workers <= maximum:
                raise ValueError(
                    f"n_workers={n_workers} is outside 0..{maximum} (your profile's workers)"
                )
            logger.info("scaled by a client to %d workers", n_workers)
            cluster.scale(n_workers)
            return n_workers

    return ScalePlugin()


#: What the workers' fork server imports once for all of them.
FORKSERVER_PRELOAD = ["distributed", "numpy"]


def _preload_what_workers_share() -> None:
    """Preload distributed and numpy only, not distributed's whole default list.

    distributed's default also imports pandas (and lz4), in this process just to see whether
    it is installed and then in the fork server: 0.46 CPU-s each per start, and tens of MiB
    more in every worker, idle or not. A task that needs pandas imports it itself.
    """
    import multiprocessing

    import distributed.utils

    if not hasattr(distributed.utils, "_forkserver_preload_set"):
        return  # a distributed that manages its preload differently: keep its default
    multiprocessing.get_context("forkserver").set_forkserver_preload(FORKSERVER_PRELOAD)
    distributed.utils._forkserver_preload_set = True


async def run(spec: ClusterSpec) -> int:
    """Run the cluster until told to stop; returns the process exit code."""
    import dask
    from distributed.core import Status

    from astrokit.cluster import WORKER_DASK_CONFIG
    from astrokit_spawner.tls import ClusterCredentials

    status = _Status(spec)
    status.update(state="starting", backend=spec.backend)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    security = ClusterCredentials.in_directory(spec.credentials_dir).security("cluster")
    # Workers fork from a server process that has imported distributed (and numpy) once,
    # instead of each re-importing them ("spawn"): measured here, 3 workers start with ~1.8
    # CPU-s instead of ~3.2, which matters while the notebook server starts on the same
    # cores, and the preloaded pages are shared (worker USS ~23 MiB instead of ~44 MiB).
    dask.config.set({"distributed.worker.multiprocessing-method": "forkserver"})
    _preload_what_workers_share()
    # Not in a `with`: workers are started later (scale, adapt), and each nanny reads the
    # settings when it is made. See WORKER_DASK_CONFIG for why (torch throughput).
    dask.config.set(WORKER_DASK_CONFIG)
    backend = None
    if spec.backend == "slurm":
        from astrokit_spawner.slurm import SlurmBackend

        backend = SlurmBackend(spec)
    elif spec.backend != "local":
        status.update(state="failed", error=f"unknown cluster backend {spec.backend!r}")
        return 1
    try:
        if backend is not None:
            cluster = await backend.start(security)
        else:
            cluster = await _local_cluster(spec, security)
    except Exception as exc:
        logger.exception("could not start the scheduler")
        status.update(state="failed", error=f"scheduler did not start: {exc}")
        return 1

    async def check_backend(*, starting: bool, fresh: bool = False) -> bool:
        """Backend bookkeeping; False (status failed) when the start must end."""
        if backend is None:
            return True
        error = await backend.watch(cluster, starting=starting, fresh=fresh)
        status.update(**backend.status_fields())
        if error:
            status.update(state="failed", error=error)
            return False
        return True

    exit_code = 0
    try:
        scheduler = cluster.scheduler
        scheduler.add_plugin(scale_plugin(cluster, spec.n_workers))
        dashboard = scheduler.services.get("dashboard")
        status.update(
            state="scheduler",
            address=scheduler.address,
            dashboard_port=dashboard.port if dashboard is not None else None,
        )
        logger.info("scheduler at %s", scheduler.address)
        cluster.scale(spec.n_workers)
        deadline = time.monotonic() + spec.start_timeout
        while not stop.is_set():
            count = len(scheduler.workers)
            status.update(workers=count)
            if not await check_backend(starting=True):
                return 1
            if count >= spec.n_workers:
                break
            if time.monotonic() > deadline:
                status.update(
                    state="failed",
                    error=f"only {count} of {spec.n_workers} workers started within "
                    f"{spec.start_timeout:g} s",
                )
                return 1
            if not _watched_alive(spec.watch_file):
                logger.warning("notebook process is gone while starting; shutting down")
                return 0
            await _wait(stop, WATCH_INTERVAL)
        if stop.is_set():
            return 0
        # The jobs' states as Slurm sees them now, not from the last rate-limited read:
        # "ready" with "Slurm jobs: running 0/2" beside it was seen once.
        if not await check_backend(starting=True, fresh=True):
            return 1
        status.update(state="ready", workers=len(scheduler.workers))
        logger.info("%d workers ready", spec.n_workers)
        if spec.idle_timeout > 0:
            interval, wait_count = adaptive_timing(spec.idle_timeout)
            cluster.adapt(
                minimum=spec.idle_minimum,
                maximum=spec.n_workers,
                interval=f"{interval}s",
                wait_count=wait_count,
            )
        while not stop.is_set():
            status.update(workers=len(scheduler.workers))
            await check_backend(starting=False)
            if not _watched_alive(spec.watch_file):
                logger.warning("notebook process is gone; shutting the cluster down")
                break
            if scheduler.status in (Status.closing, Status.closed, Status.failed):
                # Exiting lets the spawner's poll() see the scheduler is gone.
                status.update(state="failed", error=f"scheduler {scheduler.status.name}")
                exit_code = 1
                break
            await _wait(stop, 1.0)
    except Exception as exc:
        logger.exception("cluster manager failed")
        status.update(state="failed", error=str(exc))
        exit_code = 1
    finally:
        if status.data["state"] != "failed":
            status.update(state="stopping")
        await cluster.close(timeout=10)
        if backend is not None:
            # SLURMCluster.close() cancels the jobs it knows; this also catches a job whose
            # submission was still in flight, and waits until Slurm lists none of them.
            await backend.close()
            status.update(slurm_jobs=[])
        if status.data["state"] != "failed":
            status.update(state="stopped", workers=0)
    return exit_code


async def _local_cluster(spec: ClusterSpec, security: Any) -> Any:
    """The local backend: a TLS ``LocalCluster`` of nanny-supervised processes here."""
    from distributed import LocalCluster

    threads = str(spec.threads_per_worker)
    return await LocalCluster(
        n_workers=0,
        threads_per_worker=spec.threads_per_worker,
        memory_limit=spec.memory_limit,
        processes=True,
        protocol="tls://",
        host="127.0.0.1",
        scheduler_port=spec.scheduler_port,
        dashboard_address=f"127.0.0.1:{spec.dashboard_port}",
        security=security,
        asynchronous=True,
        local_directory=spec.local_directory,
        silence_logs=False,
        # Numerical libraries (torch, BLAS) in a task use the worker's thread budget.
        env={"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads},
    )


async def _wait(event: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout=seconds)


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -m astrokit_spawner.cluster_manager SPEC.json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec", help="path of the ClusterSpec JSON file")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    spec = ClusterSpec.from_file(args.spec)
    return asyncio.run(run(spec))


if __name__ == "__main__":
    sys.exit(main())
