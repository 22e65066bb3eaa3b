"""Spawns that fail report why at once (no timeout) and leave no process behind."""

from __future__ import annotations

import time

import pytest
from helpers.hub import HubProcess, SpawnFailed
from helpers.polling import wait_until

# A pre_spawn_hook breaks one part of the start for one user each.
CONFIG = """
def _break_something(spawner):
    if spawner.user.name == "carl":
        spawner.cluster_python = "/bin/false"   # the cluster manager exits at once
    if spawner.user.name == "nora":
        spawner.cmd = ["/bin/false"]            # the notebook server exits at once

c.Spawner.pre_spawn_hook = _break_something
"""


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    with HubProcess(
        tmp_path_factory.mktemp("hub"), users=["carl", "nora"], config_overrides=CONFIG
    ) as hub:
        yield hub


@pytest.mark.parametrize(
    ("user", "message"),
    [
        ("carl", "Your Dask cluster did not start: exit code 1"),
        ("nora", "The notebook server exited during start (code 1)"),
    ],
)
def test_failed_part_is_reported_and_the_rest_ended(hub, user, message):
    start = time.monotonic()
    with pytest.raises(SpawnFailed) as info:
        hub.spawn(user, {"profile": "small"})
    assert message in info.value.message
    assert time.monotonic() - start < 60  # reported, not left to the 120 s start timeout
    assert hub.server(user) is None
    wait_until(lambda: not hub.leftover_processes(), 15, "the failed server's processes to end")
    servers = hub.run_dir / "servers"
    assert not servers.exists() or not any(servers.iterdir())  # credentials removed
