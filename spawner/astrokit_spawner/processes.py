"""Finding and ending the OS processes of one server.

Every process a spawn starts (notebook, kernels, cluster manager, Dask workers) carries the
server's id in its environment (``ASTROKIT_SERVER_ID``) and the two top-level ones run in
sessions of their own. Stopping therefore signals the two process groups, and then sweeps for
anything still carrying the id - kernels start their own sessions, and a worker could be
mid-restart by its nanny - so that after a stop no process of that server remains.

Processes are identified by pid *and* creation time, so a recycled pid after a hub restart is
never mistaken for (or killed as) one of ours.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import psutil

from .environment import SERVER_ID

__all__ = ["ProcessRef", "tagged_processes", "terminate_server"]

logger = logging.getLogger(__name__)

#: Processes whose creation time differs by more than this are different processes.
_CREATE_TIME_TOLERANCE = 1.0


@dataclass(frozen=True)
class ProcessRef:
    """A process identified by pid and creation time (JSON-able for spawner state)."""

    pid: int
    create_time: float

    @classmethod
    def of(cls, pid: int) -> ProcessRef:
        """Reference the running process ``pid``.

        Raises
        ------
        psutil.NoSuchProcess
            If it is already gone.
        """
        return cls(pid=pid, create_time=psutil.Process(pid).create_time())

    def process(self) -> psutil.Process | None:
        """The live process, or ``None`` if it exited, is a zombie, or the pid was reused."""
        try:
            proc = psutil.Process(self.pid)
            if abs(proc.create_time() - self.create_time) > _CREATE_TIME_TOLERANCE:
                return None
            if proc.status() == psutil.STATUS_ZOMBIE:
                return None
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            return None
        return proc

    def alive(self) -> bool:
        """Whether the referenced process is still running."""
        return self.process() is not None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {"pid": self.pid, "create_time": self.create_time}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ProcessRef | None:
        """Inverse of :meth:`to_dict`; ``None`` for missing or malformed data."""
        if not data:
            return None
        try:
            return cls(pid=int(data["pid"]), create_time=float(data["create_time"]))
        except (KeyError, TypeError, ValueError):
            logger.warning("ignoring malformed process reference %r", data)
            return None


def tagged_processes(server_id: str) -> list[psutil.Process]:
    """Live processes whose environment carries ``ASTROKIT_SERVER_ID=server_id``."""
    if not server_id:
        return []
    found = []
    me = os.getpid()
    for proc in psutil.process_iter():
        if proc.pid == me:
            continue
        try:
            if proc.environ().get(SERVER_ID) == server_id and proc.status() != (
                psutil.STATUS_ZOMBIE
            ):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, OSError):
            continue
    return found


def _signal_group(proc: psutil.Process, sig: int) -> None:
    """Signal ``proc``'s whole process group if it leads one, else just ``proc``."""
    try:
        pgid = os.getpgid(proc.pid)
        if pgid == proc.pid and pgid != os.getpgrp():
            os.killpg(pgid, sig)
        else:
            proc.send_signal(sig)
    except (ProcessLookupError, psutil.NoSuchProcess):
        pass


def _alive(procs: Iterable[psutil.Process]) -> list[psutil.Process]:
    alive = []
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.ZombieProcess):
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(proc)
    return alive


async def _wait_gone(procs: list[psutil.Process], deadline: float) -> list[psutil.Process]:
    """Poll until all ``procs`` exited or ``deadline`` (monotonic) passed; return the living."""
    remaining = _alive(procs)
    while remaining and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        remaining = _alive(remaining)
    return remaining


async def terminate_server(
    refs: Iterable[ProcessRef | None],
    server_id: str,
    *,
    grace: float = 10.0,
    kill_timeout: float = 5.0,
) -> list[int]:
    """End every process of one server: SIGTERM the groups, wait, SIGKILL what is left.

    Parameters
    ----------
    refs
        The top-level processes (notebook, cluster manager); ``None`` entries are skipped.
    server_id
        The id every process of the server carries in its environment.
    grace
        Seconds to wait after SIGTERM (0: SIGKILL at once).
    kill_timeout
        Seconds to wait after SIGKILL.

    Returns
    -------
    list of int
        Pids that survived even SIGKILL (normally empty; logged as errors).
    """
    leaders = [p for p in (r.process() for r in refs if r is not None) if p is not None]

    async def tagged() -> list[psutil.Process]:
        # A scan of every process's environment: off the event loop, which serves all users.
        return await asyncio.to_thread(tagged_processes, server_id)

    if grace > 0:
        for proc in leaders:
            _signal_group(proc, signal.SIGTERM)
        # Tagged strays (e.g. kernels in their own sessions) get the same chance to exit.
        for proc in await tagged():
            if proc not in leaders:
                with contextlib.suppress(psutil.NoSuchProcess):
                    proc.terminate()
        await _wait_gone([*leaders, *await tagged()], time.monotonic() + grace)
    survivors = _alive([*leaders, *await tagged()])
    for proc in survivors:
        _signal_group(proc, signal.SIGKILL)
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    left = await _wait_gone(survivors, time.monotonic() + kill_timeout)
    # A final sweep: something may have been forked while we were killing its parent.
    late = [p for p in await tagged() if p not in left]
    for proc in late:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    left = await _wait_gone([*left, *late], time.monotonic() + kill_timeout)
    if left:
        logger.error(
            "processes of server %s survived SIGKILL: %s", server_id, [p.pid for p in left]
        )
    return [p.pid for p in left]
