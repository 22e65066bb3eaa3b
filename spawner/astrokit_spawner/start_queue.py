"""A first-come, first-served queue for server starts.

Starting a server is CPU-bound for a few seconds (Python start-up and imports of the notebook
server, the scheduler and the workers). When twenty people press Start together on a 2-core
machine, starting all at once shares the cores to the end: everyone waits as long as the
last. With at most ``limit`` starts running and the rest waiting in order, users become ready
one after another, the first within seconds, and each waiting user sees their place in line.

JupyterHub's own ``concurrent_spawn_limit`` refuses spawns over its limit (HTTP 429, "try
again later") instead of queueing them; it stays as the hub's upper bound.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Callable

__all__ = ["StartQueue"]


class _Waiter:
    __slots__ = ("future", "on_position")

    def __init__(self, future: asyncio.Future, on_position: Callable[[int], None]) -> None:
        self.future = future
        self.on_position = on_position


class StartQueue:
    """At most ``limit`` holders at a time; the others wait in arrival order.

    ``on_position(n)`` is called when a start has to wait (``n`` = 1 for next in line) and
    again whenever its place changes.
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"a start queue needs a limit of at least 1, not {limit}")
        self.limit = limit
        self.running = 0
        self._waiting: deque[_Waiter] = deque()

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    @contextlib.asynccontextmanager
    async def slot(
        self, on_position: Callable[[int], None] = lambda place: None
    ) -> AsyncIterator[None]:
        """Hold one of the ``limit`` slots for the duration of the ``async with``."""
        await self._acquire(on_position)
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, on_position: Callable[[int], None]) -> None:
        if self.running < self.limit and not self._waiting:
            self.running += 1
            return
        waiter = _Waiter(asyncio.get_running_loop().create_future(), on_position)
        self._waiting.append(waiter)
        self._tell_positions()
        try:
            await waiter.future
        except asyncio.CancelledError:
            if waiter.future.done() and not waiter.future.cancelled():
                self._release()  # the slot was handed over just as we were cancelled
            else:
                # A release may already have dropped our (cancelled) entry from the line.
                with contextlib.suppress(ValueError):
                    self._waiting.remove(waiter)
                self._tell_positions()
            raise

    def _release(self) -> None:
        self.running -= 1
        handed = False
        while self._waiting and self.running < self.limit:
            waiter = self._waiting.popleft()
            if waiter.future.done():
                continue
            self.running += 1
            waiter.future.set_result(None)
            handed = True
        if handed:
            self._tell_positions()

    def _tell_positions(self) -> None:
        for place, waiter in enumerate(self._waiting, start=1):
            waiter.on_position(place)
