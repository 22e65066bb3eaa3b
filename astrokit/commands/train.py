"""``astrokit train SHARDS_URL --out CKPT_URL``: train or fine-tune the photo-z model.

Prints one JSON object (validation metrics next to the predict-the-mean baseline's) on stdout;
per-epoch progress goes to the log (stderr).
"""

from __future__ import annotations

import argparse
import json
import sys

from astrokit.commands.options import add_precision_argument


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data_url", metavar="SHARDS_URL", help="shard set to train on")
    parser.add_argument("--out", required=True, metavar="CKPT_URL", help="checkpoint to write")
    parser.add_argument(
        "--config",
        default=None,
        help="model configuration: small (default for a new model), astromae, tiny",
    )
    parser.add_argument("--init", metavar="CKPT_URL", help="fine-tune from this checkpoint")
    parser.add_argument("--epochs", type=int, default=None, help="default: the demo preset's")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--lr", type=float, default=None, help="peak learning rate")
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: automatic)")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: one per core)"
    )
    add_precision_argument(
        parser,
        "what the training steps compute in: fp32 (default, $ASTROKIT_PRECISION), "
        "bf16, auto (bf16 where the device has it natively) or fp16 (CUDA)",
    )
    parser.add_argument(
        "--max-nan-fraction", type=float, default=None, help="input policy (default 0.05)"
    )

    from astrokit.commands.catalogue_options import add_catalogue_arguments

    add_catalogue_arguments(parser, training=True)


def run(args: argparse.Namespace) -> int:
    from astrokit.commands import catalogue_options

    if catalogue_options.wants_catalogue(args):  # a catalogue: the photometry-only model
        return catalogue_options.run_train(args)
    from astrokit.models.astromae import ConfigError
    from astrokit.models.checkpoint import CheckpointError
    from astrokit.shards import ShardError
    from astrokit.store import StoreError
    from astrokit.training import DEMO_PRESET, TrainingError, train

    config = args.config if args.config is not None else (None if args.init else "small")
    try:
        result = train(
            args.data_url,
            out=args.out,
            config=config,
            init=args.init,
            epochs=args.epochs or DEMO_PRESET["epochs"],
            batch_size=args.batch_size or DEMO_PRESET["batch_size"],
            lr=args.lr or DEMO_PRESET["lr"],
            val_fraction=args.val_fraction,
            max_nan_fraction=args.max_nan_fraction,
            seed=args.seed,
            device=args.device,
            threads=args.threads,
            precision=args.precision,
        )
    except (TrainingError, CheckpointError, ConfigError, ShardError, StoreError) as exc:
        print(f"astrokit train: error: {exc}", file=sys.stderr)
        return 2
    json.dump(
        {
            "checkpoint": result.url,
            "seconds": round(result.seconds, 1),
            "precision": result.precision,
            **result.metrics,
        },
        sys.stdout,
        indent=1,
    )
    sys.stdout.write("\n")
    return 0
