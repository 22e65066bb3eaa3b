"""End a server completely: its processes, cgroups, firewall rules and files.

One sequence, used by the spawner's ``stop()`` (and after a failed start) and by
``astrokit platform stop`` (``make stop``), which ends every server of a run directory when
the hub is not there to do it - servers deliberately outlive the hub process
(``cleanup_servers = False``: a hub restart must not kill users' kernels), so stopping
``make run`` with Ctrl-C leaves them running until ``make stop``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import pwd
import shutil
from collections.abc import Iterable
from pathlib import Path

from . import firewall
from .cgroups import detect
from .processes import ProcessRef, terminate_server

__all__ = ["end_server", "remove_server_dir", "stop_all_servers"]

logger = logging.getLogger(__name__)


async def end_server(
    server_id: str,
    *,
    refs: Iterable[ProcessRef | None] = (),
    account: str = "",
    grace: float = 10.0,
) -> list[int]:
    """End every process of ``server_id``, its cgroups and firewall rules; return survivors.

    Processes are found by the top-level ``refs``, by the server id in their environment
    and, where limits were enforced, by the server's cgroups - which also hold any process
    that left its session or dropped the id variable. ``account`` (set when the server ran
    under a system account) has its dashboard firewall rules removed.
    """
    survivors = await terminate_server(list(refs), server_id, grace=grace)
    tree = detect()
    if tree is not None:
        cgroups = tree.server(account or "hub", server_id)
        left = await cgroups.kill()
        if left:
            logger.error("server %s: pids %s survived in its cgroups", server_id, sorted(left))
        cgroups.remove()
    if account:
        await firewall.remove_rules(server_id)
    if survivors:
        logger.error("server %s: pids %s survived SIGKILL", server_id, survivors)
    return survivors


async def remove_server_dir(server_dir: str | Path) -> None:
    """Credentials and scratch of a stopped server are useless: keep nothing around."""
    await asyncio.to_thread(shutil.rmtree, server_dir, ignore_errors=True)


def _owner(path: Path) -> str:
    try:
        uid = path.stat().st_uid
        return "" if uid == 0 else pwd.getpwuid(uid).pw_name
    except (OSError, KeyError):
        return ""


async def stop_all_servers(run_dir: str | Path, *, grace: float = 5.0) -> list[str]:
    """End every server whose state is under ``run_dir/servers``; return their ids."""
    servers = Path(run_dir) / "servers"
    stopped = []
    if not servers.is_dir():
        return stopped
    for server_dir in sorted(p for p in servers.iterdir() if p.is_dir()):
        server_id = server_dir.name
        refs = []
        notebook = server_dir / "notebook.json"
        if notebook.exists():
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                refs.append(ProcessRef.from_dict(json.loads(notebook.read_text())))
        account = _owner(server_dir)
        await end_server(server_id, refs=refs, account=account, grace=grace)
        await remove_server_dir(server_dir)
        stopped.append(server_id)
    return stopped
