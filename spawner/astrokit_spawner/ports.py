"""Ports for a server's listeners that no other process can take between pick and bind.

The spawner must name three ports before the processes that listen on them start: the
notebook's (the hub proxies to it), the scheduler's (the notebook's environment carries the
address, so both start at once) and the dashboard's (its firewall rule is set first). A port
picked by binding port 0 and closing the socket - JupyterHub's ``random_port`` - comes from
the kernel's *ephemeral* range, the same range the kernel hands to every other ``bind(0)``
and outgoing connection: with twenty users starting at once, one user's Dask worker took the
port just picked for another user's notebook ("port 46861 is not available").

So the spawner's ports come from *below* the ephemeral range (``ip_local_port_range``),
where the kernel never assigns a port by itself, and the hub remembers what it handed out for
a while, so that two starts in the same hub never pick the same port either. The
remaining way to collide - a program that binds one fixed port in that range after the
check - is the same for any service on a fixed port.
"""

from __future__ import annotations

import errno
import random
import socket
import threading
import time
from pathlib import Path

__all__ = ["PortError", "ephemeral_range", "pick_port", "pick_ports"]

#: Where Linux keeps the range it assigns ports from on bind(0) and on connect().
LOCAL_PORT_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
#: The range the kernel uses when the file cannot be read (Linux's default).
DEFAULT_EPHEMERAL = (32768, 60999)
#: Lowest port the spawner hands out: well above the usual fixed service ports.
LOWEST = 10000
#: Seconds a handed-out port stays reserved: longer than any start takes to bind it.
RESERVE_SECONDS = 600.0

_reserved: dict[int, float] = {}
_lock = threading.Lock()
_random = random.SystemRandom()


class PortError(RuntimeError):
    """No free port could be found in the spawner's range."""


def ephemeral_range(path: Path = LOCAL_PORT_RANGE) -> tuple[int, int]:
    """The kernel's ephemeral port range ``(low, high)``, inclusive."""
    try:
        low, high = (int(x) for x in path.read_text().split())
    except (OSError, ValueError):
        return DEFAULT_EPHEMERAL
    return low, high


def _candidates(ephemeral: tuple[int, int]) -> tuple[int, int]:
    """The range to pick from: below the ephemeral range, else above it."""
    low, high = ephemeral
    if low - 1 - LOWEST >= 1000:
        return LOWEST, low - 1
    if 65535 - (high + 1) >= 1000:
        return high + 1, 65535
    raise PortError(
        f"the kernel's ephemeral port range {low}-{high} leaves no room for fixed ports; "
        f"narrow {LOCAL_PORT_RANGE}"
    )


def _bindable(port: int, host: str) -> bool:
    """Whether nothing listens on (or holds) ``host:port`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def pick_port(host: str = "127.0.0.1", *, ephemeral: tuple[int, int] | None = None) -> int:
    """A free port outside the ephemeral range, reserved in this process for a while.

    Raises
    ------
    PortError
        If no free port turns up in 500 tries.
    """
    low, high = _candidates(ephemeral or ephemeral_range())
    now = time.monotonic()
    with _lock:
        for port, until in list(_reserved.items()):
            if until < now:
                del _reserved[port]
        for _ in range(500):
            port = _random.randint(low, high)
            if port in _reserved or not _bindable(port, host):
                continue
            _reserved[port] = now + RESERVE_SECONDS
            return port
    raise PortError(f"no free port on {host} in {low}-{high} after 500 tries")


def pick_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct free ports (see :func:`pick_port`)."""
    return [pick_port(host) for _ in range(count)]
