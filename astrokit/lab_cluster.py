"""This server's own Dask cluster as a ``distributed`` cluster object, for JupyterLab's Dask panel.

``dask-labextension`` lists the clusters its server extension manages and makes new ones
with a configured factory class. The spawner configures that factory to be
:class:`ServerCluster` and asks for one at start (``labextension.initial``), so the panel
shows the cluster the hub started for this server - TLS, the profile's workers - with no
setup, and its task stream, progress and worker panes open inside JupyterLab.

:class:`ServerCluster` does not start anything: it connects to the scheduler the spawner
started (address and TLS files from Dask's configuration, as :func:`astrokit.connect.connect`
reads them) and follows its workers. Scaling goes to the cluster manager within the profile's
size (:func:`astrokit.connect.scale_cluster`'s rules). The panel's "Shutdown" releases the
workers and drops this connection; the scheduler keeps running with the server, and "New"
(or :func:`astrokit.connect`) brings the workers back.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from distributed.core import Status, rpc
from distributed.deploy.cluster import Cluster
from distributed.objects import SchedulerInfo
from distributed.protocol.pickle import dumps

from astrokit import env as envnames
from astrokit.connect import (
    ConnectError,
    configured_address,
    dashboard_link,
    profile_workers,
    scale_on_scheduler,
    security_from_env,
    wake_on_scheduler,
)

__all__ = ["ServerCluster"]

logger = logging.getLogger(__name__)

#: Seconds between two reads of the scheduler's workers (the Dask panel polls about as often).
FOLLOW_INTERVAL = 1.0


class ServerCluster(Cluster):
    """A handle on the Dask cluster that the hub started for this server.

    Parameters
    ----------
    asynchronous
        dask-labextension makes it with ``asynchronous=True`` and awaits it.
    name
        The name the panel shows; default: the profile's name.
    """

    def __init__(self, asynchronous: bool = False, loop: Any = None, name: str | None = None):
        address = configured_address()
        if not address:
            raise ConnectError(
                f"no Dask cluster is configured ({envnames.SCHEDULER_ADDRESS} is not set): "
                "this server was not started by AstroKit's spawner"
            )
        profile = os.environ.get(envnames.PROFILE, "")
        super().__init__(
            asynchronous=asynchronous,
            loop=loop,
            name=name or (f"Your {profile} cluster" if profile else "Your cluster"),
        )
        security = security_from_env()
        self._address = address
        self._max_workers = profile_workers(os.environ)
        self.scheduler_comm = rpc(
            address,
            connection_args=security.get_connection_args("client") if security else {},
        )
        if not asynchronous:
            self.sync(self._start)

    def __await__(self):
        async def started() -> ServerCluster:
            if self.status == Status.created:
                try:
                    await self._start()
                    # "New" in the panel after a "Shutdown": bring the workers back. Always,
                    # not only when none are listed now: the "Shutdown" just before may still
                    # be releasing them. At the server's start it asks for the size the
                    # cluster is being started with anyway.
                    await self._run_on_scheduler(wake_on_scheduler)
                except (OSError, ConnectError) as exc:
                    # The panel must still list the cluster (dask-labextension waits for its
                    # initial clusters before answering): report it as not connected.
                    logger.warning("cannot reach this server's Dask scheduler: %s", exc)
            return self

        return started().__await__()

    async def _start(self) -> None:
        """Connect, and follow the scheduler's workers by asking it every second.

        Not by subscribing, as ``Cluster._start`` does: a scheduler keeps one worker-status
        subscriber (distributed's ``WorkerStatusPlugin`` has a fixed name), which belongs
        to the cluster manager's own ``LocalCluster``; a second subscription silently takes
        it over, or is taken over by it - whichever subscribes last - and the loser's
        worker count freezes. (Seen as a panel stuck at 0 workers once the notebook server
        started before the cluster manager had subscribed.) The spawner's cluster manager
        owns the scheduler's metadata, so there is nothing else to sync.
        """
        self.scheduler_info = SchedulerInfo(await self.scheduler_comm.identity())
        self._sync_cluster_info_task = asyncio.ensure_future(self._follow_workers())
        self.status = Status.running

    async def _follow_workers(self) -> None:
        while True:
            await asyncio.sleep(FOLLOW_INTERVAL)
            try:
                self.scheduler_info = SchedulerInfo(await self.scheduler_comm.identity())
            except OSError:  # the scheduler is restarting or stopping: keep the last view
                continue

    @property
    def scheduler_address(self) -> str:
        return self._address

    @property
    def dashboard_link(self) -> str:
        """The dashboard through the hub (``/user/<name>/proxy/<port>/status``)."""
        return dashboard_link() or super().dashboard_link

    async def _run_on_scheduler(self, function, **kwargs: Any) -> Any:
        response = await self.scheduler_comm.run_function(
            function=dumps(function), args=dumps(()), kwargs=dumps(kwargs), wait=True
        )
        if response.get("status") != "OK":
            raise ConnectError(f"the scheduler could not scale: {response}")
        return response["result"]

    async def _scale(self, n: int) -> None:
        if n < 0 or (self._max_workers and n > self._max_workers):
            raise ValueError(
                f"{n} workers is outside 0..{self._max_workers} (your profile's workers); for "
                "a bigger cluster restart your server from the hub with a larger profile"
            )
        if await self._run_on_scheduler(scale_on_scheduler, n_workers=n) is None:
            raise ConnectError(f"the cluster at {self._address} has the fixed size of your profile")

    def scale(self, n: int):
        """Ask the cluster manager for ``n`` workers (0 up to the profile's number)."""
        return self._scale(int(n))

    def adapt(self, *args: Any, **kwargs: Any):
        raise ConnectError(
            "your cluster adapts by itself: idle workers are released after a while and "
            "astrokit.connect() or new work brings them back (up to your profile's size)"
        )

    async def _close(self) -> None:
        if self.status == Status.running:
            try:
                await asyncio.wait_for(self._scale(0), timeout=10)
            except Exception:  # the server may be stopping: nothing left to release
                logger.debug("releasing the workers on close failed", exc_info=True)
        await super()._close()
