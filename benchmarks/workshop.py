"""A workshop on one machine: N users press Start at once; prints one JSON object.

Starts a real JupyterHub (configurable-http-proxy, AstroKitSpawner, the embedded
``deploy/local`` configuration) on 127.0.0.1 in a temporary directory with N users, then
requests all N servers through the REST API at the same instant with the ``small`` profile
(2 workers) and polls the hub's user list until every server is ready (notebook answering
*and* all Dask workers connected: the spawner's ``start`` returns only then) or has failed.

It reports

- the first, median and last ready time, in seconds from the common start instant;
- failures: a spawn request answered with neither 201 nor 202, a server model that
  disappears (the spawn failed: the message is the progress stream's), or a server not ready
  within ``--timeout``;
- CPU seconds spent from the start instant to all-ready (user + system), total, per spawn
  and by role: ``hub`` (the increase of the hub, the proxy and the idle culler themselves),
  ``hub_reaped`` (processes they started that ended meanwhile: account and cgroup tools,
  and the processes of failed spawns), and every live process of every server, in full
  with its reaped children, as notebook, scheduler_and_manager, workers or helpers (see
  ``spawn._role``);
- the idle RSS, PSS and USS of all servers once all are ready and ``--settle`` seconds passed,
  total and by role (``spawn.idle_memory`` for each server);
- how often the hub logged "Event loop was unresponsive for at least X s" (JupyterHub's
  warning for a blocked event loop of 1 s or more) between the start instant and all-ready,
  and the longest such block;
- stopping all at once (N REST DELETEs at the same instant): the time until the hub reports
  every server gone, and the processes left afterwards (must be 0; the exit status is 1
  otherwise).

The hub must accept N spawns at once: ``deploy/local/jupyterhub_config.py`` sets neither
``concurrent_spawn_limit`` (JupyterHub's default is 100) nor ``active_server_limit`` (0,
unlimited), and the benchmark runs it unchanged. Run as root (as ``make run`` does on a
shared machine), each user's server runs as a system account of its own; ``HubProcess``
creates them with a prefix of this hub alone and removes them at the end.

Usage::

    .venv/bin/python benchmarks/workshop.py                    # 10 users
    .venv/bin/python benchmarks/workshop.py --users 20 --save  # + results/workshop-20.json
    .venv/bin/python benchmarks/workshop.py --quick            # 2 users, 1 s settle: smoke
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import requests

BENCHMARKS = Path(__file__).resolve().parent
REPO = BENCHMARKS.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(BENCHMARKS))

from helpers.hub import HubProcess  # noqa: E402  (the test helper is the hub launcher)
from spawn import MEMORY_KINDS, _role, idle_memory  # noqa: E402  (one definition of the roles, in spawn.py)

GiB = 1024**3
MiB = 1024**2
PROFILE = "small"  # 2 workers x 1 thread, 1 GiB each
POLL_S = 0.25  # one GET /hub/api/users per round answers for every user
UNRESPONSIVE = re.compile(rb"Event loop was unresponsive for at least ([0-9.]+)\s*s")
#: hub: the hub, the proxy and the culler themselves; hub_reaped: processes they started that
#: ended before all-ready (account and cgroup tools, the processes of failed spawns).
ROLES = (
    "hub",
    "hub_reaped",
    "warm_start",
    "notebook",
    "scheduler_and_manager",
    "workers",
    "helpers",
)
#: What a 20-user workshop on one machine should reach.
TARGETS = {"users20": {"failures": 0, "median_ready_s": 20, "first_ready_s": 6, "idle_rss_gib": 8}}


# --- CPU ---------------------------------------------------------------------------------
def _cpu_s(proc: psutil.Process) -> float:
    """User + system CPU seconds of ``proc`` and of its children it has reaped."""
    t = proc.cpu_times()
    return t.user + t.system + t.children_user + t.children_system


def _is_server_process(proc: psutil.Process) -> bool:
    try:
        return "ASTROKIT_SERVER_ID" in proc.environ()
    except (psutil.Error, OSError):
        return False


def _is_template(proc: psutil.Process) -> bool:
    return "astrokit_spawner.warm_start" in proc.cmdline()


def hub_tree_cpu(hub: HubProcess) -> dict[tuple[int, float], tuple[str, float, float]]:
    """Role and CPU seconds (own, reaped children's) of the hub and its non-server descendants.

    The proxy, the culler and the warm-start templates (role ``warm_start``: their share of
    each start is the fork) are the hub's descendants too; the servers' processes (also its
    descendants) are not counted here. Keyed by (pid, create time), so that a process that
    started later is counted in full.
    """
    assert hub.proc is not None
    root = psutil.Process(hub.proc.pid)
    found: dict[tuple[int, float], tuple[str, float, float]] = {}
    for proc in [root, *root.children(recursive=True)]:
        try:
            if proc is root or not _is_server_process(proc):
                t = proc.cpu_times()
                role = "warm_start" if _is_template(proc) else "hub"
                own, reaped = t.user + t.system, t.children_user + t.children_system
                found[(proc.pid, proc.create_time())] = (role, own, reaped)
        except psutil.Error:
            continue
    return found


def templates(hub: HubProcess) -> dict[str, dict[str, float]]:
    """The warm-start templates: CPU since they started (their imports) and idle memory.

    Shared by every server of the hub, like the hub itself: not in the servers' totals.
    """
    assert hub.proc is not None
    found = {}
    for proc in psutil.Process(hub.proc.pid).children(recursive=True):
        try:
            if not _is_template(proc):
                continue
            cmd = proc.cmdline()
            role = cmd[cmd.index("astrokit_spawner.warm_start") + 1]
            t, info = proc.cpu_times(), proc.memory_full_info()
        except (psutil.Error, ValueError, IndexError):
            continue
        found[role] = {
            "own_cpu_s": round(t.user + t.system, 2),
            **{f"{kind}_mib": round(getattr(info, kind) / MiB, 1) for kind in MEMORY_KINDS},
        }
    return found


def servers_cpu(hub: HubProcess) -> dict[str, float]:
    """CPU seconds of every process of this hub's servers, by role (all started after t0)."""
    by_role: dict[str, float] = {}
    for proc in hub.leftover_processes():
        try:
            role = _role(proc)
            seconds = _cpu_s(proc)
        except psutil.Error:
            continue
        by_role[role] = by_role.get(role, 0.0) + seconds
    return by_role


# --- the hub's log -----------------------------------------------------------------------
def _log_between(log: Path, start: int, end: int) -> bytes:
    with open(log, "rb") as handle:
        handle.seek(start)
        return handle.read(max(0, end - start))


def unresponsive(log: Path, start: int, end: int) -> dict[str, Any]:
    """Count and longest of the hub's "Event loop was unresponsive" lines in [start, end)."""
    text = _log_between(log, start, end)
    delays = [float(m.group(1)) for m in UNRESPONSIVE.finditer(text)]
    return {"count": len(delays), "max_s": round(max(delays), 2) if delays else 0.0}


def hub_says(log: Path, start: int, end: int, user: str, lines: int = 2) -> list[str]:
    """The hub's last warnings and errors naming ``user`` in [start, end) of its log.

    A spawn that times out fails with an empty message ("Spawn failed: "); the hub's log
    says why ("... failed to start in 120 seconds, giving up").
    """
    found = []
    for line in _log_between(log, start, end).decode(errors="replace").splitlines():
        if line.startswith(("[W ", "[E ", "[C ")) and re.search(rf"\b{re.escape(user)}\b", line):
            found.append(line[:300])
    return found[-lines:]


def _log_size(hub: HubProcess) -> int:
    try:
        return hub.log_path.stat().st_size
    except OSError:
        return 0


# --- all at once -------------------------------------------------------------------------
def _servers(hub: HubProcess) -> dict[str, dict[str, Any]]:
    """Each user's default server model (absent: not running), from one request."""
    r = hub.api("GET", "/users", timeout=60)
    r.raise_for_status()
    return {u["name"]: u["servers"][""] for u in r.json() if "" in (u.get("servers") or {})}


def _at_once(users: list[str], call) -> tuple[float, dict[str, Any]]:
    """Run ``call(user)`` in one thread per user, all released at the same instant.

    Returns the instant (``time.perf_counter``) and a dict that fills with each user's
    ``(seconds after the instant, response or exception)`` as the calls return.
    """
    go = threading.Event()
    answers: dict[str, Any] = {}

    def one(user: str) -> None:
        go.wait()
        try:
            answer = call(user)
        except requests.RequestException as exc:
            answer = exc
        answers[user] = (time.perf_counter() - t0, answer)

    threads = [threading.Thread(target=one, args=(u,), daemon=True) for u in users]
    for thread in threads:
        thread.start()
    time.sleep(0.2)  # every thread is waiting on the event
    t0 = time.perf_counter()
    go.set()
    return t0, answers


def _short(message: str, head: int = 200, tail: int = 300) -> str:
    """A failure message cut to its start and end (a spawner's carries a log tail)."""
    message = " ".join(message.split())
    if len(message) <= head + tail + 5:
        return message
    return f"{message[:head]} ... {message[-tail:]}"


def _refusal(response: requests.Response) -> str:
    try:
        message = response.json().get("message", response.text)
    except ValueError:
        message = response.text
    return f"spawn request answered {response.status_code}: {message}"


def spawn_all(hub: HubProcess, users: list[str], timeout: float) -> dict[str, Any]:
    """Request every user's server at one instant; wait until each is ready or has failed."""
    tree_before = hub_tree_cpu(hub)
    log_start = _log_size(hub)
    t0, posts = _at_once(users, lambda u: hub.request_spawn(u, {"profile": PROFILE}))
    ready: dict[str, float] = {}
    failed: dict[str, str] = {}
    seen: set[str] = set()
    while len(ready) + len(failed) < len(users):
        time.sleep(POLL_S)
        now = time.perf_counter() - t0
        # Answers read *before* the models: a server whose request was answered exists in
        # the hub by then, so its absence from the models means the spawn failed.
        answered = dict(posts)
        try:
            models = _servers(hub)
        except requests.RequestException:
            models = None  # the hub did not answer this round; try again
        for user in users:
            if user in ready or user in failed:
                continue
            post = answered.get(user)
            if post is not None and isinstance(post[1], requests.Response):
                if post[1].status_code == 201:
                    ready[user] = post[0]
                    continue
                if post[1].status_code != 202:
                    failed[user] = _refusal(post[1])
                    continue
            if models is not None:
                model = models.get(user)
                if model is not None:
                    seen.add(user)
                    if model.get("ready"):
                        ready[user] = now
                        continue
                elif post is not None or user in seen:
                    # The request was answered (or timed out), the server is gone: it failed.
                    message = hub._failure_message(user, "")
                    if post is not None and not isinstance(post[1], requests.Response):
                        message = f"{message} (spawn request: {post[1]!r})"
                    failed[user] = message
                    continue
            if now > timeout:
                failed[user] = f"not ready within {timeout:g} s"
    all_done = time.perf_counter() - t0
    log_end = _log_size(hub)
    for user in failed:
        said = hub_says(hub.log_path, log_start, log_end, user)
        failed[user] = _short(failed[user]) + (f" | hub log: {' | '.join(said)}" if said else "")

    # CPU from t0 to all-ready: the hub's increase, every server process in full.
    tree_after = hub_tree_cpu(hub)
    by_role = servers_cpu(hub)
    for key, (role, own, reaped) in tree_after.items():
        _, own_before, reaped_before = tree_before.get(key, (role, 0.0, 0.0))
        by_role[role] = by_role.get(role, 0.0) + own - own_before
        by_role["hub_reaped"] = by_role.get("hub_reaped", 0.0) + reaped - reaped_before
    total = sum(by_role.values())
    return {
        "t0": t0,
        "ready": ready,
        "failed": failed,
        "all_done_s": all_done,
        "cpu": {
            "total": round(total, 1),
            "per_spawn": round(total / len(users), 2),
            "by_role": {role: round(by_role.get(role, 0.0), 1) for role in ROLES},
        },
        "event_loop": unresponsive(hub.log_path, log_start, log_end),
    }


def stop_all(hub: HubProcess, users: list[str], timeout: float) -> dict[str, Any]:
    """DELETE the running servers of ``users`` at one instant; wait until all are gone."""
    log_start = _log_size(hub)
    t0, deletes = _at_once(users, lambda u: hub.api("DELETE", f"/users/{u}/server", timeout=60))
    stopped: dict[str, float] = {}
    errors: dict[str, str] = {}
    while len(stopped) < len(users):
        time.sleep(POLL_S)
        now = time.perf_counter() - t0
        if now > timeout:
            break
        try:
            running = _servers(hub)
        except requests.RequestException:
            continue
        for user in users:
            if user not in stopped and user not in running:
                stopped[user] = now
    for _ in range(120):  # the answers to the DELETEs, for their status
        if len(deletes) == len(users):
            break
        time.sleep(POLL_S)
    for user, (_, answer) in list(deletes.items()):
        if not isinstance(answer, requests.Response):
            errors[user] = repr(answer)
        elif answer.status_code not in (202, 204):
            errors[user] = f"stop request answered {answer.status_code}: {answer.text}"
    return {
        "servers": len(users),
        "all_stopped_s": round(max(stopped.values(), default=0.0), 2)
        if len(stopped) == len(users)
        else None,
        "median_s": round(statistics.median(stopped.values()), 2) if stopped else None,
        "not_stopped": sorted(set(users) - set(stopped)),
        "errors": errors,
        "event_loop": unresponsive(hub.log_path, log_start, _log_size(hub)),
    }


def total_idle_memory(hub: HubProcess, server_ids: list[str], settle: float) -> dict[str, Any]:
    """RSS/PSS/USS of every server after ``settle`` s idle: totals and by role.

    The issue's target is summed RSS, which counts each shared page once per process; the
    summed PSS is what the servers take from the machine.
    """
    time.sleep(settle)
    roles: dict[str, dict[str, float]] = {}
    totals = dict.fromkeys(MEMORY_KINDS, 0.0)
    for server_id in server_ids:
        one = idle_memory(hub, server_id, 0)
        for kind in MEMORY_KINDS:
            totals[kind] += one[f"{kind}_mib_total"]
        for role, entry in one["by_role"].items():
            into = roles.setdefault(role, {"count": 0, **{f"{k}_mib": 0.0 for k in MEMORY_KINDS}})
            for key in into:
                into[key] += entry[key]
    for entry in roles.values():
        for kind in MEMORY_KINDS:
            entry[f"{kind}_mib"] = round(entry[f"{kind}_mib"], 1)
    n = len(server_ids)
    return {
        "settle_s": settle,
        **{f"{kind}_gib_total": round(totals[kind] * MiB / GiB, 2) for kind in MEMORY_KINDS},
        **{
            f"{kind}_mib_per_server": round(totals[kind] / n, 1) if n else None
            for kind in MEMORY_KINDS
        },
        "by_role": roles,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10, help="users starting at once (10)")
    parser.add_argument("--settle", type=float, default=10.0, help="idle s before memory (10)")
    parser.add_argument("--timeout", type=float, default=300.0, help="s until a spawn fails")
    parser.add_argument(
        "--cold",
        action="store_true",
        help="no warm starts: every server process starts afresh (ASTROKIT_WARM_START=0)",
    )
    parser.add_argument("--quick", action="store_true", help="2 users, 1 s settle: smoke test")
    parser.add_argument(
        "--save", action="store_true", help="also write benchmarks/results/workshop-<N>.json"
    )
    args = parser.parse_args(argv)
    n = 2 if args.quick else args.users
    settle = 1.0 if args.quick else args.settle
    users = [f"ws{i:02d}" for i in range(1, n + 1)]

    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="astrokit-bench-") as tmp:
        hub = HubProcess(tmp, users=users, env={"ASTROKIT_WARM_START": "0" if args.cold else "1"})
        try:
            started = time.perf_counter()
            hub.start()
            hub_start_s = time.perf_counter() - started
            if not args.cold:  # started with the hub; a workshop begins once they are up
                hub.wait_warm_start()
            templates_ready_s = time.perf_counter() - started
            run = spawn_all(hub, users, args.timeout)
            load_ready = os.getloadavg()
            server_ids = [hub.spawner_state(u)["server_id"] for u in sorted(run["ready"])]
            memory = total_idle_memory(hub, server_ids, settle)
            shared = templates(hub)
            stop = stop_all(hub, sorted(_servers(hub)), timeout=180)
            left = {sid: len(hub.leftover_processes(sid)) for sid in server_ids}
            left_any = len(hub.leftover_processes())  # failed spawns' servers too
        finally:
            hub.close()
    times = sorted(run["ready"].values())
    result = {
        "benchmark": "workshop",
        "users": n,
        "profile": PROFILE,
        "ready_s": {
            "first": round(times[0], 2) if times else None,
            "median": round(statistics.median(times), 2) if times else None,
            "last": round(times[-1], 2) if times else None,
            "all": [round(t, 2) for t in times],
        },
        "all_ready_or_failed_s": round(run["all_done_s"], 2),
        "failures": len(run["failed"]),
        "failure_messages": run["failed"],
        "cpu_s": run["cpu"],
        "idle_memory": memory,
        "warm_start_templates": shared,
        "hub_event_loop_unresponsive": run["event_loop"],
        "stop": {
            **stop,
            "leftover_processes": left_any,
            "leftover_by_server": {sid: k for sid, k in left.items() if k},
        },
        "hub_start_s": round(hub_start_s, 2),
        "warm_start": not args.cold,
        "warm_start_ready_s": None if args.cold else round(templates_ready_s, 2),
        "poll_interval_s": POLL_S,
        "cpus": os.cpu_count(),
        "loadavg_start": [round(x, 2) for x in load_start],
        "loadavg_all_ready": [round(x, 2) for x in load_ready],
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        "targets": TARGETS,
    }
    if n == 20:
        target = TARGETS["users20"]
        result["meets_targets"] = {
            "failures": result["failures"] <= target["failures"],
            "median_ready_s": bool(times)
            and result["ready_s"]["median"] <= target["median_ready_s"],
            "first_ready_s": bool(times) and result["ready_s"]["first"] <= target["first_ready_s"],
            "idle_rss_gib": memory["rss_gib_total"] <= target["idle_rss_gib"],
        }
    text = json.dumps(result)
    print(text)
    if args.save:
        out = BENCHMARKS / "results" / f"workshop-{n}.json"
        out.parent.mkdir(exist_ok=True)
        out.write_text(text + "\n")
    return 1 if result["stop"]["leftover_processes"] or stop["not_stopped"] else 0


if __name__ == "__main__":
    sys.exit(main())
