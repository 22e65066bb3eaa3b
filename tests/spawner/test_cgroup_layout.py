"""The groups a server's start creates, on a v2 and a v1 layout (plain folders stand in).

The real hierarchy of this machine is v1 (tests/spawner/test_isolation.py enforces limits
there); these check what create() writes where, for both versions, without a kernel.
"""

from __future__ import annotations

from astrokit_spawner.cgroups import (
    ACCOUNT_CPU_SHARES,
    ACCOUNT_CPU_WEIGHT,
    CLUSTER,
    MANAGER,
    NOTEBOOK,
    CgroupTree,
    Limits,
    ServerCgroups,
    worker_slot,
)

GiB = 1024**3


def _limits() -> dict[str, Limits]:
    return {
        NOTEBOOK: Limits(memory_bytes=2 * GiB, cpus=1.0),
        CLUSTER: Limits(memory_bytes=3 * GiB, cpus=2.0),
    }


def test_v2_layout(tmp_path):
    base = tmp_path / "hub" / "astrokit"
    (tmp_path / "hub").mkdir()
    server = ServerCgroups(CgroupTree(2, {"": base}), "astrokit-ada", "ada-1")
    server.create(
        _limits(), server_pids=512, worker_slots=2, worker_limits=Limits(memory_bytes=GiB)
    )
    account, srv = base / "astrokit-ada", base / "astrokit-ada" / "ada-1"
    assert (account / "cpu.weight").read_text() == str(ACCOUNT_CPU_WEIGHT)
    for directory in (tmp_path / "hub", base, account, srv, srv / CLUSTER):
        assert (directory / "cgroup.subtree_control").read_text() == "+memory +cpu +pids"
    assert (srv / "pids.max").read_text() == "512"
    assert (srv / NOTEBOOK / "memory.max").read_text() == str(2 * GiB)
    assert (srv / NOTEBOOK / "cpu.max").read_text() == "100000 100000"
    assert (srv / CLUSTER / "cpu.max").read_text() == "200000 100000"
    assert (srv / worker_slot(1) / "memory.max").read_text() == str(GiB)
    assert (srv / MANAGER).is_dir()
    assert server.procs_files(NOTEBOOK) == [str(srv / NOTEBOOK / "cgroup.procs")]


def test_v1_layout(tmp_path):
    bases = {c: tmp_path / c / "astrokit" for c in ("memory", "cpu", "pids")}
    for c in bases:
        (tmp_path / c).mkdir()
    server = ServerCgroups(CgroupTree(1, bases), "astrokit-ada", "ada-1")
    server.create(_limits(), server_pids=512, worker_slots=1, worker_limits=Limits(GiB))
    cpu, memory = bases["cpu"] / "astrokit-ada", bases["memory"] / "astrokit-ada"
    assert (cpu / "cpu.shares").read_text() == str(ACCOUNT_CPU_SHARES)
    assert (cpu / "ada-1" / NOTEBOOK / "cpu.cfs_quota_us").read_text() == "100000"
    assert (memory / "ada-1" / CLUSTER / "memory.limit_in_bytes").read_text() == str(3 * GiB)
    assert (memory / "ada-1" / worker_slot(0) / "memory.limit_in_bytes").read_text() == str(GiB)
    assert (bases["pids"] / "astrokit-ada" / "ada-1" / "pids.max").read_text() == "512"
    assert len(server.procs_files(NOTEBOOK)) == 3  # one per controller
