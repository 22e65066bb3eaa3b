"""Photo-z inference benchmark: fp32 and bf16 in process and on the cluster, against the roofline.

Prints one JSON object. The same model, the same shard set (``--samples`` galaxies written as
~25 MB shards) and the same batch size are used by every path:

* ``roofline``: this machine's fp32 and bf16 GEMM rates (2048^3 ``torch.mm``, smaller where
  a dtype is emulated and one product would take over half a second; 1 and 2
  threads), i.e. what the model could reach at best;
* ``baseline``: the plain in-process loop a user would write -- ``torch.set_num_threads(2)``,
  load the checkpoint, then for each shard ``read_shard`` + batched forward passes under
  ``torch.inference_mode``, in fp32;
* ``baseline_1thread``: the same loop on 1 thread (the reference for one 1-thread worker);
* ``baseline_auto``: the same 2-thread loop in ``precision="auto"``
  (:mod:`astrokit.models.precision`: bf16 autocast where the CPU has it natively);
* ``distributed_1w`` / ``distributed_2w``: ``astrokit.infer`` in ``auto`` (its default) on a
  ``LocalCluster`` of 1 or 2 worker processes x 1 thread, timed over the whole call
  (planning, the parity guard on each worker's first partition, tasks, writing
  ``pred-*.parquet``, the exactness check, catalogue and summary). The workers are warmed up
  first by a small run with the same checkpoint -- a user's cluster keeps the model loaded
  between runs (the cache is per worker process); the parity guard is not cached across
  runs, so the timed run pays for its own.

Each path is given as samples/s, GFLOP/s and its ratios to the fp32 baseline and to the
fp32/bf16 rooflines. Each path runs ``--repeats`` times (default 2) and keeps its best run;
each distributed run comes right after runs of its in-process references, because on a shared
host the cores' speed drifts by 10-15 % over minutes.

``parity`` measures the precision on the **trained** demo model (``benchmarks/train.py``'s,
i.e. ``make run``'s preset) over an independent 2,000-galaxy survey: ``astrokit.infer`` in
fp32 and in auto on a 2-worker cluster, the largest |z_auto - z_fp32| over every row, and
sigma_MAD under both; plus what the parity guard itself measured. ``--demo-dir DIR`` reuses a
``benchmarks/train.py --workdir DIR`` run (its ``model.pt`` and ``test-shards``); without it
the demo model is trained first (about 3 minutes on 2 quiet cores). ``--quick`` checks parity
on the untrained benchmark model instead.

Targets (issue 14): on a CPU with native bf16, ``distributed_2w`` >= 2.0x the fp32 2-thread
baseline with max |dz| <= 1e-3 on the trained demo model; without native bf16, >= 0.95x.

Usage::

    python benchmarks/infer.py            # 20,000 samples, full AstroMAE, best of 2 (~15 min)
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


def cpu_description() -> dict[str, Any]:
    """The CPU the numbers came from: lscpu's model name and the flags that matter here."""
    from astrokit.models.precision import _proc_cpu_flags, cpu_bf16_support

    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16", "avx512_fp16")
    flags = _proc_cpu_flags()
    native, evidence = cpu_bf16_support()
    return {
        "model_name": model,
        "flags": [f for f in wanted if f in flags],
        "native_bf16": native,
        "evidence": evidence,
        "cpus": os.cpu_count(),
    }


def gemm_rate(
    threads: int, dtype: str, n: int = 2048, repeats: int = 5, seconds_per_mm: float = 0.5
) -> tuple[float, int]:
    """GFLOP/s of an ``n``^3 ``torch.mm`` in ``dtype`` on ``threads`` threads (best of runs).

    Where the dtype is emulated (bf16 on a CPU without it runs at well under 1 GFLOP/s, so
    one 2048^3 product takes a minute) the matrices shrink, from a 256^3 probe, until one
    product takes about ``seconds_per_mm``; returns the rate and the ``n`` used.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        dt = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]

        def best_of(size: int, runs: int) -> float:
            a = torch.randn(size, size).to(dt)
            b = torch.randn(size, size).to(dt)
            torch.mm(a, b)
            best = float("inf")
            for _ in range(runs):
                t0 = time.perf_counter()
                torch.mm(a, b)
                best = min(best, time.perf_counter() - t0)
            return best

        probe = 256
        rate = 2 * probe**3 / best_of(probe, 1)
        fits = int((rate * seconds_per_mm / 2) ** (1 / 3)) // 128 * 128
        n = max(probe, min(n, fits))
        best = best_of(n, repeats)
    finally:
        torch.set_num_threads(before)
    return 2 * n**3 / best / 1e9, n


def baseline_loop(
    data_url: str, model_url: str, batch_size: int, threads: int, precision: str = "fp32"
) -> dict:
    """The plain in-process loop: every shard, batched forward passes, nothing else.

    ``precision="auto"`` wraps the forward passes in :func:`astrokit.models.precision.autocast`
    of the resolved choice (what a user gets from the precision module in their own loop).
    """
    import torch

    from astrokit.models.checkpoint import load_checkpoint
    from astrokit.models.precision import autocast, resolve_precision
    from astrokit.shards import Manifest, read_shard

    torch.set_num_threads(threads)
    model = load_checkpoint(model_url, device="cpu").model.eval()
    choice = resolve_precision(precision, "cpu")
    manifest = Manifest.load(data_url)
    t0 = time.perf_counter()
    n = 0
    with torch.inference_mode(), autocast(choice):
        for info in manifest.shards:
            arrays = read_shard(manifest.shard_url(info))
            images = torch.from_numpy(arrays["images"])
            mags = torch.from_numpy(arrays["mags"])
            for s in range(0, len(images), batch_size):
                z = model(images[s : s + batch_size], mags[s : s + batch_size])
                n += len(z)
    seconds = time.perf_counter() - t0
    return {
        "samples": n,
        "seconds": seconds,
        "samples_per_s": n / seconds,
        "threads": threads,
        "precision": choice.precision,
    }


def distributed_run(
    data_url: str,
    warm_url: str,
    model_url: str,
    out_dir: Path,
    workers: int,
    batch_size: int,
    partition_mb: float,
    repeats: int = 1,
    references: dict[str, Callable[[], dict]] | None = None,
    precision: str = "auto",
) -> tuple[dict, dict[str, list[dict]]]:
    """``astrokit.infer`` on a warm ``workers`` x 1-thread cluster, ``repeats`` timed runs.

    ``references`` (in-process loops by name) run right before each timed run, while the
    workers idle, so that each group sees the same machine: on a shared host the speed of
    both cores drifts by 10-15 % over minutes. Returns the best run and the references' runs.
    """
    from distributed import Client

    from astrokit.cluster import local_cluster
    from astrokit.inference import infer

    ref_runs: dict[str, list[dict]] = {name: [] for name in references or {}}
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
                precision=precision,
                progress=False,
                resume=False,
            )
            return time.perf_counter() - t0, result

        cold, _ = timed_infer(warm_url, f"warm-{workers}")
        runs = []
        for r in range(repeats):
            for name, reference in (references or {}).items():
                ref_runs[name].append(reference())
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
        "precision": s["precision"],
        "cold_s": cold,
        "all_seconds": [round(t, 2) for t, _ in runs],
    }, ref_runs


def parity_on(model_url: str, data_url: str, out_dir: Path, what: str) -> dict:
    """``astrokit.infer`` in fp32 and in auto on a 2-worker cluster; compare every row."""
    from distributed import Client

    from astrokit.cluster import local_cluster
    from astrokit.inference import infer
    from astrokit.metrics import photoz_metrics

    with (
        local_cluster(2, 1, dashboard_address=None, worker_dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        runs = {
            precision: infer(
                data_url,
                model=model_url,
                out=(out_dir / f"parity-{precision}").as_uri(),
                client=client,
                precision=precision,
                progress=False,
                resume=False,
            )
            for precision in ("fp32", "auto")
        }
    cats = {p: r.to_pandas().sort_values(["source", "row"]) for p, r in runs.items()}
    z32 = cats["fp32"]["z_pred"].to_numpy(np.float64)
    zau = cats["auto"]["z_pred"].to_numpy(np.float64)
    z_true = cats["fp32"]["z_true"].to_numpy(np.float64)
    ok = np.isfinite(z32) & np.isfinite(zau)
    dz = np.abs(zau[ok] - z32[ok])
    known = ok & np.isfinite(z_true)
    return {
        "model": what,
        "rows": int(ok.sum()),
        "precision": runs["auto"].summary["precision"],
        "max_abs_dz": float(dz.max()) if dz.size else 0.0,
        "median_abs_dz": float(np.median(dz)) if dz.size else 0.0,
        "sigma_mad_fp32": photoz_metrics(z32[known], z_true[known])["sigma_mad"],
        "sigma_mad_auto": photoz_metrics(zau[known], z_true[known])["sigma_mad"],
        "n_labelled": int(known.sum()),
    }


def demo_model(work: Path, demo_dir: str | None) -> tuple[str, str, str]:
    """The trained demo model and its independent test shards: reused, or trained now."""
    import importlib.util

    if demo_dir is None:
        demo_dir = str(work / "demo")
        spec = importlib.util.spec_from_file_location("train_bench", REPO / "benchmarks/train.py")
        train_bench = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(train_bench)
        train_bench.main(["--workdir", demo_dir, "--precisions", "fp32"])
        what = "demo preset trained in this run (benchmarks/train.py)"
    else:
        what = f"demo preset trained by benchmarks/train.py --workdir {demo_dir}"
    root = Path(demo_dir).resolve()
    for needed in ("model.pt", "test-shards"):
        if not (root / needed).exists():
            raise SystemExit(f"--demo-dir {demo_dir}: no {needed} (run benchmarks/train.py "
                             f"--workdir {demo_dir} first)")  # fmt: skip
    return (root / "model.pt").as_uri(), (root / "test-shards").as_uri(), what


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
    parser.add_argument(
        "--demo-dir",
        default=None,
        help="a benchmarks/train.py --workdir directory (model.pt, test-shards) for the parity "
        "check on the trained demo model (default: train one first)",
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
    cpu = cpu_description()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="astrokit-bench-infer-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        roofline = {}
        for dtype in ("fp32", "bf16"):
            for threads in (1, args.threads):
                rate, n = gemm_rate(threads, dtype)
                roofline[f"{dtype}_{threads}thread_gflop_per_s"] = rate
                roofline[f"{dtype}_{threads}thread_gemm_n"] = n
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
        # distributed run right after its in-process references: the 2-thread loops (fp32,
        # auto) for the 2-worker cluster; the 1-thread fp32 loop -- the fair reference for
        # one 1-thread worker -- for the 1-worker cluster.
        def reference(threads: int, precision: str = "fp32") -> Callable[[], dict]:
            return lambda: baseline_loop(data_url, model_url, args.batch_size, threads, precision)

        two, refs_2 = distributed_run(
            data_url, warm_url, model_url, work, 2, args.batch_size, partition_mb, repeats,
            {"fp32": reference(args.threads), "auto": reference(args.threads, "auto")},
        )  # fmt: skip
        one, refs_1 = distributed_run(
            data_url, warm_url, model_url, work, 1, args.batch_size, partition_mb, repeats,
            {"fp32": reference(1)},
        )  # fmt: skip
        base, base_auto, base_1t = (
            best_of(refs_2["fp32"]),
            best_of(refs_2["auto"]),
            best_of(refs_1["fp32"]),
        )
        if args.quick:
            parity = parity_on(model_url, data_url, work, "untrained benchmark model (--quick)")
        else:
            demo_url, demo_data, what = demo_model(work, args.demo_dir)
            parity = parity_on(demo_url, demo_data, work, what)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)

    fp32_roof = {1: roofline["fp32_1thread_gflop_per_s"]}
    bf16_roof = {1: roofline["bf16_1thread_gflop_per_s"]}
    fp32_roof[args.threads] = roofline[f"fp32_{args.threads}thread_gflop_per_s"]
    bf16_roof[args.threads] = roofline[f"bf16_{args.threads}thread_gflop_per_s"]
    paths = {
        "baseline": (base, args.threads),
        "baseline_1thread": (base_1t, 1),
        "baseline_auto": (base_auto, args.threads),
        "distributed_1w": (one, 1),
        "distributed_2w": (two, 2),
    }
    for entry, threads in paths.values():
        entry["gflop_per_s"] = entry["samples_per_s"] * flops / 1e9
        entry["ratio_to_baseline"] = entry["samples_per_s"] / base["samples_per_s"]
        entry["ratio_to_fp32_roofline"] = entry["gflop_per_s"] / fp32_roof[threads]
        entry["ratio_to_bf16_roofline"] = entry["gflop_per_s"] / bf16_roof[threads]
    ratio_2w = two["samples_per_s"] / base["samples_per_s"]
    scaling = two["samples_per_s"] / one["samples_per_s"]
    native = cpu["native_bf16"]
    ratio_target = 2.0 if native else 0.95
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
        "cpu": cpu,
        "roofline": {
            **roofline,
            "fp32_samples_per_s": fp32_roof[args.threads] * 1e9 / flops,
            "bf16_samples_per_s": bf16_roof[args.threads] * 1e9 / flops,
        },
        "baseline": base,
        "baseline_1thread": base_1t,
        "baseline_auto": base_auto,
        "distributed_1w": one,
        "distributed_2w": two,
        "ratio_auto_loop_to_baseline": base_auto["samples_per_s"] / base["samples_per_s"],
        "ratio_1w_to_baseline_1thread": one["samples_per_s"] / base_1t["samples_per_s"],
        "ratio_2w_to_baseline": ratio_2w,
        "scaling_1w_to_2w": scaling,
        "parity": parity,
        "targets": {
            "ratio_target": ratio_target,
            "2w_auto_meets_ratio_target": ratio_2w >= ratio_target,
            "parity_max_abs_dz_at_most_1e-3": parity["max_abs_dz"] <= 1e-3,
        },
        "torch": torch.__version__,
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
    }
    json.dump(report, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
