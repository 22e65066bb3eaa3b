"""``astrokit infer DATA_URL --model CKPT --out OUT_URL``: distributed photo-z inference.

Runs on the cluster named by the environment (the spawner's), else on a temporary local one.
Shows a progress bar on stderr and prints the run's summary (JSON) on stdout. Exit status:
0 complete, 1 incomplete (summary written, see its ``problems``), 2 could not run.
"""

from __future__ import annotations

import argparse

from astrokit.commands.options import add_precision_argument, report_inference


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "data_url", metavar="DATA_URL", help="shard set (manifest.json) or directory of FITS"
    )
    parser.add_argument(
        "--model", default=None, help="checkpoint URL (default: $ASTROKIT_MODEL_URL)"
    )
    parser.add_argument(
        "--out", default=None, help="output directory (default: $ASTROKIT_USER_URL/inference/...)"
    )
    parser.add_argument(
        "--scheduler", default=None, help="Dask scheduler address (default: from the env)"
    )
    parser.add_argument("--partition-mb", type=float, default=25.0, help="MB per task")
    parser.add_argument("--batch-size", type=int, default=None, help="samples per forward pass")
    parser.add_argument("--device", default=None, help="cpu, cuda (default: automatic)")
    parser.add_argument(
        "--max-nan-fraction", type=float, default=None, help="input policy (default 0.05)"
    )
    add_precision_argument(
        parser,
        "auto (default, $ASTROKIT_PRECISION): bf16 where the workers' CPU/GPU has it "
        "natively and it passes the parity guard, else fp32; fp16 on CUDA only",
    )
    parser.add_argument(
        "--parity-tolerance",
        type=float,
        default=None,
        help="largest |z_reduced - z_fp32| the parity guard accepts (default 1e-3)",
    )
    parser.add_argument(
        "--parity-sample",
        type=int,
        default=None,
        help="rows of its first partition each worker predicts in both precisions (128)",
    )
    parser.add_argument("--no-resume", action="store_true", help="recompute every partition")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    from astrokit.commands.catalogue_options import add_catalogue_arguments

    add_catalogue_arguments(parser, training=False)


def run(args: argparse.Namespace) -> int:
    from astrokit.commands import catalogue_options

    if catalogue_options.wants_catalogue(args):  # a catalogue: the photometry-only model
        return catalogue_options.run_infer(args)
    from astrokit.inference import InferenceError, infer
    from astrokit.models.astromae import ConfigError
    from astrokit.models.checkpoint import CheckpointError
    from astrokit.shards import ShardError
    from astrokit.store import StoreError

    def run_on(client):
        return infer(
            args.data_url,
            model=args.model,
            out=args.out,
            client=client,
            partition_mb=args.partition_mb,
            batch_size=args.batch_size,
            device=args.device,
            max_nan_fraction=args.max_nan_fraction,
            precision=args.precision,
            parity_tolerance=args.parity_tolerance,
            parity_sample=args.parity_sample,
            resume=not args.no_resume,
            progress=not args.no_progress,
        )

    # ConfigError: a checkpoint's configuration this code cannot build (e.g. a bad value); a
    # user error like the others, so one line on stderr rather than a traceback
    errors = (InferenceError, CheckpointError, ConfigError, ShardError, StoreError)
    return report_inference("astrokit infer", args.scheduler, run_on, errors)
