"""Photo-z inference benchmark: in-process torch loop vs the distributed path (1 and 2 workers).

Prints one JSON object. The same model, the same shard set (``--samples`` galaxies written as
~25 MB shards) and the same batch size are used by every path:

* ``baseline``: the plain in-process loop a user would write -- ``torch.set_num_threads(2)``,
  load the checkpoint, then for each shard ``read_shard`` + batched forward passes under
  ``torch.inference_mode``;
* ``baseline_1thread``: the same loop on 1 thread (the reference for one 1-thread worker);
* ``distributed_1w`` / ``distributed_2w``: ``astrokit.infer`` on a ``LocalCluster`` of 1 or 2
  worker processes x 1 thread, timed over the whole call (planning, tasks, writing
  ``pred-*.parquet``, the exactness check, catalogue and summary). The workers are warmed up
  first by a small run with the same checkpoint -- a user's cluster keeps the model loaded
  between runs (the cache is per worker process), so the timed run is the steady state; the
  warm-up's time is reported too (``cold_s``).

Each path runs ``--repeats`` times (default 2) and keeps its best run; each distributed run
comes right after a run of its in-process reference (2 threads for 2 workers, 1 thread for 1
worker), because on a shared host the cores' speed drifts by 10-15 % over minutes.

Also reported: the model's FLOPs per sample (``torch.utils.flop_counter``), the achieved
GFLOP/s, ratios to the baseline, the 1 -> 2 worker scaling, and the load average before and
after (the machine may be shared).

Usage::

    python benchmarks/infer.py            # 20,000 samples, full AstroMAE, best of 2 (~10 min)
    python benchmarks/infer.py --quick    # 512 samples, tiny model: smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO))


def make_data(n: int, seed: int) -> dict[str, np.ndarray]:
    """``n`` synthetic galaxies from the data layer's generator.

    Throughput does not depend on the pixel values; where ``astrokit.survey`` is not installed
    yet, Gaussian blobs on noise of the same shapes and dtypes stand in.
    """
    try:
        from astrokit.survey import synth_galaxies
    except ImportError:
        rng = np.random.default_rng(seed)
        yy, xx = np.mgrid[:32, :32] - 15.5
        blob = np.exp(-(xx**2 + yy**2) / 18.0).astype(np.float32)
        z = rng.uniform(0.02, 0.6, n).astype(np.float32)
        images = rng.normal(0, 0.5, (n, 5, 32, 32)).astype(np.float32)
        images += rng.uniform(5, 50, (n, 5)).astype(np.float32)[:, :, None, None] * blob
        mags = rng.uniform(16, 22, (n, 5)).astype(np.float32)
        return {
            "images": images,
            "mags": mags,
            "ids": np.array([f"b{i}" for i in range(n)]),
            "z": z,
        }

    d = synth_galaxies(n, seed=seed)
    return {
        "images": np.asarray(d["images"], dtype=np.float32),
        "mags": np.asarray(d["mags"], dtype=np.float32),
        "ids": np.asarray(d["ids"]).astype(str),
        "z": np.asarray(d["z"], dtype=np.float32),
    }


def write_shards(url: str, arrays: dict[str, np.ndarray], partition_mb: float) -> int:
    from astrokit.shards import Manifest, rows_per_shard, shard_name, write_shard

    per = rows_per_shard(partition_mb)
    n = len(arrays["ids"])
    infos = [
        write_shard(f"{url}/{shard_name(i)}", {k: v[s : s + per] for k, v in arrays.items()})
        for i, s in enumerate(range(0, n, per))
    ]
    Manifest(shards=infos, meta={"benchmark": True}).save(url)
    return len(infos)


def baseline_loop(data_url: str, model_url: str, batch_size: int, threads: int) -> dict:
    """The plain in-process loop: every shard, batched forward passes, nothing else."""
    import torch

    from astrokit.models.checkpoint import load_checkpoint
    from astrokit.shards import Manifest, read_shard

    torch.set_num_threads(threads)
    model = load_checkpoint(model_url, device="cpu").model.eval()
    manifest = Manifest.load(data_url)
    t0 = time.perf_counter()
    n = 0
    with torch.inference_mode():
        for info in manifest.shards:
            arrays = read_shard(manifest.shard_url(info))
            images = torch.from_numpy(arrays["images"])
            mags = torch.from_numpy(arrays["mags"])
            for s in range(0, len(images), batch_size):
                z = model(images[s : s + batch_size], mags[s : s + batch_size])
                n += len(z)
    seconds = time.perf_counter() - t0
    return {"samples": n, "seconds": seconds, "samples_per_s": n / seconds, "threads": threads}


def distributed_run(
    data_url: str,
    warm_url: str,
    model_url: str,
    out_dir: Path,
    workers: int,
    batch_size: int,
    partition_mb: float,
    repeats: int = 1,
    reference: Callable[[], dict] | None = None,
) -> tuple[dict, list[dict]]:
    """``astrokit.infer`` on a warm ``workers`` x 1-thread cluster, ``repeats`` timed runs.

    When ``reference`` is given (an in-process loop), it runs right before each timed run,
    while the workers idle, so that each pair sees the same machine: on a shared host the
    speed of both cores drifts by 10-15 % over minutes. Returns the best run and the
    reference's runs.
    """
    from distributed import Client

    from astrokit.cluster import local_cluster
    from astrokit.inference import infer

    references: list[dict] = []
    with (
        # the platform's cluster settings (astrokit.cluster.WORKER_DASK_CONFIG), as the
        # spawner's cluster manager uses them
        local_cluster(workers, 1, dashboard_address=None, worker_dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):

        def timed_infer(url: str, out_name: str) -> tuple[float, Any]:
            t0 = time.perf_counter()
            result = infer(
                url,
                model=model_url,
                out=(out_dir / out_name).as_uri(),
                client=client,
                batch_size=batch_size,
                partition_mb=partition_mb,
                progress=False,
                resume=False,
            )
            return time.perf_counter() - t0, result

        cold, _ = timed_infer(warm_url, f"warm-{workers}")
        runs = []
        for r in range(repeats):
            if reference is not None:
                references.append(reference())
            runs.append(timed_infer(data_url, f"run-{workers}-{r}"))
    seconds, result = min(runs, key=lambda run: run[0])
    s = result.summary
    if not s["complete"]:
        raise RuntimeError(f"benchmark run incomplete: {s['problems']}")
    return {
        "workers": workers,
        "threads_per_worker": 1,
        "samples": s["n_predictions"],
        "seconds": seconds,
        "samples_per_s": s["n_predictions"] / seconds,
        "compute_phase_samples_per_s": s["samples_per_second"],
        "partitions": s["partitions"],
        "exact": s["missing"] == 0 and s["duplicates"] == 0,
        "cold_s": cold,
        "all_seconds": [round(t, 2) for t, _ in runs],
    }, references


def best_of(runs: list[dict]) -> dict:
    """The fastest of the reference loop's runs, with all their times."""
    best = dict(max(runs, key=lambda run: run["samples_per_s"]))
    best["all_seconds"] = [round(run["seconds"], 2) for run in runs]
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--samples", type=int, default=None, help="default 20000 (quick: 512)")
    parser.add_argument(
        "--config", default=None, help="model config (default astromae; quick: tiny)"
    )
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--partition-mb", type=float, default=None, help="default 25 (quick: 1)")
    parser.add_argument("--threads", type=int, default=2, help="baseline torch threads")
    parser.add_argument("--workdir", default=None, help="where to write data (default: tmp)")
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="timed runs per path, best kept (default 2; quick: 1): the machine may be shared",
    )
    args = parser.parse_args(argv)

    import torch

    from astrokit.models.astromae import AstroMAE, count_flops, count_parameters
    from astrokit.models.checkpoint import save_checkpoint

    samples = args.samples or (512 if args.quick else 20000)
    config = args.config or ("tiny" if args.quick else "astromae")
    partition_mb = args.partition_mb or (1.0 if args.quick else 25.0)
    repeats = args.repeats or (1 if args.quick else 2)
    load_before = os.getloadavg()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="astrokit-bench-infer-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        arrays = make_data(samples, seed=11)
        data_url = (work / "shards").as_uri()
        n_shards = write_shards(data_url, arrays, partition_mb)
        warm = {k: v[:64] for k, v in arrays.items()}
        warm_url = (work / "warm").as_uri()
        write_shards(warm_url, warm, partition_mb)
        prep_s = time.perf_counter() - t0

        # throughput does not depend on the weights: an untrained model with fitted inputs
        torch.manual_seed(0)
        model = AstroMAE(config)
        sample = slice(0, min(samples, 2000))
        model.set_normalization(
            torch.from_numpy(arrays["images"][sample]),
            torch.from_numpy(arrays["mags"][sample]),
            torch.from_numpy(arrays["z"][sample]),
        )
        model_url = (work / "model.pt").as_uri()
        save_checkpoint(model.eval(), model_url)
        flops = count_flops(model)
        del arrays

        # Every path is timed `repeats` times and its best run kept (as timeit does), each
        # distributed run right after its in-process reference: the 2-thread loop for the
        # 2-worker cluster; the same loop on 1 thread -- the fair reference for one 1-thread
        # worker -- for the 1-worker cluster.
        def reference(threads: int) -> Callable[[], dict]:
            return lambda: baseline_loop(data_url, model_url, args.batch_size, threads)

        two, base_runs = distributed_run(
            data_url, warm_url, model_url, work, 2, args.batch_size, partition_mb, repeats,
            reference(args.threads),
        )  # fmt: skip
        one, base_1t_runs = distributed_run(
            data_url, warm_url, model_url, work, 1, args.batch_size, partition_mb, repeats,
            reference(1),
        )  # fmt: skip
        base, base_1t = best_of(base_runs), best_of(base_1t_runs)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)

    def gflops(rate: float) -> float:
        return rate * flops / 1e9

    for entry in (base, base_1t, one, two):
        entry["gflop_per_s"] = gflops(entry["samples_per_s"])
    ratio_2w = two["samples_per_s"] / base["samples_per_s"]
    scaling = two["samples_per_s"] / one["samples_per_s"]
    report = {
        "benchmark": "infer",
        "quick": args.quick,
        "config": config,
        "parameters": count_parameters(model),
        "flops_per_sample": flops,
        "samples": samples,
        "batch_size": args.batch_size,
        "partition_mb": partition_mb,
        "repeats": repeats,
        "shards": n_shards,
        "prepare_s": prep_s,
        "baseline": base,
        "baseline_1thread": base_1t,
        "distributed_1w": one,
        "distributed_2w": two,
        "ratio_1w_to_baseline": one["samples_per_s"] / base["samples_per_s"],
        "ratio_1w_to_baseline_1thread": one["samples_per_s"] / base_1t["samples_per_s"],
        "ratio_2w_to_baseline": ratio_2w,
        "scaling_1w_to_2w": scaling,
        "targets": {
            "2w_within_5pct_of_baseline": ratio_2w >= 0.95,
            "scaling_at_least_1.8x": scaling >= 1.8,
        },
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
    }
    json.dump(report, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
