"""Spawn latency and idle memory of AstroKit's embedded hub: prints one JSON object.

Starts a real JupyterHub (configurable-http-proxy, AstroKitSpawner) on 127.0.0.1 in a
temporary directory, then spawns one user's server N times through the REST API with a
2-worker profile, timing each from the spawn request to "ready" (notebook answering *and*
all Dask workers connected), and stopping it in between. After the first spawn it measures
the idle memory of that server: every process carrying its server id (notebook, cluster
manager with the scheduler, workers, helpers), as the sums of RSS, PSS (shared pages split
among their sharers: what the server takes from the machine) and USS (unique pages only).

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


#: What idle_memory reports of each process (psutil's memory_full_info fields, Linux).
MEMORY_KINDS = ("rss", "pss", "uss")


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
    """RSS/PSS/USS per role of every process of the server, after ``settle`` seconds idle.

    RSS counts a page shared by several processes (libraries, a fork server's preloaded
    modules) once in each; PSS splits it among them and USS leaves it out. Summed over
    processes, PSS is what they take from the machine.
    """
    time.sleep(settle)  # let start-up garbage be collected; this is the idle state
    roles: dict[str, dict[str, float]] = {}
    totals = dict.fromkeys(MEMORY_KINDS, 0)
    for proc in hub.leftover_processes(server_id):
        try:
            info = proc.memory_full_info()
            role = _role(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        entry = roles.setdefault(role, {"count": 0, **{f"{k}_mib": 0.0 for k in MEMORY_KINDS}})
        entry["count"] += 1
        for kind in MEMORY_KINDS:
            entry[f"{kind}_mib"] += getattr(info, kind) / MiB
            totals[kind] += getattr(info, kind)
    for entry in roles.values():
        for kind in MEMORY_KINDS:
            entry[f"{kind}_mib"] = round(entry[f"{kind}_mib"], 1)
    return {
        **{f"{kind}_mib_total": round(totals[kind] / MiB, 1) for kind in MEMORY_KINDS},
        "by_role": roles,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spawns", type=int, default=5, help="number of spawns (default 5)")
    parser.add_argument(
        "--cold",
        action="store_true",
        help="no warm starts: every server process starts afresh (ASTROKIT_WARM_START=0)",
    )
    parser.add_argument("--quick", action="store_true", help="one spawn, short settle: smoke")
    parser.add_argument("--settle", type=float, default=5.0, help="idle seconds before memory")
    args = parser.parse_args(argv)
    spawns = 1 if args.quick else args.spawns
    settle = 1.0 if args.quick else args.settle
    options = {"profile": "small"}  # 2 workers x 1 thread, 1 GiB each

    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="astrokit-bench-") as tmp:
        hub = HubProcess(
            tmp, users=["bench"], env={"ASTROKIT_WARM_START": "0" if args.cold else "1"}
        )
        started = time.perf_counter()
        hub.start()
        hub_start_s = time.perf_counter() - started
        if not args.cold:  # started with the hub; spawns begin once they are up
            hub.wait_warm_start()
        templates_ready_s = time.perf_counter() - started
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
        "warm_start": not args.cold,
        "warm_start_ready_s": None if args.cold else round(templates_ready_s, 2),
        "target_median_s": 5.0,
        "cpus": os.cpu_count(),
        "loadavg_start": [round(x, 2) for x in load_start],
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
