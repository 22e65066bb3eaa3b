"""Run code in a user's kernel, started through a real hub (:mod:`helpers.hub`).

The kernel is started with the user's token through the hub's proxy (Jupyter Server's REST
API), so it runs where the user's own kernels run: as their system account, inside their
server's cgroups. Its connection file is read from the account's home, which needs a root hub
(per-user accounts), as the isolation tests and the fair-CPU benchmark run::

    client, pid = kernel_client(hub, "alice")
    try:
        assert run_in_kernel(client, "print(6 * 7)") == "42"
    finally:
        client.stop_channels()
"""

from __future__ import annotations

import pwd
from pathlib import Path
from typing import Any

import requests

from helpers.hub import HubError, HubProcess
from helpers.polling import wait_until

__all__ = ["kernel_client", "run_in_kernel"]


def kernel_client(hub: HubProcess, user: str, server_name: str = "") -> tuple[Any, int]:
    """Start a kernel in ``user``'s server through the hub; return (client, kernel pid).

    The client's channels are started (no heartbeat: a probe can call a busy kernel dead);
    the caller stops them (``client.stop_channels()``).

    Raises
    ------
    HubError
        If the server refuses to start the kernel.
    """
    from jupyter_client import BlockingKernelClient

    token = hub.token_for(user)
    prefix = f"/user/{user}/{server_name}/" if server_name else f"/user/{user}/"
    r = requests.post(
        f"{hub.url}{prefix}api/kernels",
        headers={"Authorization": f"token {token}"},
        json={"name": "python3"},
        timeout=60,
    )
    if r.status_code != 201:
        raise HubError(f"starting a kernel for {user}: {r.status_code} {r.text}")
    kernel_id = r.json()["id"]
    home = Path(pwd.getpwnam(hub.account(user)).pw_dir)
    connection = wait_until(
        lambda: next(home.rglob(f"kernel-{kernel_id}.json"), None), 60, "the connection file"
    )
    client = BlockingKernelClient(connection_file=str(connection))
    client.load_connection_file()
    client.start_channels(hb=False)
    client.wait_for_ready(timeout=60)
    pid_reply = run_in_kernel(client, "import os; print(os.getpid())")
    return client, int(pid_reply)


def run_in_kernel(client: Any, code: str, timeout: float = 60) -> str:
    """Execute ``code`` in the kernel and return its printed output (stripped).

    Raises
    ------
    AssertionError
        If the code raises in the kernel (the message carries the kernel's error reply).
    """
    out: list[str] = []

    def collect(msg: dict[str, Any]) -> None:
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])

    reply = client.execute_interactive(code, timeout=timeout, output_hook=collect)
    assert reply["content"]["status"] == "ok", reply["content"]
    return "".join(out).strip()
