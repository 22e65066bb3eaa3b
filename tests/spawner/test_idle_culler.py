"""The embedded default's jupyterhub-idle-culler service stops idle servers and their clusters."""

from __future__ import annotations

import psutil
from helpers.hub import HubProcess
from helpers.polling import wait_until


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
        wait_until(lambda: hub.server("ida") is None, 90, "the idle server to be culled", 0.5)
        wait_until(
            lambda: not hub.leftover_processes(server_id), 15, "the culled server's processes"
        )
