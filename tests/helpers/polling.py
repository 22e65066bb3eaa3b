"""Waiting in tests: poll a condition until a deadline, never a fixed sleep.

One clock for the whole suite. :func:`poll` is the loop (for bodies with several exits);
:func:`wait_until` and :func:`wait_until_async` are the one-condition forms built on it, for
plain code and for coroutines. Each failure names what was awaited and for how long.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

__all__ = ["poll", "wait_until", "wait_until_async"]

T = TypeVar("T")


def poll(
    timeout: float, interval: float = 0.1, *, sleep: Callable[[float], Any] = time.sleep
) -> Iterator[float]:
    """Yield the seconds left until ``timeout`` passes, sleeping ``interval`` in between.

    The body runs at least once, and once more after the deadline has passed (so a condition
    that became true while the last sleep ran is still seen). Falls through a ``for ... else``
    when time is up::

        for _ in poll(30):
            if ready():
                break
        else:
            raise AssertionError("not ready within 30 s")

    ``sleep`` replaces :func:`time.sleep` where the waiting must keep something else running
    (Playwright's ``page.wait_for_timeout`` dispatches the page's events meanwhile).
    """
    end = time.monotonic() + timeout
    while True:
        left = end - time.monotonic()
        yield max(left, 0.0)
        if left <= 0:
            return
        sleep(min(interval, left))


def wait_until(
    check: Callable[[], T],
    timeout: float,
    what: str,
    interval: float = 0.1,
    *,
    sleep: Callable[[float], Any] = time.sleep,
) -> T:
    """Call ``check`` until it returns something truthy, and return that.

    Raises
    ------
    AssertionError
        ``timed out after <timeout> s waiting for <what>`` when the deadline passes first.
    """
    for _ in poll(timeout, interval, sleep=sleep):
        value = check()
        if value:
            return value
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


async def wait_until_async(
    check: Callable[[], Any], timeout: float, what: str, interval: float = 0.05
) -> Any:
    """:func:`wait_until` for event-loop code: ``check`` may be sync or a coroutine function,
    and the loop keeps running between calls."""
    end = time.monotonic() + timeout
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(interval)
