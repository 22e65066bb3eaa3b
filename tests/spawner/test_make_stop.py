"""`make stop` (astrokit platform stop): servers outlive the hub process, and this ends them.

Stopping `make run` (Ctrl-C) stops the hub and its proxy; users' servers keep running so that
a restarted hub finds them again. `astrokit platform stop --run-dir` then ends every one of
them - processes, cgroups, firewall rules, state - with no hub running.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from astrokit_spawner import firewall
from astrokit_spawner.cgroups import detect
from helpers.hub import VENV_BIN, HubProcess


def _rules(server_id: str) -> str:
    if not firewall.iptables_available():
        return ""
    out = subprocess.run(["iptables", "-S"], capture_output=True, text=True, check=False)
    return "\n".join(line for line in out.stdout.splitlines() if server_id in line)


@pytest.fixture
def hub(tmp_path):
    hub = HubProcess(tmp_path, users=["ada"])
    hub.start()
    try:
        yield hub
    finally:
        hub.close()


def test_make_stop_ends_the_servers_a_stopped_hub_left_running(hub):
    hub.spawn("ada", {"profile": "small"})
    state = hub.spawner_state("ada")
    server_id = state["server_id"]
    hub.stop()  # as Ctrl-C on `make run` does: the server keeps running
    alive = hub.leftover_processes(server_id)
    assert len(alive) >= 4, alive  # notebook, cluster manager, 2 workers (and helpers)

    out = subprocess.run(
        [str(VENV_BIN / "astrokit"), "platform", "stop", "--run-dir", str(hub.run_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"},
    )
    assert out.returncode == 0, out.stderr
    assert f"stopped 1 server(s): {server_id}" in out.stdout
    assert not hub.leftover_processes(server_id)
    assert not (Path(hub.run_dir) / "servers" / server_id).exists()
    if os.geteuid() == 0:
        tree = detect()
        assert tree is not None
        assert not tree.server(state["account"], server_id).pids()
        assert not _rules(server_id)

    hub.start()  # the restarted hub sees the server gone, and the user can start again
    assert hub.server("ada") is None or not hub.server("ada").get("ready")
    hub.spawn("ada", {"profile": "small"})
    assert hub.spawner_state("ada")["server_id"] != server_id


def test_stop_with_nothing_running_says_so(tmp_path):
    out = subprocess.run(
        [str(VENV_BIN / "astrokit"), "platform", "stop", "--run-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "stopped 0 server(s)" in out.stdout
