"""Spawn latency and idle memory of AstroKit's embedded hub: prints one JSON object.

Starts a real JupyterHub (configurable-http-proxy, AstroKitSpawner) on 127.0.0.1 in a
temporary directory, then spawns one user's server N times through the REST API with a
2-worker profile, timing each from the spawn request to "ready" (notebook answering *and*
all Dask workers connected), and stopping it in between. After the first spawn it measures
the idle memory of that server: every process carrying its server id (notebook, cluster
manager with the scheduler, workers, helpers), as the sum of RSS and of USS (unique pages,
which does not double-count shared libraries).

Usage::

    .venv/bin/python benchmarks/spawn.py            # 5 spawns
    .venv/bin/python benchmarks/spawn.py --quick    # 1 spawn, smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from helpers.hub import HubProcess  # noqa: E402  (the test helper is the hub launcher)

MiB = 1024**2


def _role(proc: psutil.Process) -> str:
    cmd = " ".join(proc.cmdline())
    if "jupyterhub-singleuser" in cmd:
        return "notebook"
    if "astrokit_spawner.cluster_manager" in cmd:
        return "scheduler_and_manager"
    parent = proc.parent()
    parent_cmd = " ".join(parent.cmdline()) if parent is not None else ""
    # Workers are forked by multiprocessing's fork server (or spawned by the manager).
    if "forkserver" in parent_cmd or "spawn_main" in cmd:
        return "workers"
    return "helpers"  # the fork server, multiprocessing's resource tracker


def idle_memory(hub: HubProcess, server_id: str, settle: float) -> dict:
    """RSS/USS per role of every process of the server, after ``settle`` seconds idle."""
    time.sleep(settle)  # let start-up garbage be collected; this is the idle state
    roles: dict[str, dict[str, float]] = {}
    total_rss = total_uss = 0
    for proc in hub.leftover_processes(server_id):
        try:
            info = proc.memory_full_info()
            role = _role(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        entry = roles.setdefault(role, {"count": 0, "rss_mib": 0.0, "uss_mib": 0.0})
        entry["count"] += 1
        entry["rss_mib"] += info.rss / MiB
        entry["uss_mib"] += info.uss / MiB
        total_rss += info.rss
        total_uss += info.uss
    for entry in roles.values():
        entry["rss_mib"] = round(entry["rss_mib"], 1)
        entry["uss_mib"] = round(entry["uss_mib"], 1)
    return {
        "rss_mib_total": round(total_rss / MiB, 1),
        "uss_mib_total": round(total_uss / MiB, 1),
        "by_role": roles,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spawns", type=int, default=5, help="number of spawns (default 5)")
    parser.add_argument("--quick", action="store_true", help="one spawn, short settle: smoke")
    parser.add_argument("--settle", type=float, default=5.0, help="idle seconds before memory")
    args = parser.parse_args(argv)
    spawns = 1 if args.quick else args.spawns
    settle = 1.0 if args.quick else args.settle
    options = {"profile": "small"}  # 2 workers x 1 thread, 1 GiB each

    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="astrokit-bench-") as tmp:
        hub = HubProcess(tmp, users=["bench"])
        started = time.perf_counter()
        hub.start()
        hub_start_s = time.perf_counter() - started
        try:
            timings, stops, memory, workers = [], [], None, None
            for i in range(spawns):
                t0 = time.perf_counter()
                hub.spawn("bench", options)
                timings.append(time.perf_counter() - t0)
                state = hub.spawner_state("bench")
                workers = state["profile"]["n_workers"]
                if i == 0:
                    memory = idle_memory(hub, state["server_id"], settle)
                t0 = time.perf_counter()
                hub.stop_server("bench")
                stops.append(time.perf_counter() - t0)
                leftovers = hub.leftover_processes(state["server_id"])
                if leftovers:
                    raise RuntimeError(f"processes left after stop: {leftovers}")
        finally:
            hub.close()
    result = {
        "benchmark": "spawn",
        "spawns": spawns,
        "profile": options["profile"],
        "n_workers": workers,
        "spawn_to_ready_s": {
            "median": round(statistics.median(timings), 3),
            "max": round(max(timings), 3),
            "min": round(min(timings), 3),
            "all": [round(t, 3) for t in timings],
        },
        "stop_s": {"median": round(statistics.median(stops), 3), "max": round(max(stops), 3)},
        "idle_memory": memory,
        "hub_start_s": round(hub_start_s, 2),
        "target_median_s": 5.0,
        "cpus": os.cpu_count(),
        "loadavg_start": [round(x, 2) for x in load_start],
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
