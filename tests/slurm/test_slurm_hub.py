"""A real hub whose Slurm profile puts each server's Dask workers on a real Slurm (127.0.0.1).

One hub is shared by the module and the tests build on each other's servers, in file order:
spawn through the REST API (progress names the jobs), the jobs in ``squeue`` under the
user's account, a Dask computation and an exact ``astrokit.infer`` from the notebook's
environment, a job ``scancel``-ed mid-inference (still exact, and replaced), stop (no job
left), a manager that died while the hub was down (the restarted hub cancels its jobs from
the spawner state), and a profile beyond the partition's limits (Slurm's reason in the
message).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import psutil
import pytest
from helpers.hub import HubProcess, SpawnFailed
from helpers.polling import wait_until
from helpers.slurm import finish, notebook_process, start_as_notebook

from astrokit.models.astromae import AstroMAE
from astrokit.models.checkpoint import save_checkpoint
from astrokit.shards import Manifest, shard_name, write_shard
from astrokit.survey import synth_galaxies

PROFILES = """
c.AstroKitSpawner.profiles = [
    {"name": "small", "notebook_cpu": 1, "notebook_memory": "1G", "n_workers": 1,
     "threads_per_worker": 1, "worker_memory": "512M"},
    {"name": "hpc", "backend": "slurm", "walltime": "00:30:00", "notebook_cpu": 1,
     "notebook_memory": "1G", "n_workers": 2, "threads_per_worker": 1, "worker_memory": "768M"},
    {"name": "hpc-long", "backend": "slurm", "walltime": "02:00:00", "notebook_cpu": 1,
     "notebook_memory": "1G", "n_workers": 1, "threads_per_worker": 1, "worker_memory": "512M"},
]
c.Spawner.poll_interval = 2
"""

# What a notebook cell runs: connect() with no arguments, then work on the Slurm workers.
COMPUTE = """
import json, os, socket, astrokit
client = astrokit.connect(timeout=90)
info = client.scheduler_info(n_workers=-1)["workers"]
total = client.submit(sum, range(101)).result()
squares = client.gather(client.map(lambda x: x * x, range(20)))
jobs = client.run(lambda: os.environ.get("SLURM_JOB_ID"))
print(json.dumps({"n_workers": len(info), "total": total, "squares": sum(squares),
                  "jobs": sorted(jobs.values())}))
"""

INFER = """
import json, os, astrokit
client = astrokit.connect(timeout=90)
result = astrokit.infer({data!r}, model={model!r}, out={out!r}, partition_mb=0.3,
                        progress=False)
s = result.summary
cat = result.to_pandas()
print(json.dumps({{
    "summary": {{k: s[k] for k in ("complete", "n_predictions", "missing", "duplicates",
                                   "unexpected")}},
    "ids": cat["id"].tolist(),
    "z": cat["z_pred"].astype(float).tolist(),
}}))
"""


def slurm_config(slurm) -> str:
    settings = {
        "partition": slurm.partition,
        "scheduler_host": "127.0.0.1",
        "pending_timeout": 30,
        "environment": slurm.env,
    }
    return f"c.AstroKitSpawner.slurm = {settings!r}\n{PROFILES}"


def server_jobs(slurm, hub: HubProcess, user: str) -> tuple[str, list[dict]]:
    state = hub.server(user)["state"]
    name = state["astrokit_slurm"]["job_name"]
    return name, [j for j in slurm.jobs(name) if j["state"] != "COMPLETING"]


@pytest.fixture(scope="module")
def hub(slurm, tmp_path_factory):
    hub = HubProcess(
        tmp_path_factory.mktemp("slurm-hub"),
        users=["alice", "erin"],
        config_overrides=slurm_config(slurm),
    )
    hub.start()
    try:
        yield hub
    finally:
        hub.close()
        for job in slurm.jobs():
            if job["name"].startswith("astrokit-"):
                slurm.run("scancel", job["id"], check=False)


@pytest.fixture(scope="module")
def survey(hub):
    """600 galaxies in 4 shards and a ``small`` AstroMAE checkpoint in the store's shared area
    (written by the test as the platform's seeding tools do; readable by every account)."""
    import torch

    root = Path(unquote(urlparse(hub.store_url).path)) / "shared" / "slurm-test"
    root.mkdir(parents=True, exist_ok=True)
    d = synth_galaxies(600, seed=11)
    arrays = {
        "images": np.asarray(d["images"], dtype=np.float32),
        "mags": np.asarray(d["mags"], dtype=np.float32),
        "ids": np.asarray(d["ids"]).astype(str),
        "z": np.asarray(d["z"], dtype=np.float32),
    }
    data = (root / "shards").as_uri()
    infos = [
        write_shard(f"{data}/{shard_name(i)}", {k: v[s : s + 150] for k, v in arrays.items()})
        for i, s in enumerate(range(0, 600, 150))
    ]
    Manifest(shards=infos).save(data)
    torch.manual_seed(3)
    model = AstroMAE("small")
    model.set_normalization(
        torch.from_numpy(arrays["images"]),
        torch.from_numpy(arrays["mags"]),
        torch.from_numpy(arrays["z"]),
    )
    model.eval()
    model_url = (root / "small.pt").as_uri()
    save_checkpoint(model, model_url)
    for path in [root.parent, root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return {"data": data, "model": model_url, "arrays": arrays, "torch_model": model}


def test_spawn_puts_the_workers_on_slurm(hub, slurm):
    model, events = hub.spawn_with_progress("alice", {"profile": "hpc"}, timeout=240)
    assert model["ready"]
    messages = [e.get("message", "") for e in events]
    assert any(m.startswith("Slurm jobs:") for m in messages), messages
    assert any("Dask workers 2/2" in m for m in messages), messages
    _, jobs = server_jobs(slurm, hub, "alice")
    assert len(jobs) == 2 and {j["state"] for j in jobs} == {"RUNNING"}, jobs
    # Submitted by the cluster manager, i.e. under the account the user's server runs as.
    account = notebook_process(hub, "alice").username()
    assert {j["user"] for j in jobs} == {account}, (jobs, account)
    if os.geteuid() == 0 and hasattr(hub, "account"):  # the hub gives each user an account
        assert account == hub.account("alice")
    state = hub.server("alice")["state"]["astrokit_slurm"]
    assert sorted(state["job_ids"], key=int) == sorted((j["id"] for j in jobs), key=int)


def test_dask_computation_runs_on_the_slurm_workers(hub, slurm):
    result = finish(start_as_notebook(hub, "alice", COMPUTE))
    assert result["n_workers"] == 2
    assert (result["total"], result["squares"]) == (5050, 2470)
    _, jobs = server_jobs(slurm, hub, "alice")
    assert result["jobs"] == sorted(j["id"] for j in jobs)  # each worker is one of its jobs


def test_infer_is_exact_when_slurm_cancels_a_worker_mid_run(hub, slurm, survey):
    from astrokit.models.runtime import predict_arrays

    env = notebook_process(hub, "alice").environ()
    out_url = env["ASTROKIT_USER_URL"] + "/slurm-infer"
    out_dir = Path(unquote(urlparse(out_url).path))
    proc = start_as_notebook(
        hub, "alice", INFER.format(data=survey["data"], model=survey["model"], out=out_url)
    )
    try:
        _, before = server_jobs(slurm, hub, "alice")
        wait_until(
            lambda: (
                proc.poll() is None
                and out_dir.exists()
                and len(list(out_dir.glob("pred-*.parquet"))) >= 2
            ),
            240,
            "partitions written by the run",
            0.05,
        )
        victim = sorted((j["id"] for j in before), key=int)[0]
        slurm.run("scancel", victim)  # as preemption or an operator would
        result = finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    s = result["summary"]
    assert s["complete"]
    assert (s["n_predictions"], s["missing"], s["duplicates"], s["unexpected"]) == (600, 0, 0, 0)
    ids = survey["arrays"]["ids"]
    assert sorted(result["ids"]) == sorted(ids.tolist())
    arrays = survey["arrays"]
    expected = predict_arrays(survey["torch_model"], arrays["images"], arrays["mags"])
    got = dict(zip(result["ids"], result["z"], strict=True))
    # Each row is this model's prediction; infer may pick a faster numerical path than the
    # reference loop here (its summary's "precision"), hence a tolerance above float32's.
    np.testing.assert_allclose([got[i] for i in ids], expected, rtol=1e-3, atol=1e-4)

    # The cancelled job was replaced: two running jobs again, the victim not among them.
    def replaced():
        _, jobs = server_jobs(slurm, hub, "alice")
        ids_now = {j["id"] for j in jobs}
        running = all(j["state"] == "RUNNING" for j in jobs)
        return ids_now if len(jobs) == 2 and victim not in ids_now and running else None

    wait_until(replaced, 120, "a replacement for the cancelled job")


def test_stop_leaves_no_job_of_the_server(hub, slurm):
    name, jobs = server_jobs(slurm, hub, "alice")
    assert jobs
    hub.stop_server("alice", timeout=90)
    assert slurm.jobs(name) == []  # stop() waits until squeue lists none


def test_restarted_hub_cancels_the_jobs_of_a_dead_manager(hub, slurm):
    hub.spawn("erin", {"profile": "hpc"}, timeout=240)
    name, jobs = server_jobs(slurm, hub, "erin")
    assert len(jobs) == 2
    manager = hub.spawner_state("erin")["manager"]["pid"]
    hub.stop()  # the hub goes down; servers keep running (cleanup_servers = False)
    os.killpg(manager, signal.SIGKILL)  # the cluster manager dies with no chance to scancel
    psutil.Process(manager).wait(10) if psutil.pid_exists(manager) else None
    assert len([j for j in slurm.jobs(name) if j["state"] == "RUNNING"]) == 2  # orphaned
    hub.start()  # the spawner state (job ids) comes back from the database
    wait_until(
        lambda: hub.server("erin") is None, 90, "the restarted hub to notice the dead manager"
    )
    wait_until(lambda: slurm.jobs(name) == [], 30, "the orphaned jobs to be cancelled")


def test_profile_beyond_the_partition_fails_with_slurms_reason(hub, slurm):
    with pytest.raises(SpawnFailed) as failure:
        hub.spawn("alice", {"profile": "hpc-long"}, timeout=120)  # MaxTime is 60 min
    assert "PartitionTimeLimit" in failure.value.message, failure.value.message
    assert hub.server("alice") is None
    assert [j for j in slurm.jobs() if j["user"] and "PartitionTimeLimit" in j["reason"]] == []
