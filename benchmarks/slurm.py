"""The Slurm backend: spawn latency with Slurm workers, and infer on Slurm vs local workers.

Starts a real one-node Slurm on 127.0.0.1 (munged, slurmctld, slurmd; as ``tests/slurm``
does, so it must run as root with Debian's Slurm installed: ``make test`` or ``make slurm``)
and a real JupyterHub whose ``hpc`` profile puts 2 one-thread Dask workers on Slurm and
whose ``local`` profile starts the same 2 workers as local processes. Then

1. spawn latency: REST spawn request -> ready (notebook answering *and* both Slurm workers
   connected, i.e. two ``sbatch`` jobs scheduled, started and joined), N times, stopping
   the server in between, each followed by the same spawn with local workers;
2. throughput: ``astrokit.infer`` of the same shard set with the same AstroMAE checkpoint,
   from each server's notebook environment (its account, its ``astrokit.connect()``),
   one warm-up run each, then timed runs alternating local and Slurm (best of ``repeats``
   each: the shared host's speed drifts by 10-15 % over minutes). The ratio is Slurm
   samples/s over local samples/s (target >= 0.9).

Prints one JSON object (with the load average before and after). Usage::

    .venv/bin/python benchmarks/slurm.py            # 3 spawns, 4000 samples, best of 2
    .venv/bin/python benchmarks/slurm.py --quick    # 1 spawn, 256 samples, tiny model
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "benchmarks"))

from helpers.hub import HubProcess  # noqa: E402  (the test helpers launch hub and Slurm)
from helpers.slurm import LocalSlurm, finish, notebook_process, start_as_notebook  # noqa: E402
from infer import make_data, write_shards  # noqa: E402

PROFILES = """
c.AstroKitSpawner.profiles = [
    {{"name": "local", "notebook_cpu": 1, "notebook_memory": "2G", "n_workers": 2,
     "threads_per_worker": 1, "worker_memory": "2G"}},
    {{"name": "hpc", "backend": "slurm", "walltime": "01:00:00", "notebook_cpu": 1,
     "notebook_memory": "2G", "n_workers": 2, "threads_per_worker": 1, "worker_memory": "2G"}},
]
c.AstroKitSpawner.slurm = {settings!r}
"""

# Runs in the server's notebook environment: time infer() alone (not imports or connect).
RUN = """
import json, time, astrokit
client = astrokit.connect(timeout=120)
client.wait_for_workers(2, timeout=120)
t0 = time.perf_counter()
result = astrokit.infer({data!r}, model={model!r}, out={out!r}, partition_mb={mb!r},
                        batch_size=256, progress=False, resume=False)
seconds = time.perf_counter() - t0
s = result.summary
print(json.dumps({{"seconds": seconds, "samples": s["n_predictions"],
                  "exact": bool(s["complete"] and s["missing"] == 0 and s["duplicates"] == 0),
                  "workers": len(client.scheduler_info(n_workers=-1)["workers"])}}))
"""


def timed_spawn(hub: HubProcess, user: str, profile: str) -> float:
    t0 = time.perf_counter()
    hub.spawn(user, {"profile": profile}, timeout=300)
    return time.perf_counter() - t0


def run_infer(hub: HubProcess, user: str, data: str, model: str, mb: float, tag: str) -> dict:
    user_url = notebook_process(hub, user).environ()["ASTROKIT_USER_URL"]
    code = RUN.format(data=data, model=model, out=f"{user_url}/bench-{tag}", mb=mb)
    result = finish(start_as_notebook(hub, user, code), timeout=1200)
    result["samples_per_s"] = result["samples"] / result["seconds"]
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--spawns", type=int, default=None, help="default 3 (quick: 1)")
    parser.add_argument("--samples", type=int, default=None, help="default 4000 (quick: 256)")
    parser.add_argument("--config", default=None, help="AstroMAE preset (default astromae)")
    parser.add_argument("--partition-mb", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=None, help="default 2 (quick: 1)")
    parser.add_argument(
        "--no-cgroup-limits",
        action="store_true",
        help="run servers without cgroup limits (enforce_limits = False): local workers then "
        "compete for the CPUs on the same terms as the Slurm jobs, which run outside them",
    )
    args = parser.parse_args(argv)
    spawns = args.spawns or (1 if args.quick else 3)
    samples = args.samples or (256 if args.quick else 4000)
    config = args.config or ("tiny" if args.quick else "astromae")
    repeats = args.repeats or (1 if args.quick else 2)

    import torch

    from astrokit.models.astromae import AstroMAE
    from astrokit.models.checkpoint import save_checkpoint

    load_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="astrokit-bench-slurm-"))
    work.chmod(0o755)
    slurm = LocalSlurm(work / "slurm")
    hub = None
    try:
        t0 = time.perf_counter()
        slurm.start()
        slurm_up_s = time.perf_counter() - t0
        settings = {
            "partition": slurm.partition,
            "scheduler_host": "127.0.0.1",
            "environment": slurm.env,
            "pending_timeout": 120,
        }
        hub = HubProcess(
            work / "hub",
            users=["bench", "benchlocal"],
            config_overrides=PROFILES.format(settings=settings)
            + ("c.AstroKitSpawner.enforce_limits = False\n" if args.no_cgroup_limits else ""),
        )
        hub.start()

        # 1. spawn latency with Slurm workers, alternating with the same profile on local
        # workers (the reference on this machine at this moment)
        spawn_s: list[float] = []
        local_spawn_s: list[float] = []
        for i in range(spawns):
            spawn_s.append(timed_spawn(hub, "bench", "hpc"))
            local_spawn_s.append(timed_spawn(hub, "benchlocal", "local"))
            if i < spawns - 1:
                hub.stop_server("bench", timeout=120)
                hub.stop_server("benchlocal", timeout=120)
        jobs = slurm.jobs(hub.server("bench")["state"]["astrokit_slurm"]["job_name"])

        # 2. the same inference on 2 local and on 2 Slurm workers
        shared = Path(unquote(urlparse(hub.store_url).path)) / "shared" / "bench-slurm"
        shared.mkdir(parents=True, exist_ok=True)
        arrays = make_data(samples, seed=5)
        data = (shared / "shards").as_uri()
        n_shards = write_shards(data, arrays, args.partition_mb)
        warm = (shared / "warm").as_uri()
        write_shards(warm, {k: v[:64] for k, v in arrays.items()}, args.partition_mb)
        torch.manual_seed(0)
        model = AstroMAE(config)
        model.set_normalization(
            torch.from_numpy(arrays["images"][:2000]),
            torch.from_numpy(arrays["mags"][:2000]),
            torch.from_numpy(arrays["z"][:2000]),
        )
        model_url = (shared / "model.pt").as_uri()
        save_checkpoint(model.eval(), model_url)
        del arrays
        for path in [shared.parent, shared, *shared.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)

        users = {"local": "benchlocal", "slurm": "bench"}
        for kind, user in users.items():  # warm-up: model loaded once per worker
            run_infer(hub, user, warm, model_url, args.partition_mb, f"warm-{kind}")
        runs: dict[str, list[dict]] = {"local": [], "slurm": []}
        for r in range(repeats):
            for kind, user in users.items():
                runs[kind].append(
                    run_infer(hub, user, data, model_url, args.partition_mb, f"{kind}-{r}")
                )
        best = {k: max(v, key=lambda run: run["samples_per_s"]) for k, v in runs.items()}
        ratio = best["slurm"]["samples_per_s"] / best["local"]["samples_per_s"]
        result = {
            "benchmark": "slurm",
            "slurm_version": slurm.run("sinfo", "--version").stdout.strip(),
            "slurm_node": {"cpus": slurm.cpus, "oversubscribe": "FORCE:4"},
            "slurm_daemons_up_s": round(slurm_up_s, 2),
            # As root the hub puts each server's processes (local workers included) in cgroups
            # with an equal CPU weight per account; Slurm's jobs run outside them (slurmd's).
            "cgroup_limits": not args.no_cgroup_limits,
            "spawn_to_ready_s": {
                "profile": "hpc (2 Slurm workers x 1 thread, 2 GiB each)",
                "runs": [round(t, 2) for t in spawn_s],
                "median": round(statistics.median(spawn_s), 2),
                "max": round(max(spawn_s), 2),
                "jobs_at_ready": jobs,
                "local_workers_same_profile": {
                    "runs": [round(t, 2) for t in local_spawn_s],
                    "median": round(statistics.median(local_spawn_s), 2),
                },
            },
            "infer": {
                "model": config,
                "samples": samples,
                "shards": n_shards,
                "partition_mb": args.partition_mb,
                "local_2_workers": {
                    "best_samples_per_s": round(best["local"]["samples_per_s"], 1),
                    "all_seconds": [round(run["seconds"], 2) for run in runs["local"]],
                },
                "slurm_2_workers": {
                    "best_samples_per_s": round(best["slurm"]["samples_per_s"], 1),
                    "all_seconds": [round(run["seconds"], 2) for run in runs["slurm"]],
                },
                "slurm_over_local": round(ratio, 3),
                "target": 0.9,
                "meets_target": ratio >= 0.9,
                "exact": all(run["exact"] for v in runs.values() for run in v),
            },
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
            "cpus": os.cpu_count(),
        }
    finally:
        if hub is not None:
            hub.close()
        slurm.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
