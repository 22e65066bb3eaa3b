"""``astrokit al``: active-learning experiments and pools.

``astrokit al simulate POOL_URL --strategy entropy --batch 100 --iterations N --seeds 3 --json``
runs the simulated-oracle experiment (each strategy and random sampling, several seeds) and
prints the learning curves and the label efficiency.
``astrokit al pool OUT_URL --synthetic N`` builds a labelled pool of synthetic spectra.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from astrokit.commands.options import add_precision_argument

log = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``al`` subcommands."""
    sub = parser.add_subparsers(dest="al_command", metavar="ACTION", required=True)

    sim = sub.add_parser("simulate", help="strategies vs random with known labels")
    sim.add_argument("pool", metavar="POOL_URL", help="a pool with known labels")
    sim.add_argument(
        "--strategy",
        action="append",
        default=None,
        help="entropy, margin, least_confidence, bald or random; repeat or comma-separate "
        "to compare several (default entropy); random always runs as the baseline",
    )
    sim.add_argument("--batch", type=int, default=100, help="queries per iteration (100)")
    sim.add_argument("--seed-size", type=int, default=None, help="random seed set (= batch)")
    sim.add_argument("--iterations", type=int, default=10, help="iterations incl. the seed one")
    sim.add_argument("--seeds", type=int, default=3, help="repetitions with seeds 0..N-1 (3)")
    sim.add_argument(
        "--heldout", default="1000", help="held-out size drawn from the pool, or a pool URL"
    )
    sim.add_argument("--mc-samples", type=int, default=10, help="MC-dropout passes for BALD")
    sim.add_argument(
        "--selection",
        choices=("power", "top"),
        default="power",
        help="pick each batch by a draw with probability ~ score**beta (power, default) or "
        "take the top scores (top)",
    )
    sim.add_argument("--beta", type=float, default=1.0, help="power-draw exponent (1)")
    sim.add_argument(
        "--state", default=None, help="where loops checkpoint (default POOL_URL/../al-runs)"
    )
    sim.add_argument("--plot", default=None, help="write the learning-curve PNG here")
    sim.add_argument("--json", action="store_true", help="print the full result as JSON")
    sim.add_argument("--workers", type=int, default=2, help="local cluster size when none is set")
    add_precision_argument(
        sim,
        "what pool scoring computes in: fp32 (default, $ASTROKIT_PRECISION), bf16, auto "
        "(bf16 where the workers have it natively and it passes the parity guard), fp16 (CUDA)",
    )
    sim.add_argument(
        "--train-threads",
        type=int,
        default=1,
        help="torch threads for retraining in this process (1: the cluster's workers have "
        "the other cores; more threads on a busy machine make training slower, not faster)",
    )

    build = sub.add_parser("pool", help="build a labelled pool of synthetic spectra")
    build.add_argument("out", metavar="OUT_URL", help="pool directory to write")
    build.add_argument("--synthetic", type=int, required=True, help="number of spectra")
    build.add_argument(
        "--source",
        choices=("lines", "survey"),
        default="lines",
        help="astrokit.active.synthetic line spectra (default) or the survey generator",
    )
    build.add_argument("--seed", type=int, default=0)
    build.add_argument("--pixels", type=int, default=1024, help="log-grid length (1024)")
    build.add_argument("--rows-per-shard", type=int, default=None)


def _strategies(values: list[str] | None) -> list[str]:
    from astrokit.active.strategies import get_strategy

    names = []
    for value in values or ["entropy"]:
        names += [get_strategy(v).name for v in value.split(",") if v.strip()]
    return list(dict.fromkeys(names))


def _simulate(args: argparse.Namespace) -> int:
    from astrokit.active.experiment import plot_learning_curves, simulate
    from astrokit.active.models import default_model
    from astrokit.active.pool import Pool
    from astrokit.cluster import client_or_local

    pool = Pool.load(args.pool)
    heldout: int | str = int(args.heldout) if args.heldout.isdigit() else args.heldout
    state = args.state or f"{pool.url.rsplit('/', 1)[0]}/al-runs"
    with client_or_local(None, n_workers=args.workers) as client:
        result = simulate(
            pool,
            state,
            strategies=_strategies(args.strategy),
            seeds=range(args.seeds),
            iterations=args.iterations,
            batch_size=args.batch,
            seed_size=args.seed_size,
            heldout=heldout,
            mc_samples=args.mc_samples,
            selection=args.selection,
            beta=args.beta,
            model_factory=lambda n_classes, seed: default_model(
                n_classes, seed=seed, num_threads=args.train_threads, precision=args.precision
            ),
            client=client,
        )
    summary = result.to_dict()
    if args.plot:
        fig = plot_learning_curves(result)
        fig.savefig(args.plot, dpi=120)
        summary["plot"] = args.plot
    if args.json:
        json.dump(summary, sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0
    eff = summary["label_efficiency"]
    for name, curve in summary["curves"].items():
        points = ", ".join(
            f"{n:.0f}:{m:.3f}±{s:.3f}"
            for n, m, s in zip(curve["n_labelled"], curve["mean"], curve["std"], strict=True)
        )
        sys.stdout.write(f"{name:>16}  {points}\n")
    if eff:
        sys.stdout.write(
            f"target accuracy {eff['target']:.3f} (random, {eff['baseline_labels']:.0f} labels)\n"
        )
        for name, e in eff["strategies"].items():
            ratio = (
                "not reached"
                if e["ratio"] is None
                else f"{e['labels']:.0f} labels, ratio {e['ratio']:.2f}"
            )
            sys.stdout.write(f"{name:>16}  {ratio}\n")
    return 0


def _pool(args: argparse.Namespace) -> int:
    from astrokit.active.pool import LogGrid, build_pool_from_synthetic
    from astrokit.active.synthetic import build_pool_from_line_spectra

    build = build_pool_from_line_spectra if args.source == "lines" else build_pool_from_synthetic
    pool = build(
        args.out,
        args.synthetic,
        seed=args.seed,
        grid=LogGrid(n=args.pixels),
        rows_per_shard=args.rows_per_shard or 2500,
    )
    sys.stdout.write(f"{pool.url}: {pool.total_rows} spectra in {len(pool.shards)} shards\n")
    return 0


def run(args: argparse.Namespace) -> int:
    """Dispatch ``astrokit al ACTION``; errors become a one-line message and exit code 2."""
    from astrokit.active import CheckpointError, LoopConfigError, PoolError, UnknownStrategyError

    try:
        if args.al_command == "simulate":
            return _simulate(args)
        return _pool(args)
    except (PoolError, LoopConfigError, CheckpointError, UnknownStrategyError) as exc:
        log.error("%s", exc)
        sys.stderr.write(f"astrokit al: {exc}\n")
        return 2
