"""Enforced resource limits for a server's processes, with Linux control groups.

Each server gets a subtree ``astrokit/<account>/<server id>/{notebook,cluster}`` below the
hub's own cgroup (so the hub's own limits, if any, still bound everything it starts):

- ``notebook``: the profile's notebook memory (hard limit: a kernel that allocates past it is
  killed by the kernel's OOM killer, inside this group only) and CPU (a CFS quota);
- ``cluster``: the cluster manager, scheduler and workers, limited to the profile's total
  worker memory plus an allowance for the scheduler, and to the profile's worker threads;
  inside it ``cluster/manager`` (manager, scheduler, nannies) and one ``cluster/worker-<k>``
  slot per worker, each limited to the profile's worker memory: a worker moves itself into a
  free slot when it starts (:mod:`astrokit_spawner.worker_cgroup`), so one runaway worker is
  killed by the kernel without taking its siblings along;
- every account's subtree has the same CPU weight, so two users running CPU-bound work get
  an equal share of the cores whatever the number of processes each runs (as SystemdSpawner's
  slices do);
- a process-count limit on the server, so a fork bomb stays inside it.

Processes are put into their group between ``fork`` and ``exec`` (:meth:`ServerCgroups.enter`),
so everything they start, including processes that leave their session or drop AstroKit's
environment variables, stays in the group: :meth:`ServerCgroups.kill` ends them all.

Both cgroup versions are supported and detected at run time: v1 (one hierarchy per
controller, as on the machines this project is developed on) and v2 (the unified hierarchy,
common on current distributions); see :func:`detect`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CPU_PERIOD_US",
    "CgroupError",
    "CgroupTree",
    "Limits",
    "ServerCgroups",
    "detect",
    "worker_slot",
]

logger = logging.getLogger(__name__)

#: CFS period for CPU quotas (the kernel's default, 100 ms).
CPU_PERIOD_US = 100_000
#: v1 controllers AstroKit uses.
V1_CONTROLLERS = ("memory", "cpu", "pids")
#: Name of AstroKit's subtree below the hub's cgroup.
SUBTREE = "astrokit"
#: Parts of a server that processes are started in (the manager's is inside the cluster's).
NOTEBOOK = "notebook"
CLUSTER = "cluster"
MANAGER = "cluster/manager"


#: The CPU weight of each account's group (v1 ``cpu.shares``, v2 ``cpu.weight``; both the
#: kernel's defaults, written so that the promise does not rest on defaults): two users
#: with CPU-bound work get the same share of the cores however many processes each runs
#: (``benchmarks/fair_cpu.py``: 4 processes against 1 got 0.98 : 1).
ACCOUNT_CPU_SHARES = 1024
ACCOUNT_CPU_WEIGHT = 100


def worker_slot(index: int) -> str:
    """The part name of worker slot ``index``.

    >>> worker_slot(1)
    'cluster/worker-1'
    """
    return f"{CLUSTER}/worker-{int(index)}"


class CgroupError(RuntimeError):
    """Control groups are not usable as configured (message names the path and the cause)."""


@dataclass(frozen=True)
class Limits:
    """Limits of one part of a server; ``None`` means unlimited."""

    memory_bytes: int | None = None
    cpus: float | None = None
    max_pids: int | None = None


def _own_cgroup_paths(proc_self_cgroup: str) -> dict[str, str]:
    """Map controller (``""`` for v2) to this process's cgroup path, from /proc/self/cgroup.

    >>> _own_cgroup_paths("4:memory:/a/b\\n1:cpu,cpuacct:/\\n0::/x\\n")
    {'memory': '/a/b', 'cpu': '/', 'cpuacct': '/', '': '/x'}
    """
    paths: dict[str, str] = {}
    for line in proc_self_cgroup.splitlines():
        if not line.strip():
            continue
        _, controllers, path = line.split(":", 2)
        for name in controllers.split(",") if controllers else [""]:
            paths[name] = path
    return paths


@dataclass(frozen=True)
class CgroupTree:
    """Where AstroKit's subtree lives: per controller (v1) or one directory (v2)."""

    version: int
    #: v1: controller -> base directory; v2: {"": base directory}.
    bases: dict[str, Path]

    def server(self, account: str, server_id: str) -> ServerCgroups:
        """The cgroups of one server (not yet created)."""
        return ServerCgroups(self, account, server_id)


def detect(mount: str | os.PathLike[str] = "/sys/fs/cgroup") -> CgroupTree | None:
    """The usable cgroup hierarchy below this process's own cgroup, or ``None``.

    v2 is used when ``mount`` is the unified hierarchy with the memory and cpu controllers
    available; otherwise v1 when the memory, cpu and pids hierarchies are mounted and
    writable. ``None`` when neither is usable (e.g. not root).
    """
    root = Path(mount)
    try:
        own = _own_cgroup_paths(Path("/proc/self/cgroup").read_text())
    except OSError:
        return None
    controllers_file = root / "cgroup.controllers"
    if controllers_file.exists():  # the unified hierarchy is mounted at the root: v2
        available = set(controllers_file.read_text().split())
        base = root / own.get("", "/").lstrip("/") / SUBTREE
        if {"memory", "cpu"} <= available and os.access(base.parent, os.W_OK):
            return CgroupTree(2, {"": base})
        return None
    bases = {}
    for controller in V1_CONTROLLERS:
        hierarchy = root / controller
        if not (hierarchy / "cgroup.procs").exists():
            return None
        base = hierarchy / own.get(controller, "/").lstrip("/") / SUBTREE
        if not os.access(base.parent, os.W_OK):
            return None
        bases[controller] = base
    return CgroupTree(1, bases)


def _mkdirs(path: Path) -> None:
    """Create ``path`` and its missing parents as 0711: a worker must pass through them to
    its slot (the hub's umask would make them 0700), but nobody may list them."""
    missing = [path, *(p for p in path.parents if not p.exists())]
    for directory in reversed(missing):
        try:
            directory.mkdir(exist_ok=True)
            directory.chmod(0o711)
        except OSError as exc:
            raise CgroupError(f"cannot create {directory}: {exc.strerror}") from exc


def _write(path: Path, value: str) -> None:
    try:
        path.write_text(value)
    except OSError as exc:
        raise CgroupError(f"cannot write {value!r} to {path}: {exc.strerror}") from exc


def _v1_limit_files(controller: str, limits: Limits) -> dict[str, str]:
    """v1 files and values for ``limits`` in ``controller``.

    >>> _v1_limit_files("cpu", Limits(cpus=1.5))
    {'cpu.cfs_period_us': '100000', 'cpu.cfs_quota_us': '150000'}
    >>> _v1_limit_files("memory", Limits(memory_bytes=1024))
    {'memory.limit_in_bytes': '1024'}
    """
    files: dict[str, str] = {}
    if controller == "memory" and limits.memory_bytes:
        files["memory.limit_in_bytes"] = str(int(limits.memory_bytes))
    if controller == "cpu" and limits.cpus:
        files["cpu.cfs_period_us"] = str(CPU_PERIOD_US)
        files["cpu.cfs_quota_us"] = str(max(1000, int(limits.cpus * CPU_PERIOD_US)))
    if controller == "pids" and limits.max_pids:
        files["pids.max"] = str(int(limits.max_pids))
    return files


def _v2_limit_files(limits: Limits) -> dict[str, str]:
    """v2 files and values for ``limits``.

    >>> _v2_limit_files(Limits(memory_bytes=1024, cpus=2, max_pids=64))
    {'memory.max': '1024', 'memory.swap.max': '0', 'cpu.max': '200000 100000', 'pids.max': '64'}
    """
    files: dict[str, str] = {}
    if limits.memory_bytes:
        files["memory.max"] = str(int(limits.memory_bytes))
        files["memory.swap.max"] = "0"
    if limits.cpus:
        files["cpu.max"] = f"{max(1000, int(limits.cpus * CPU_PERIOD_US))} {CPU_PERIOD_US}"
    if limits.max_pids:
        files["pids.max"] = str(int(limits.max_pids))
    return files


class ServerCgroups:
    """The cgroups of one server: create with limits, enter from a child, list, kill, remove."""

    def __init__(self, tree: CgroupTree, account: str, server_id: str) -> None:
        self.tree = tree
        self.account = account
        self.server_id = server_id

    # --- paths ----------------------------------------------------------------------
    def _server_dirs(self) -> list[tuple[str, Path]]:
        return [(c, base / self.account / self.server_id) for c, base in self.tree.bases.items()]

    def procs_files(self, part: str) -> list[str]:
        """The ``cgroup.procs`` files a process of ``part`` is written into."""
        return [str(d / part / "cgroup.procs") for _, d in self._server_dirs()]

    # --- life cycle -------------------------------------------------------------------
    def create(
        self,
        limits: dict[str, Limits],
        *,
        server_pids: int | None = None,
        worker_slots: int = 0,
        worker_limits: Limits | None = None,
        owner: tuple[int, int] | None = None,
    ) -> None:
        """Make the server's groups.

        Parameters
        ----------
        limits
            Limits of the ``notebook`` and ``cluster`` parts.
        server_pids
            Process/thread cap of the whole server.
        worker_slots, worker_limits
            How many ``cluster/worker-<k>`` slots to make, and the limits of each.
        owner
            ``(uid, gid)`` given the slots' and the cluster's ``cgroup.procs``, so the
            account's workers can move themselves into a slot. The limit files stay root's:
            a user cannot raise their own limits.

        Raises
        ------
        CgroupError
            If a directory or limit cannot be written.
        """
        slots = [worker_slot(k) for k in range(worker_slots)]
        parts: dict[str, Limits] = {
            NOTEBOOK: limits.get(NOTEBOOK, Limits()),
            CLUSTER: limits.get(CLUSTER, Limits()),
            MANAGER: Limits(),
            **{slot: worker_limits or Limits() for slot in slots},
        }
        for base in self.tree.bases.values():
            _mkdirs(base)  # also re-opens one an earlier hub made 0700
        if self.tree.version == 2:
            self._create_v2(parts, server_pids)
        else:
            self._create_v1(parts, server_pids)
        if owner is not None:
            # Moving a process needs write access to the destination's cgroup.procs and to
            # that of the common ancestor of source and destination (cgroup v2, and v1 on
            # current kernels): the slots and the cluster's own group. Within the cluster's
            # limit, then, the account may move its cluster processes around, nothing more.
            for part in [*slots, CLUSTER]:
                for procs in self.procs_files(part):
                    os.chown(procs, *owner)
                    tasks = Path(procs).with_name("tasks")  # v1 moves threads through it
                    if tasks.exists():
                        os.chown(tasks, *owner)

    def _create_v1(self, parts: dict[str, Limits], server_pids: int | None) -> None:
        for controller, server_dir in self._server_dirs():
            _mkdirs(server_dir)
            if controller == "cpu":  # every account the same weight, whatever it runs
                _write(server_dir.parent / "cpu.shares", str(ACCOUNT_CPU_SHARES))
            if controller == "pids" and server_pids:
                _write(server_dir / "pids.max", str(server_pids))
            for part, part_limits in parts.items():  # parents come before their children
                _mkdirs(server_dir / part)
                for name, value in _v1_limit_files(controller, part_limits).items():
                    _write(server_dir / part / name, value)

    def _create_v2(self, parts: dict[str, Limits], server_pids: int | None) -> None:
        base = self.tree.bases[""]
        account_dir = base / self.account
        server_dir = account_dir / self.server_id
        _mkdirs(server_dir)
        # v2 allows controllers in a child only when every ancestor enables them for its
        # children, and an ancestor with processes of its own cannot (no internal processes):
        # the hub's own cgroup must have been delegated to it, as systemd does for services.
        # That is also why the manager runs in cluster/manager, not in cluster itself.
        for directory in (base.parent, base, account_dir, server_dir):
            _write(directory / "cgroup.subtree_control", "+memory +cpu +pids")
        _write(account_dir / "cpu.weight", str(ACCOUNT_CPU_WEIGHT))
        if server_pids:
            _write(server_dir / "pids.max", str(server_pids))
        for part, part_limits in parts.items():
            _mkdirs(server_dir / part)
            if part == CLUSTER:
                _write(server_dir / part / "cgroup.subtree_control", "+memory +cpu +pids")
            for name, value in _v2_limit_files(part_limits).items():
                _write(server_dir / part / name, value)

    def enter(self, part: str) -> None:
        """Move the calling process into ``part`` (used between fork and exec)."""
        pid = str(os.getpid())
        for path in self.procs_files(part):
            with open(path, "w") as handle:
                handle.write(pid)

    def pids(self) -> set[int]:
        """Pids of every process in the server's groups."""
        found: set[int] = set()
        for _, server_dir in self._server_dirs():
            if not server_dir.exists():
                continue
            for procs in server_dir.rglob("cgroup.procs"):
                with contextlib.suppress(OSError, ValueError):
                    found.update(int(line) for line in procs.read_text().split())
        return found

    def signal(self, sig: int) -> None:
        """Send ``sig`` to every process of the server."""
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)

    async def kill(self, *, timeout: float = 10.0) -> set[int]:
        """SIGKILL every process of the server until none is left; return any survivors."""
        deadline = time.monotonic() + timeout
        while True:
            left = self.pids()
            if not left or time.monotonic() > deadline:
                return left
            self.signal(signal.SIGKILL)
            await asyncio.sleep(0.05)

    def remove(self) -> None:
        """Remove the server's (empty) groups; leftovers are logged, never raised."""
        for _, server_dir in self._server_dirs():
            if not server_dir.exists():
                continue
            # Deepest first: a cgroup directory can only be removed once it has no children.
            for directory in sorted(
                (p for p in server_dir.rglob("*") if p.is_dir()),
                key=lambda p: len(p.parts),
                reverse=True,
            ):
                with contextlib.suppress(OSError):
                    directory.rmdir()
            try:
                server_dir.rmdir()
            except OSError as exc:
                logger.warning("cgroup %s not removed: %s", server_dir, exc.strerror)
            # The account's group goes with its last server (it has none while idle).
            with contextlib.suppress(OSError):
                server_dir.parent.rmdir()
