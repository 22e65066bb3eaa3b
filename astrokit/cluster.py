"""Pick the Dask client a library call should use.

Library functions that need a cluster take ``client: distributed.Client | None = None`` and
wrap their work in :func:`client_or_local`, so the same call works in a hub-spawned notebook
(the user's own cluster), in a script that made its own client, and on a laptop with nothing
configured (a temporary local cluster).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import distributed

__all__ = ["WORKER_DASK_CONFIG", "client_or_local", "current_client", "local_cluster"]

logger = logging.getLogger(__name__)

#: Dask settings for every cluster AstroKit starts: the spawner's cluster manager, the local
#: fallback of :func:`client_or_local`, the benchmarks (and, as ``/etc/dask/astrokit.yaml``,
#: the Kubernetes worker image). Dask's nanny starts workers with
#: ``MALLOC_TRIM_THRESHOLD_=65536`` so that freed memory goes back to the OS early; but
#: setting any glibc malloc threshold also switches off glibc's *dynamic* mmap threshold, so
#: every large tensor torch allocates becomes a fresh mmap with page faults. Measured on the
#: 2-core machine: the AstroMAE forward pass (batch 256, 1 thread) ran at 192 samples/s with
#: the variable and 303 without it. ``None`` removes the variable; workers then allocate
#: like any other process (and still return memory when the heap top is free).
#:
#: The other settings are what an *idle* cluster costs. With Dask's defaults one server's idle
#: scheduler and two workers used 12 % of a core (benchmarks/workshop.py: twenty idle servers
#: took most of the 2-core machine while others were starting): every process checks its
#: event loop every 20 ms ("tick") and samples its system use every 0.5 s, each worker
#: samples its own stack every 10 ms for the dashboard's Profile page, the nannies poll their
#: worker's memory every 0.1 s and work stealing runs every 0.1 s. At the values below an idle
#: server uses 2.5 % of a core; the Profile page has a tenth of the samples, the memory limit
#: is still enforced by the kernel (the workers' cgroups) and within 1 s by the nanny.
WORKER_DASK_CONFIG: dict[str, object] = {
    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.system-monitor.interval": "2s",
    "distributed.worker.profile.interval": "100ms",
    "distributed.worker.memory.monitor-interval": "1s",
    "distributed.scheduler.work-stealing-interval": "1s",
}


def local_cluster(
    n_workers: int = 2, threads_per_worker: int = 1, **kwargs: object
) -> distributed.LocalCluster:
    """A ``LocalCluster`` of worker processes on 127.0.0.1 with :data:`WORKER_DASK_CONFIG`.

    Keyword arguments go to ``distributed.LocalCluster`` (defaults: ``processes=True``,
    ``host="127.0.0.1"``, ``dashboard_address="127.0.0.1:0"``). The settings are read when
    each worker's nanny is made, so they hold for the workers started here and for their
    restarts; a process that later calls ``scale()`` up should run under
    ``dask.config.set(WORKER_DASK_CONFIG)`` itself.
    """
    import dask
    from distributed import LocalCluster

    options: dict[str, object] = {
        "processes": True,
        "host": "127.0.0.1",
        "dashboard_address": "127.0.0.1:0",
    }
    options.update(kwargs)
    with dask.config.set(WORKER_DASK_CONFIG):
        return LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker, **options)


def current_client() -> distributed.Client | None:
    """The client already in use, if any: the worker's client inside a task, else the default."""
    import distributed

    try:
        distributed.get_worker()
    except ValueError:
        pass
    else:  # inside a task: the worker's own client (tasks that submit tasks)
        return distributed.get_client()
    try:
        return distributed.default_client()
    except ValueError:
        return None


@contextmanager
def client_or_local(
    client: distributed.Client | None = None,
    *,
    n_workers: int = 2,
    threads_per_worker: int = 1,
) -> Iterator[distributed.Client]:
    """Yield the client to compute with.

    In order: ``client`` if given; the current default client (see :func:`current_client`);
    :func:`astrokit.connect.connect` when the environment names a scheduler (the spawner's
    cluster); otherwise a temporary ``LocalCluster(processes=True)`` on 127.0.0.1.
    Clients and clusters this function created are closed on exit; ones passed in or found
    are left open.

    Parameters
    ----------
    client
        An explicit client to use.
    n_workers, threads_per_worker
        Shape of the temporary local cluster (only used in the last case).

    Yields
    ------
    distributed.Client
    """
    if client is not None:
        yield client
        return
    found = current_client()
    if found is not None:
        yield found
        return
    from astrokit.connect import configured_address, connect

    if configured_address():  # ASTROKIT_SCHEDULER_ADDRESS or Dask's scheduler-address
        own = connect()
        try:
            yield own
        finally:
            own.close()
        return

    from distributed import Client

    logger.info(
        "no Dask cluster configured: starting a temporary local one (%d x %d threads)",
        n_workers,
        threads_per_worker,
    )
    with (
        local_cluster(n_workers, threads_per_worker) as cluster,
        Client(cluster) as local_client,
    ):
        yield local_client
