"""Active-learning benchmark: label efficiency of entropy and BALD against random sampling.

Builds (or opens) a labelled pool — by default 20,000 synthetic spectra of controlled
difficulty (:mod:`astrokit.active.synthetic`: emission-line objects a minority as in Škoda et
al. 2020, a tail of faint features), or ``--source survey`` for the platform's synthetic
survey generator — and runs the
simulated-oracle experiment (:func:`astrokit.active.experiment.simulate`) for entropy, BALD
and random sampling over several seeds on a local Dask cluster. Prints one JSON object:

* ``label_efficiency``: labels each strategy needs to reach the accuracy random sampling has
  at its last iteration, and the ratio to random's labels (target ≤ 0.65: ≥ 35 % fewer
  labels, the low end of Walmsley et al. 2020);
* ``targets``: per strategy ``{"ratio", "reached_random_accuracy", "meets_target"}`` (a
  strategy that never reaches random's accuracy has ratio null and does not meet it), and
  ``meets_target``: every compared strategy meets it;
* ``scoring``: wall time of one iteration's pool scoring (entropy and BALD) with 1 and 2
  workers;
* the learning curves (mean ± std over seeds) and the machine's load.

The default pool's features have S/N 6 to 40 (log-uniform). With the generator's own default,
3 to 40, a quarter of the objects carry features at the detection limit that no number of
labels settles: every strategy, random included, plateaus at ~0.855 accuracy within ~500
labels, and the ratio then measures noise in the third decimal, not label efficiency
(``--snr 3 40`` reproduces it).

Usage::

    python benchmarks/active.py            # full: 20,000 spectra, 3 seeds
    python benchmarks/active.py --quick    # smoke run, a minute or two
    python benchmarks/active.py --pool file:///path/to/labelled/pool
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--pool", default=None, help="use this labelled pool instead")
    parser.add_argument(
        "--source",
        choices=("lines", "survey"),
        default="lines",
        help="generator of the synthetic pool: astrokit.active.synthetic (lines, default) "
        "or astrokit.survey.synth_spectra (survey)",
    )
    parser.add_argument("--n", type=int, default=None, help="synthetic pool size (20000)")
    parser.add_argument("--pixels", type=int, default=None, help="log-grid length (512)")
    parser.add_argument(
        "--snr",
        type=float,
        nargs=2,
        default=(6.0, 40.0),
        metavar=("LOW", "HIGH"),
        help="feature S/N range of the line-spectra pool (6 40; see the module docstring)",
    )
    parser.add_argument("--seeds", type=int, default=None, help="repetitions (3)")
    parser.add_argument("--iterations", type=int, default=None, help="incl. the seed (10)")
    parser.add_argument("--batch", type=int, default=None, help="queries per iteration (100)")
    parser.add_argument("--heldout", type=int, default=None, help="held-out size (2000)")
    parser.add_argument("--strategies", default="entropy,bald", help="compared to random")
    parser.add_argument("--rows-per-shard", type=int, default=None, help="(2500)")
    parser.add_argument("--workers", type=int, default=2, help="workers for the experiment")
    parser.add_argument(
        "--selection",
        choices=("power", "top"),
        default="power",
        help="batch selection: power acquisition (default) or the top scores",
    )
    parser.add_argument("--beta", type=float, default=1.0, help="power-draw exponent (1)")
    parser.add_argument("--train-threads", type=int, default=1, help="torch threads, client")
    parser.add_argument("--work", default=None, help="store directory (default: a temp dir)")
    args = parser.parse_args(argv)
    quick = {
        "n": 1200,
        "pixels": 256,
        "seeds": 1,
        "iterations": 3,
        "batch": 40,
        "heldout": 300,
        "rows_per_shard": 300,
    }
    full = {
        "n": 20_000,
        "pixels": 512,
        "seeds": 3,
        "iterations": 10,
        "batch": 100,
        "heldout": 2000,
        "rows_per_shard": 2500,
    }
    for key, value in (quick if args.quick else full).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


#: Labels a strategy may need, as a fraction of random's, to reach random's final accuracy
#: (≥ 35 % fewer labels, the low end of Walmsley et al. 2020).
TARGET_RATIO = 0.65


def target_check(ratio: float | None) -> dict:
    """The target as explicit booleans; ``ratio`` is None when the strategy never reached
    random's final accuracy -- that misses the target, it is not an error."""
    reached = ratio is not None
    return {
        "ratio": ratio,
        "reached_random_accuracy": reached,
        "meets_target": reached and ratio <= TARGET_RATIO,
    }


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover - not on Linux
        return []


def time_scoring(pool, model, n_workers: int, strategies: list[str], repeats: int = 3) -> dict:
    """Seconds for one scoring pass of ``pool`` per strategy on a fresh n-worker cluster."""
    import numpy as np
    from distributed import Client

    from astrokit.active.scoring import score_pool
    from astrokit.cluster import local_cluster

    out = {}
    with (
        local_cluster(n_workers, 1) as cluster,
        Client(cluster) as client,
    ):
        client.wait_for_workers(n_workers, timeout=120)
        for strategy in strategies:
            times = []
            for r in range(repeats):
                result = score_pool(
                    client,
                    pool,
                    model,
                    strategy,
                    k=100,
                    exclude=np.empty(0, np.int64),
                    iteration=90 + r,
                    token=f"bench-{n_workers}",
                )
                times.append(result.seconds)
            # the first pass on fresh workers also imports torch there: report the best pass
            # (steady state, what every later iteration pays) and all of them
            out[strategy] = {"seconds": round(min(times), 3), "all": [round(t, 3) for t in times]}
    return out


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    logging.getLogger("astrokit").setLevel(logging.INFO)

    from astrokit.active.experiment import simulate
    from astrokit.active.models import default_model
    from astrokit.active.pool import LogGrid, Pool, build_pool_from_synthetic
    from astrokit.active.synthetic import build_pool_from_line_spectra
    from astrokit.cluster import client_or_local

    started = time.perf_counter()
    work = args.work or f"file://{tempfile.mkdtemp(prefix='astrokit-al-bench-')}"
    load_before = load_average()
    t0 = time.perf_counter()
    if args.pool:
        pool = Pool.load(args.pool)
        build_seconds = 0.0
    else:
        build = (
            build_pool_from_line_spectra if args.source == "lines" else build_pool_from_synthetic
        )
        extra = {"snr_range": tuple(args.snr)} if args.source == "lines" else {}
        pool = build(
            f"{work}/pool",
            args.n,
            seed=2020,
            grid=LogGrid(n=args.pixels),
            rows_per_shard=args.rows_per_shard,
            **extra,
        )
        build_seconds = time.perf_counter() - t0
    class_counts: dict[str, int] = {}
    for i in range(len(pool.shards)):
        for label in pool.read_shard(i, ("labels",))["labels"].tolist():
            class_counts[label] = class_counts.get(label, 0) + 1

    def factory(n_classes: int, seed: int):
        return default_model(n_classes, seed=seed, num_threads=args.train_threads)

    strategies = [s for s in args.strategies.split(",") if s]
    with client_or_local(None, n_workers=args.workers) as client:
        result = simulate(
            pool,
            f"{work}/runs",
            strategies=strategies,
            seeds=range(args.seeds),
            iterations=args.iterations,
            batch_size=args.batch,
            heldout=args.heldout,
            model_factory=factory,
            selection=args.selection,
            beta=args.beta,
            client=client,
        )
    summary = result.to_dict()

    # scoring wall time with 1 and 2 workers, with a model trained as in the experiment
    model = factory(len(pool.classes), 0)
    import numpy as np

    x = pool.get_rows(np.arange(min(500, pool.total_rows)), keys=("flux", "labels"))
    y = np.array([pool.classes.index(c) for c in x["labels"]])
    model.fit(x["flux"], y)
    scoring = {f"{n}_workers": time_scoring(pool, model, n, ["entropy", "bald"]) for n in (1, 2)}
    for strategy in ("entropy", "bald"):
        one = scoring["1_workers"][strategy]["seconds"]
        two = scoring["2_workers"][strategy]["seconds"]
        scoring[f"speedup_{strategy}"] = round(one / two, 2) if two else None

    eff = summary["label_efficiency"]
    ratios = {name: e["ratio"] for name, e in eff["strategies"].items()}
    targets = {name: target_check(ratio) for name, ratio in ratios.items()}
    return {
        "benchmark": "active-learning label efficiency",
        "quick": args.quick,
        "pool": {
            "url": pool.url,
            "builder": pool.meta.get("builder"),
            "snr_range": pool.meta.get("snr_range"),
            "n": pool.total_rows,
            "shards": len(pool.shards),
            "pixels": pool.grid.n,
            "classes": class_counts,
            "build_seconds": round(build_seconds, 1),
        },
        "config": {
            "strategies": summary["strategies"],
            "seeds": args.seeds,
            "iterations": args.iterations,
            "batch": args.batch,
            "heldout": args.heldout,
            "workers": args.workers,
            "selection": args.selection,
            "beta": args.beta,
            "model": "SpectraCNN (default)",
        },
        "label_efficiency": eff,
        "ratios": ratios,
        "target_ratio": TARGET_RATIO,
        "targets": targets,
        "meets_target": bool(targets) and all(t["meets_target"] for t in targets.values()),
        "curves": summary["curves"],
        "scoring": scoring,
        "experiment_seconds": summary["seconds"],
        "total_seconds": round(time.perf_counter() - started, 1),
        "load_average": {"before": load_before, "after": load_average()},
        "cpu_count": os.cpu_count(),
    }


if __name__ == "__main__":
    json.dump(main(), sys.stdout, indent=1)
    sys.stdout.write("\n")
