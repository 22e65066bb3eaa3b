"""Pick the Dask client a library call should use.

Library functions that need a cluster take ``client: distributed.Client | None = None`` and
wrap their work in :func:`client_or_local`, so the same call works in a hub-spawned notebook
(the user's own cluster), in a script that made its own client, and on a laptop with nothing
configured (a temporary local cluster).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from astrokit import env as envnames

if TYPE_CHECKING:
    import distributed

__all__ = ["client_or_local", "current_client"]

logger = logging.getLogger(__name__)


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
    if os.environ.get(envnames.SCHEDULER_ADDRESS) or os.environ.get(
        envnames.DASK_SCHEDULER_ADDRESS
    ):
        from astrokit.connect import connect

        own = connect()
        try:
            yield own
        finally:
            own.close()
        return

    from distributed import Client, LocalCluster

    logger.info(
        "no Dask cluster configured: starting a temporary local one (%d x %d threads)",
        n_workers,
        threads_per_worker,
    )
    with (
        LocalCluster(
            n_workers=n_workers,
            threads_per_worker=threads_per_worker,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
        ) as cluster,
        Client(cluster) as local_client,
    ):
        yield local_client
