"""Ports that no other start can take, and the first-come, first-served start queue."""

from __future__ import annotations

import asyncio
import socket

import pytest
from astrokit_spawner import ports
from astrokit_spawner.start_queue import StartQueue


def test_ports_come_from_below_the_ephemeral_range_and_are_distinct():
    low, _high = ports.ephemeral_range()
    picked = ports.pick_ports(200)
    assert len(set(picked)) == 200
    assert all(ports.LOWEST <= p < low for p in picked)


def test_the_kernel_never_hands_out_a_picked_port():
    """The race of the 20-user workshop: bind(0) (a worker, a kernel) took a picked port."""
    picked = set(ports.pick_ports(50))
    sockets = []
    try:
        for _ in range(300):  # what 300 workers, kernels and connections would be given
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
            assert s.getsockname()[1] not in picked
    finally:
        for s in sockets:
            s.close()


def test_a_port_in_use_is_not_picked(monkeypatch):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        taken = busy.getsockname()[1]
        busy.listen()
        low, high = taken, taken + 1
        # a range of two ports, one of them in use: only the other can come out
        monkeypatch.setattr(ports, "_candidates", lambda eph: (low, high))
        monkeypatch.setattr(ports, "_reserved", {})
        assert ports.pick_port() == high
        with pytest.raises(ports.PortError, match=f"no free port on 127.0.0.1 in {low}-{high}"):
            ports.pick_port()  # the other is now reserved


def test_no_room_below_or_above_the_ephemeral_range_is_an_error():
    with pytest.raises(ports.PortError, match="leaves no room"):
        ports.pick_port(ephemeral=(1024, 65000))


def test_ephemeral_range_is_read_from_the_kernel(tmp_path):
    f = tmp_path / "range"
    f.write_text("40000\t50000\n")
    assert ports.ephemeral_range(f) == (40000, 50000)
    assert ports.ephemeral_range(tmp_path / "missing") == ports.DEFAULT_EPHEMERAL


async def test_queue_runs_at_most_limit_and_serves_in_order():
    queue = StartQueue(2)
    running, most, order = 0, 0, []
    places: dict[int, list[int]] = {}

    async def start(i: int) -> None:
        nonlocal running, most
        async with queue.slot(lambda place: places.setdefault(i, []).append(place)):
            running += 1
            most = max(most, running)
            order.append(i)
            await asyncio.sleep(0.02)
            running -= 1

    await asyncio.gather(*(start(i) for i in range(6)))
    assert most == 2
    assert order == list(range(6))
    assert 0 not in places and 1 not in places  # the first two never waited
    assert places[5][0] == 4 and places[5][-1] == 1  # told 4th in line, then moved up to 1st
    assert queue.running == 0 and queue.waiting == 0


async def test_a_cancelled_waiter_leaves_the_line_and_frees_nothing_twice():
    queue = StartQueue(1)
    async with queue.slot():
        waiter = asyncio.ensure_future(queue._acquire(lambda place: None))
        await asyncio.sleep(0)
        assert queue.waiting == 1
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert queue.waiting == 0
    assert queue.running == 0
    async with queue.slot():
        assert queue.running == 1


def test_queue_limit_must_be_positive():
    with pytest.raises(ValueError, match="at least 1"):
        StartQueue(0)


async def test_a_cancel_that_races_a_release_leaves_the_queue_consistent():
    """Found by the workshop benchmark: the release dropped the cancelled entry first."""
    queue = StartQueue(1)
    await queue._acquire(lambda place: None)  # someone is starting
    waiter = asyncio.ensure_future(queue._acquire(lambda place: None))
    await asyncio.sleep(0)
    waiter.cancel()  # start_timeout hits the waiting start...
    queue._release()  # ...and, before it resumes, the running start finishes
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert queue.running == 0 and queue.waiting == 0
