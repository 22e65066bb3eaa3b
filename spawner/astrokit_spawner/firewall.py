"""The Dask dashboard of a server is reachable only by its owner's account.

The dashboard (Bokeh, served by the scheduler) has no authentication of its own and listens
on a loopback port, which every local account can connect to - directly, or through its own
jupyter-server-proxy (``/user/B/proxy/<A's port>/``). On the embedded default the hub
therefore adds one packet-filter rule per server, in a chain of its own::

    -A ASTROKIT -o lo -p tcp --dport <port> -m owner ! --uid-owner <uid> -j REJECT

so the kernel refuses connections to that port from any other account (root included),
while the owner's jupyter-server-proxy - which runs as the owner - still reaches it: the
``/user/A/proxy/<port>/status`` link works with no setup. Rules carry the server id in a
comment, so stopping a server (even after a hub restart) removes exactly its rules.

Uses ``iptables`` (the nftables-backed one on current distributions).
"""

from __future__ import annotations

import asyncio
import shutil

__all__ = ["CHAIN", "FirewallError", "allow_only_owner", "iptables_available", "remove_rules"]

#: The chain AstroKit's rules live in, jumped to from OUTPUT.
CHAIN = "ASTROKIT"


class FirewallError(RuntimeError):
    """A rule could not be added (message names the command and iptables' answer)."""


def iptables_available() -> bool:
    """Whether an ``iptables`` command is installed."""
    return shutil.which("iptables") is not None


def _comment(server_id: str) -> str:
    return f"astrokit:{server_id}"


def owner_rule(port: int, uid: int, server_id: str) -> list[str]:
    """The rule's specification (without ``-A CHAIN``).

    >>> " ".join(owner_rule(8787, 1001, "ada-default-1f2e"))  # doctest: +NORMALIZE_WHITESPACE
    '-o lo -p tcp --dport 8787 -m owner ! --uid-owner 1001 -m comment
     --comment astrokit:ada-default-1f2e -j REJECT --reject-with tcp-reset'
    """
    return [
        "-o",
        "lo",
        "-p",
        "tcp",
        "--dport",
        str(int(port)),
        "-m",
        "owner",
        "!",
        "--uid-owner",
        str(int(uid)),
        "-m",
        "comment",
        "--comment",
        _comment(server_id),
        "-j",
        "REJECT",
        "--reject-with",
        "tcp-reset",
    ]


# iptables takes a lock of its own, but creating the chain and its jump must not race.
_chain_lock = asyncio.Lock()


async def _iptables(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        "iptables",
        "-w",
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode(errors="replace").strip()


async def _ensure_chain() -> None:
    async with _chain_lock:
        code, _ = await _iptables("-n", "-L", CHAIN)
        if code:
            code, out = await _iptables("-N", CHAIN)
            if code and "exists" not in out:
                raise FirewallError(f"iptables -N {CHAIN} failed: {out}")
        code, _ = await _iptables("-C", "OUTPUT", "-j", CHAIN)
        if code:
            code, out = await _iptables("-I", "OUTPUT", "1", "-j", CHAIN)
            if code:
                raise FirewallError(f"iptables -I OUTPUT -j {CHAIN} failed: {out}")


async def allow_only_owner(port: int, uid: int, server_id: str) -> None:
    """Refuse connections to loopback ``port`` from every account but ``uid``.

    Raises
    ------
    FirewallError
        If iptables is missing or refuses the rule.
    """
    if not iptables_available():
        raise FirewallError("iptables is not installed (Debian: apt-get install iptables)")
    await _ensure_chain()
    code, out = await _iptables("-A", CHAIN, *owner_rule(port, uid, server_id))
    if code:
        raise FirewallError(f"adding the dashboard rule for port {port} failed: {out}")


async def remove_rules(server_id: str) -> int:
    """Remove every rule of ``server_id``; return how many were removed."""
    if not server_id or not iptables_available():
        return 0
    code, listing = await _iptables("-S", CHAIN)
    if code:
        return 0
    removed = 0
    marker = f'"{_comment(server_id)}"'
    for line in listing.splitlines():
        # `iptables -S` prints each rule as the arguments that add it: "-A CHAIN ...".
        if line.startswith(f"-A {CHAIN} ") and (marker in line or _comment(server_id) in line):
            spec = line.split()[2:]
            spec = [part.strip('"') for part in spec]
            code, _ = await _iptables("-D", CHAIN, *spec)
            removed += code == 0
    return removed
