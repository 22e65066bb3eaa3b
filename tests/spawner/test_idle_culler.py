"""The embedded default's jupyterhub-idle-culler service stops idle servers and their clusters."""

from __future__ import annotations

import time

import psutil
from helpers.hub import HubProcess


def test_idle_server_is_culled_with_its_cluster(tmp_path):
    # The deploy config reads the culler's numbers from the environment.
    env = {"ASTROKIT_CULL_TIMEOUT": "3", "ASTROKIT_CULL_EVERY": "1"}
    with HubProcess(tmp_path, users=["ida"], env=env) as hub:
        culler = [
            p
            for p in psutil.Process(hub.proc.pid).children()
            if "jupyterhub_idle_culler" in " ".join(p.cmdline())
        ]
        assert len(culler) == 1
        assert "--timeout=3" in culler[0].cmdline()
        hub.spawn("ida", {"profile": "small", "n_workers": 1})
        server_id = hub.spawner_state("ida")["server_id"]
        assert hub.leftover_processes(server_id)
        deadline = time.monotonic() + 90
        while hub.server("ida") is not None:
            assert time.monotonic() < deadline, "idle server was not culled within 90 s"
            time.sleep(0.5)
        deadline = time.monotonic() + 15
        while hub.leftover_processes(server_id):
            assert time.monotonic() < deadline, hub.leftover_processes(server_id)
            time.sleep(0.2)
