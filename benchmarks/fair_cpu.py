"""Fair CPU between users: does a user running more processes get more of the cores? One JSON.

Starts a real JupyterHub (configurable-http-proxy, AstroKitSpawner, run as root so that each
user's server runs under its own system account, inside its own cgroups), spawns users A and
B (profile "small"), and starts a kernel in each server through the hub. A's kernel starts
``--burners-a`` (4) CPU-burning processes, B's kernel ``--burners-b`` (1); all of them wait
for one common start time, then spin. For ``--seconds`` (10) the benchmark measures the CPU
seconds each user's burners receive (psutil's user + system times of each burner, read by
root before and after the window), then kills them.

The cgroups give every account's subtree the same CPU weight (``cpu.shares`` in v1,
``cpu.weight`` in v2), so on a machine with fewer cores than burners each user should get
about the same CPU time whatever the number of processes they run: ``ratio_b_to_a`` ~ 1.0.
Without per-account fairness every process would get the same share and B would get
``burners_b / burners_a`` of A's time (0.25 by default).

The notebook's own group also has a CPU quota (the profile's ``notebook_cpu``: 1 core for
"small"), which on a 2-core machine alone caps A at one core: ``throttled`` says whether the
quota was hit during the window. ``--notebook-cpu`` (e.g. the number of cores) lifts it, so
that the weights alone act. ``--one-group`` is the control: B's burners are moved into A's
notebook group before the window, as if there were no per-account groups, so the ratio
should fall to about ``per_process_ratio``. The JSON also gives the cgroup every burner ran
in, the CPU settings of each account's groups, the machine's busy time over the window (other
load on a shared machine competes with both users) and the load average.

Needs root (per-user accounts and cgroups), as the isolation tests do.

Usage::

    .venv/bin/python benchmarks/fair_cpu.py                  # 10 s window
    .venv/bin/python benchmarks/fair_cpu.py --seconds 3      # smoke test
    .venv/bin/python benchmarks/fair_cpu.py --notebook-cpu 2 # no quota below the weights
    .venv/bin/python benchmarks/fair_cpu.py --one-group      # control: one group for all
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from astrokit_spawner.cgroups import CLUSTER, NOTEBOOK, CgroupTree, detect  # noqa: E402
from helpers.hub import HubError, HubProcess, SpawnFailed  # noqa: E402  (test helpers)
from helpers.kernels import kernel_client, run_in_kernel  # noqa: E402

#: The two users, by role in the result.
USERS = {"A": "fair-a", "B": "fair-b"}
#: A burner: wait for the common start time (argv[1], epoch seconds), then spin for ever.
BURNER = (
    "import sys, time\n"
    "time.sleep(max(0.0, float(sys.argv[1]) - time.time()))\n"
    "while True:\n"
    "    pass\n"
)
#: Seconds between asking the kernels to start their burners and the common start time:
#: room for both kernels to fork them on a loaded machine.
LEAD_S = 5.0
#: Where the cgroup hierarchies are mounted (astrokit_spawner.cgroups.detect's default).
CGROUP_MOUNT = Path("/sys/fs/cgroup")
#: CPU settings read from each group (those that exist in the hierarchy's version).
CPU_FILES = ("cpu.shares", "cpu.cfs_quota_us", "cpu.cfs_period_us", "cpu.weight", "cpu.max")


def _cpu_dir(tree: CgroupTree) -> Path:
    """The base of AstroKit's subtree in the hierarchy that has the cpu controller."""
    return tree.bases["cpu"] if tree.version == 1 else tree.bases[""]


def _cpu_hierarchy(tree: CgroupTree) -> Path:
    """Where that hierarchy is mounted: /proc/<pid>/cgroup paths are relative to it."""
    return CGROUP_MOUNT / "cpu" if tree.version == 1 else CGROUP_MOUNT


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def cpu_settings(directory: Path) -> dict[str, Any]:
    """The CPU weight/quota files of one cgroup directory, as ints where they are numbers."""
    settings: dict[str, Any] = {}
    for name in CPU_FILES:
        value = _read(directory / name)
        if value is not None:
            settings[name] = int(value) if value.lstrip("-").isdigit() else value
    return settings


def cpu_stat(directory: Path) -> dict[str, int]:
    """``cpu.stat`` of one cgroup (periods, throttling; v2 adds usage)."""
    stat: dict[str, int] = {}
    for line in (_read(directory / "cpu.stat") or "").splitlines():
        key, _, value = line.partition(" ")
        with contextlib.suppress(ValueError):
            stat[key] = int(value)
    return stat


def throttling(before: dict[str, int], after: dict[str, int]) -> dict[str, Any]:
    """Quota enforcement over the window, from two ``cpu.stat`` readings."""
    out: dict[str, Any] = {
        "periods": after.get("nr_periods", 0) - before.get("nr_periods", 0),
        "throttled_periods": after.get("nr_throttled", 0) - before.get("nr_throttled", 0),
    }
    if "throttled_time" in after:  # v1, nanoseconds
        out["throttled_s"] = round((after["throttled_time"] - before["throttled_time"]) / 1e9, 3)
    if "throttled_usec" in after:  # v2
        out["throttled_s"] = round((after["throttled_usec"] - before["throttled_usec"]) / 1e6, 3)
    if "usage_usec" in after:  # v2 only: v1 keeps usage in cpuacct, not AstroKit's hierarchy
        out["usage_s"] = round((after["usage_usec"] - before["usage_usec"]) / 1e6, 3)
    return out


def process_cpu_group(pid: int) -> str | None:
    """The cgroup (cpu controller, or v2's unified one) process ``pid`` is in."""
    for line in (_read(Path(f"/proc/{pid}/cgroup")) or "").splitlines():
        _, controllers, path = line.split(":", 2)
        names = controllers.split(",") if controllers else [""]
        if "cpu" in names:
            return path
    for line in (_read(Path(f"/proc/{pid}/cgroup")) or "").splitlines():
        if line.startswith("0::"):
            return line[3:]
    return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of ``pid`` so far (``None`` once it is gone)."""
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return None
    return times.user + times.system


def server_cpu_seconds(tree: CgroupTree, state: dict[str, Any]) -> dict[int, float]:
    """CPU seconds of every process in one server's cgroups, by pid."""
    found = {}
    for pid in tree.server(state["account"], state["server_id"]).pids():
        seconds = cpu_seconds(pid)
        if seconds is not None:
            found[pid] = seconds
    return found


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (every core, all but idle and iowait)."""
    t = psutil.cpu_times()
    return t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0)


def spawn_both(hub: HubProcess, options: dict[str, Any]) -> None:
    """Ask for both servers at once, then wait until both are ready."""
    for user in USERS.values():
        r = hub.request_spawn(user, options)
        if r.status_code not in (201, 202):
            raise SpawnFailed(r.status_code, r.text)
    for user in USERS.values():
        hub.wait_ready(user, timeout=300)


def start_burners(client: Any, count: int, start_at: float) -> list[int]:
    """Start ``count`` burners from the kernel (as the user, in their cgroup); their pids."""
    code = (
        "import json, subprocess, sys\n"
        f"_burners = [subprocess.Popen([sys.executable, '-c', {BURNER!r}, {str(start_at)!r}])"
        f" for _ in range({count})]\n"
        "print(json.dumps([p.pid for p in _burners]))\n"
    )
    return json.loads(run_in_kernel(client, code))


def kill(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            psutil.Process(pid).kill()


def measure(hub: HubProcess, args: argparse.Namespace) -> dict[str, Any]:
    """Spawn, burn, measure; the result's fields (servers stopped by the caller)."""
    tree = detect()
    if tree is None:
        raise HubError("no usable cgroup hierarchy: the benchmark needs a root hub")
    options: dict[str, Any] = {"profile": args.profile}
    if args.notebook_cpu is not None:
        options["notebook_cpu"] = str(args.notebook_cpu)
    counts = {"A": args.burners_a, "B": args.burners_b}

    spawn_both(hub, options)
    states = {role: hub.spawner_state(user) for role, user in USERS.items()}
    base = _cpu_dir(tree)
    dirs = {
        role: {
            "account": base / state["account"],
            "server": base / state["account"] / state["server_id"],
        }
        for role, state in states.items()
    }
    for role in dirs:
        dirs[role][NOTEBOOK] = dirs[role]["server"] / NOTEBOOK
        dirs[role][CLUSTER] = dirs[role]["server"] / CLUSTER

    clients: dict[str, Any] = {}
    burners: dict[str, list[int]] = {"A": [], "B": []}
    try:
        for role, user in USERS.items():
            clients[role], _ = kernel_client(hub, user)
        start_at = time.time() + LEAD_S
        for role in ("A", "B"):
            burners[role] = start_burners(clients[role], counts[role], start_at)
        if args.one_group:  # the control: as if there were no per-account groups
            for pid in burners["B"]:
                (dirs["A"][NOTEBOOK] / "cgroup.procs").write_text(str(pid))
        late = time.time() > start_at - 0.2
        # Before the start: the burners sleep, so these readings are their start-up cost only.
        time.sleep(max(0.0, start_at - 0.2 - time.time()))
        before = {role: {pid: cpu_seconds(pid) for pid in pids} for role, pids in burners.items()}
        before_server = {role: server_cpu_seconds(tree, states[role]) for role in states}
        before_stat = {role: cpu_stat(dirs[role][NOTEBOOK]) for role in dirs}
        before_busy = machine_busy_seconds()
        time.sleep(max(0.0, start_at - time.time()))
        window_start = time.time()
        time.sleep(args.seconds)
        after = {role: {pid: cpu_seconds(pid) for pid in pids} for role, pids in burners.items()}
        window_s = time.time() - window_start
        after_busy = machine_busy_seconds()
        after_stat = {role: cpu_stat(dirs[role][NOTEBOOK]) for role in dirs}
        after_server = {role: server_cpu_seconds(tree, states[role]) for role in states}
        groups = {
            role: sorted({process_cpu_group(pid) or "?" for pid in pids})
            for role, pids in burners.items()
        }
    finally:
        for pids in burners.values():
            kill(pids)
        for client in clients.values():
            client.stop_channels()

    dead = [pid for role in after for pid, s in after[role].items() if s is None]
    if dead:
        raise RuntimeError(f"burners ended before the window did: {dead}")
    per_burner = {
        role: [round(after[role][pid] - before[role][pid], 3) for pid in burners[role]]
        for role in burners
    }
    used = {role: sum(values) for role, values in per_burner.items()}
    total = used["A"] + used["B"]
    server_used = {
        role: sum(
            after_server[role][pid] - before_server[role][pid]
            for pid in after_server[role]
            if pid in before_server[role]
        )
        for role in states
    }
    busy = after_busy - before_busy
    account_groups = {
        role: "/" + str(dirs[role]["account"].relative_to(_cpu_hierarchy(tree))) for role in dirs
    }
    in_account = all(
        group.startswith(account_groups[role] + "/")
        for role, role_groups in groups.items()
        for group in role_groups
    )
    return {
        "profile": args.profile,
        "notebook_cpu": states["A"]["profile"]["notebook_cpu"],
        "burners": counts,
        "one_group_control": args.one_group,
        "window_s": round(window_s, 3),
        "late_start": late,
        "cpu_s": {"A": round(used["A"], 3), "B": round(used["B"], 3), "total": round(total, 3)},
        "cores_used": {role: round(used[role] / window_s, 3) for role in used},
        "share": {role: round(used[role] / total, 3) if total else None for role in used},
        "ratio_b_to_a": round(used["B"] / used["A"], 3) if used["A"] else None,
        "fair_ratio": 1.0,
        "per_process_ratio": round(counts["B"] / counts["A"], 3),
        "per_burner_cpu_s": per_burner,
        "server_cpu_s": {role: round(seconds, 3) for role, seconds in server_used.items()},
        "machine": {
            "capacity_cpu_s": round((os.cpu_count() or 1) * window_s, 3),
            "busy_cpu_s": round(busy, 3),
            "others_cpu_s": round(busy - server_used["A"] - server_used["B"], 3),
        },
        "burner_cgroups": groups,
        "account_cgroups": account_groups,
        "burners_in_account_cgroup": in_account,
        "throttled": {role: throttling(before_stat[role], after_stat[role]) for role in dirs},
        "cgroups": {
            "version": tree.version,
            "astrokit": cpu_settings(base),
            "hub": cpu_settings(base.parent),
            **{
                role: {part: cpu_settings(path) for part, path in role_dirs.items()}
                for role, role_dirs in dirs.items()
            },
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="burn window (default 10)")
    parser.add_argument("--burners-a", type=int, default=4, help="A's burners (default 4)")
    parser.add_argument("--burners-b", type=int, default=1, help="B's burners (default 1)")
    parser.add_argument("--profile", default="small", help="both servers' profile (small)")
    parser.add_argument(
        "--notebook-cpu", type=float, default=None, help="override the notebook's CPU quota"
    )
    parser.add_argument(
        "--one-group",
        action="store_true",
        help="control: move B's burners into A's notebook group before the window, as if "
        "there were no per-account groups (expect ratio_b_to_a ~ per_process_ratio)",
    )
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        parser.error("needs root: per-user accounts and cgroups (as the isolation tests)")

    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="astrokit-bench-") as tmp:
        hub = HubProcess(tmp, users=list(USERS.values()))
        try:
            hub.start()
            fields = measure(hub, args)
            for user in USERS.values():
                hub.stop_server(user)
        finally:
            hub.close()
    result = {
        "benchmark": "fair_cpu",
        "cpus": os.cpu_count(),
        "seconds": args.seconds,
        **fields,
        "loadavg_start": [round(x, 2) for x in load_start],
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
