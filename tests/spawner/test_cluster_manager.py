"""The cluster manager as a real process: TLS cluster, connect(), idle release, shutdown paths."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess

import psutil
import pytest
from astrokit_spawner.cluster_manager import adaptive_timing
from astrokit_spawner.processes import ProcessRef, tagged_processes, terminate_server
from astrokit_spawner.tls import make_credentials
from distributed import Client
from helpers.dask_env import set_notebook_env
from helpers.manager import ManagerProcess
from helpers.polling import wait_until

from astrokit.connect import ConnectError, connect


class Manager(ManagerProcess):
    """A cluster manager process with the local backend (helpers.manager)."""


@pytest.fixture(scope="module")
def manager(tmp_path_factory):
    m = Manager(tmp_path_factory.mktemp("manager"))
    m.wait_state("ready")
    yield m
    m.close()


@pytest.fixture
def as_notebook(monkeypatch, manager):
    """The environment a notebook of that server gets (the parts connect() reads)."""
    set_notebook_env(monkeypatch, manager.client_env())
    return manager


def test_adaptive_timing():
    assert adaptive_timing(600) == (5.0, 120)
    assert adaptive_timing(2) == (0.5, 4)
    assert adaptive_timing(30) == (3.0, 10)


def test_status_reports_ready_with_addresses(manager):
    status = manager.status()
    assert status["state"] == "ready"
    assert status["workers"] == 2
    assert status["address"].startswith("tls://127.0.0.1:")
    assert isinstance(status["dashboard_port"], int)
    assert status["pid"] == manager.proc.pid


def test_connect_computes_on_the_tls_cluster(as_notebook):
    with connect(timeout=30) as client:
        assert client.submit(sum, range(10)).result() == 45
        workers = client.scheduler_info(n_workers=-1)["workers"]
        assert len(workers) == 2
        for info in workers.values():
            assert info["nthreads"] == 1
            assert info["memory_limit"] == 768 * 1024**2
        # Worker processes carry the server id (for the stop sweep) and the thread budget.
        envs = client.run(
            lambda: (os.environ.get("ASTROKIT_SERVER_ID"), os.environ["OMP_NUM_THREADS"])
        )
        assert set(envs.values()) == {(as_notebook.server_id, "1")}
        # ... and glibc's malloc defaults, not Dask's trim threshold (WORKER_DASK_CONFIG)
        trims = client.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_"))
        assert set(trims.values()) == {None}


def test_cluster_runs_in_a_python_without_torch(tmp_path):
    # The cluster manager and its workers run in the hub's environment (the `hub` extra),
    # which has no torch: a `torch` package that refuses to import stands in for its absence.
    blocker = tmp_path / "no-torch"
    (blocker / "torch").mkdir(parents=True)
    (blocker / "torch" / "__init__.py").write_text(
        "raise ImportError('torch is not installed in the hub environment')\n"
    )
    pythonpath = os.pathsep.join(filter(None, [str(blocker), os.environ.get("PYTHONPATH")]))
    m = Manager(tmp_path / "manager", env={"PYTHONPATH": pythonpath})
    try:
        m.wait_state("ready")
        with Client(m.address, security=m.creds.security("client"), timeout="20s") as c:
            assert c.submit(sum, range(5)).result() == 10

            def torch_importable() -> bool:
                try:
                    import torch  # noqa: F401
                except ImportError:
                    return False
                return True

            assert set(c.run(torch_importable).values()) == {False}
            assert c.run_on_scheduler(torch_importable) is False
    finally:
        m.close()


def test_workers_are_separate_processes_in_the_managers_group(manager):
    with Client(manager.address, security=manager.creds.security("client"), timeout="20s") as c:
        pids = set(c.run(os.getpid).values())
    assert manager.proc.pid not in pids
    for pid in pids:
        assert os.getpgid(pid) == manager.proc.pid  # one process group to end
        assert psutil.Process(pid).memory_info().rss > 0


def test_other_credentials_are_refused(manager, tmp_path):
    other = make_credentials(tmp_path, "someone-else")
    with pytest.raises(OSError):
        Client(manager.address, security=other.security("client"), timeout="5s")
    # Plain TCP to a TLS-only scheduler fails too.
    with pytest.raises((OSError, ValueError, TypeError)):
        Client(manager.address.replace("tls://", "tcp://"), timeout="3s")


def test_connect_fails_clearly_when_workers_are_missing(as_notebook, monkeypatch):
    monkeypatch.setenv("ASTROKIT_N_WORKERS", "5")
    with pytest.raises(ConnectError, match=r"only 2 of 5 Dask workers connected .* within 2 s"):
        connect(timeout=2)


def test_idle_cluster_releases_workers_and_connect_wakes_it(tmp_path, monkeypatch):
    m = Manager(tmp_path, idle_timeout=2.0, idle_minimum=0)
    try:
        m.wait_state("ready")
        wait_until(lambda: m.status().get("workers") == 0, 90, "idle workers to be released")
        # A bare client's work scales the cluster up again on its own (adaptive).
        with Client(m.address, security=m.creds.security("client"), timeout="20s") as bare:
            assert bare.submit(len, [1, 2, 3]).result(timeout=60) == 3
        wait_until(lambda: m.status().get("workers") == 0, 90, "workers to be released again")
        set_notebook_env(monkeypatch, m.client_env())
        with connect(timeout=60) as client:
            assert len(client.scheduler_info(n_workers=-1)["workers"]) == 2
            assert client.submit(pow, 2, 10).result() == 1024
    finally:
        m.close()


def test_manager_exits_when_its_notebook_dies(tmp_path):
    notebook = subprocess.Popen(["sleep", "600"])
    watch = tmp_path / "notebook.json"
    watch.write_text(json.dumps(ProcessRef.of(notebook.pid).to_dict()))
    m = Manager(tmp_path, watch_file=str(watch))
    try:
        m.wait_state("ready")
        assert tagged_processes(m.server_id)
        notebook.kill()
        notebook.wait()
        assert m.proc.wait(60) == 0
        assert m.status()["state"] == "stopped"
        wait_until(lambda: not tagged_processes(m.server_id), 15, "workers to exit")
    finally:
        notebook.kill()
        m.close()


def test_sigterm_stops_everything(tmp_path):
    m = Manager(tmp_path)
    try:
        m.wait_state("ready")
        procs = tagged_processes(m.server_id)
        # The manager, two workers and multiprocessing's helper processes.
        assert m.proc.pid in {p.pid for p in procs}
        assert len(procs) >= 3
        refs = [ProcessRef.of(m.proc.pid)]
        left = asyncio.run(terminate_server(refs, m.server_id, grace=20))
        assert left == []
        assert m.proc.wait(5) == 0
        assert m.status()["state"] == "stopped"
        assert not tagged_processes(m.server_id)
        assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in procs)
    finally:
        m.close()


def test_scheduler_port_in_use_is_reported(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        m = Manager(tmp_path, scheduler_port=busy.getsockname()[1])
        try:
            status = m.wait_state("failed", timeout=60)
            assert "scheduler did not start" in status["error"]
            assert m.proc.wait(30) == 1
        finally:
            m.close()


def test_manager_exits_when_its_scheduler_closes(tmp_path):
    m = Manager(tmp_path)
    try:
        m.wait_state("ready")
        client = Client(m.address, security=m.creds.security("client"), timeout="20s")
        client.shutdown()  # closes the scheduler (and its workers) from the outside
        client.close()
        assert m.proc.wait(60) == 1
        status = m.status()
        assert status["state"] == "failed" and status["error"].startswith("scheduler ")
        wait_until(lambda: not tagged_processes(m.server_id), 30, "workers to exit")
    finally:
        m.close()
