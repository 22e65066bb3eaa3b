"""The cluster manager with the Slurm backend, against a real one-node Slurm on 127.0.0.1.

The manager runs as the spawner runs it (its own process, a spec file, the server's TLS
credentials); its workers are ``sbatch`` jobs. Checked here: the jobs carry the server's
name and the profile's size, the TLS cluster computes, a job Slurm ends is replaced, Slurm's
refusals end a start with Slurm's words, and no job outlives the manager.
"""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

import pytest
from astrokit_spawner.slurm import job_name
from distributed import Client
from helpers.dask_env import set_notebook_env
from helpers.manager import ManagerProcess
from helpers.polling import wait_until


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SlurmManager(ManagerProcess):
    """A cluster manager process with ``backend="slurm"``."""

    stop_wait = 60

    def __init__(self, base: Path, slurm, **overrides) -> None:
        self.slurm = slurm
        settings = {
            "partition": slurm.partition,
            "scheduler_host": "127.0.0.1",
            "pending_timeout": 30,
            "environment": slurm.env,
        }
        settings.update(overrides.pop("slurm", {}))
        spec = {
            "memory_limit": 512 * 1024**2,
            "start_timeout": 90,
            "scheduler_port": _free_port(),
            "dashboard_port": _free_port(),
            "backend": "slurm",
            "walltime": "00:20:00",
            "slurm": settings,
        }
        super().__init__(base, cwd=base, **{**spec, **overrides})

    @property
    def job_name(self) -> str:
        return job_name(self.server_id)

    def live_jobs(self) -> list[dict]:
        return [j for j in self.slurm.jobs(self.job_name) if j["state"] != "COMPLETING"]

    def client(self) -> Client:
        security = self.creds.security("client")
        return Client(f"tls://127.0.0.1:{self.spec.scheduler_port}", security=security, timeout=30)

    def release(self) -> None:
        for job in self.slurm.jobs(self.job_name):
            self.slurm.run("scancel", job["id"], check=False)


@pytest.fixture(scope="module")
def manager(slurm, tmp_path_factory):
    m = SlurmManager(tmp_path_factory.mktemp("slurm-manager"), slurm)
    try:
        m.wait_state("ready")
        yield m
    finally:
        m.close()


def test_workers_are_slurm_jobs_of_the_server(manager, slurm):
    status = manager.status()
    assert status["state"] == "ready" and status["workers"] == 2
    jobs = manager.live_jobs()
    assert len(jobs) == 2, jobs
    assert {j["state"] for j in jobs} == {"RUNNING"}
    assert sorted(status["slurm_jobs"], key=int) == sorted((j["id"] for j in jobs), key=int)
    assert status["slurm_job_name"] == manager.job_name
    assert status["detail"].startswith("Slurm jobs: running 2/2")
    # Sized by the profile: 1 CPU and 512 MiB per job, the spec's walltime.
    info = slurm.run("scontrol", "show", "job", jobs[0]["id"]).stdout
    assert "NumCPUs=1" in info, info
    assert "mem=512M" in info, info
    assert "TimeLimit=00:20:00" in info, info


def test_tls_cluster_computes_on_slurm_workers(manager):
    with manager.client() as client:
        assert client.submit(sum, range(10)).result() == 45
        hosts = client.run(socket.gethostname)
        assert len(hosts) == 2
        # workers run the job's prologue: one thread for numerical libraries
        threads = client.run(lambda: os.environ.get("OMP_NUM_THREADS"))
        assert set(threads.values()) == {"1"}
        env = client.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_"))
        assert set(env.values()) == {None}  # astrokit.cluster.WORKER_DASK_CONFIG reached them


def test_a_job_slurm_ends_is_replaced(manager, slurm):
    before = {j["id"] for j in manager.live_jobs()}
    victim = sorted(before, key=int)[0]
    slurm.run("scancel", victim)

    def replaced():
        jobs = {j["id"]: j["state"] for j in manager.live_jobs()}
        fresh = set(jobs) - before
        if victim not in jobs and fresh and all(s == "RUNNING" for s in jobs.values()):
            return jobs
        return None

    jobs = wait_until(replaced, 90, "a replacement job")
    assert len(jobs) == 2
    with manager.client() as client:
        client.wait_for_workers(2, timeout=60)
        assert client.submit(lambda x: x + 1, 1).result() == 2
    wait_until(
        lambda: sorted(manager.status().get("slurm_jobs", []), key=int) == sorted(jobs, key=int),
        30,
        "the status file to list the new job",
    )


@pytest.mark.slow  # waits for a one-minute walltime to run out
def test_a_job_ended_by_its_walltime_is_replaced(slurm, tmp_path):
    m = SlurmManager(tmp_path, slurm, n_workers=1, walltime="00:01:00")
    try:
        m.wait_state("ready")
        (first,) = (j["id"] for j in m.live_jobs())

        def replaced():
            jobs = m.live_jobs()
            ids = {j["id"] for j in jobs}
            return ids if first not in ids and jobs and jobs[0]["state"] == "RUNNING" else None

        wait_until(replaced, 180, "Slurm to end the job at its walltime and a replacement")
        info = slurm.run("scontrol", "show", "job", first, check=False).stdout
        assert "JobState=TIMEOUT" in info or not info.strip(), info
        with m.client() as client:
            client.wait_for_workers(1, timeout=90)
            assert client.submit(lambda x: x * 2, 21).result() == 42
    finally:
        m.close()


def test_scaling_submits_and_cancels_jobs_within_the_profile(manager, monkeypatch):
    from astrokit.connect import connect, scale_cluster, scale_on_scheduler

    set_notebook_env(monkeypatch, manager.client_env())
    with connect(timeout=60) as client:
        assert scale_cluster(client, 1, timeout=90) == 1
        wait_until(lambda: len(manager.live_jobs()) == 1, 60, "one job cancelled")
        assert scale_cluster(client, 2, timeout=120) == 2
        wait_until(lambda: len(manager.live_jobs()) == 2, 60, "a job submitted")
        with pytest.raises(ValueError, match=r"outside 0\.\.2"):
            scale_cluster(client, 3)
        with pytest.raises(ValueError, match=r"outside 0\.\.2"):  # the manager's own cap
            client.run_on_scheduler(scale_on_scheduler, n_workers=3)
    assert len(manager.live_jobs()) == 2


def test_idle_release_cancels_the_jobs_and_new_work_submits_them_again(slurm, tmp_path):
    m = SlurmManager(tmp_path, slurm, idle_timeout=3)
    try:
        m.wait_state("ready")
        wait_until(lambda: m.live_jobs() == [], 90, "idle workers' jobs to be cancelled")
        assert m.status()["workers"] == 0
        # Work arriving at an empty cluster: adaptive submits a job for it. (connect() asks
        # for the profile's size instead; with this test's 3 s idle timeout adaptive would
        # cancel those jobs again before they start - at the default 600 s it does not.)
        with m.client() as client:
            assert client.submit(sum, [1, 2]).result(timeout=180) == 3
        assert 1 <= len(m.live_jobs()) <= 2
    finally:
        m.close()


def test_stopping_the_manager_cancels_every_job(slurm, tmp_path):
    m = SlurmManager(tmp_path, slurm)
    try:
        m.wait_state("ready")
        assert len(m.live_jobs()) == 2
        m.proc.send_signal(signal.SIGTERM)
        assert m.proc.wait(60) == 0
        assert m.status()["state"] == "stopped"
        assert m.status()["slurm_jobs"] == []
        assert slurm.jobs(m.job_name) == []
    finally:
        m.close()


def test_request_beyond_the_partition_fails_naming_slurms_reason(slurm, tmp_path):
    m = SlurmManager(tmp_path, slurm, walltime="02:00:00")  # partition MaxTime is 60 min
    try:
        status = m.wait_state("failed", timeout=60)
        assert "PartitionTimeLimit" in status["error"], status
        assert m.proc.wait(60) == 1
        assert slurm.jobs(m.job_name) == []
    finally:
        m.close()


def test_memory_no_node_has_fails_with_slurms_message(slurm, tmp_path):
    m = SlurmManager(tmp_path, slurm, memory_limit=4 * 1024**4)  # 4 TiB per worker
    try:
        status = m.wait_state("failed", timeout=60)
        assert "Slurm refused the worker job" in status["error"], status
        assert "Requested node configuration is not available" in status["error"], status
        assert m.proc.wait(60) == 1
    finally:
        m.close()
