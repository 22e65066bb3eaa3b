"""Catalogue options shared by ``astrokit train`` and ``astrokit infer``.

``astrokit train CATALOGUE --bands u,g,r,i,z [--errors ...] --z-column z --out CKPT`` and
``astrokit infer CATALOGUE --model CKPT [--bands ...]`` run the photometry-only model
(:mod:`astrokit.catalogue_training`, :mod:`astrokit.catalogue_inference`) when ``--bands`` is
given or the input is a catalogue file (``.parquet``, ``.csv``, ``.fits``...); otherwise the
commands behave as before. Light imports only at module level (``astrokit --help``).
"""

from __future__ import annotations

import argparse
import json
import sys

from astrokit.commands.options import report_inference

__all__ = ["add_catalogue_arguments", "run_infer", "run_train", "wants_catalogue"]


def add_catalogue_arguments(parser: argparse.ArgumentParser, *, training: bool) -> None:
    """Add the catalogue column options (and, for training, the model/early-stopping ones)."""
    group = parser.add_argument_group(
        "catalogues",
        "photometry-only photo-z on a catalogue file (parquet, CSV, FITS binary table)",
    )
    group.add_argument(
        "--bands",
        default=None,
        help="magnitude columns in wavelength order, e.g. u,g,r,i,z"
        + ("" if training else " (default: the model's)"),
    )
    group.add_argument("--errors", default=None, help="their error columns, same order")
    group.add_argument(
        "--z-column",
        default=None,
        help="spectroscopic redshift column"
        + (" (default z)" if training else " (optional; enables the metrics)"),
    )
    group.add_argument("--id-column", default=None, help="identifier (default: id, else row)")
    if training:
        group.add_argument(
            "--patience", type=int, default=None, help="early stopping patience (15)"
        )
        group.add_argument("--components", type=int, default=None, help="Gaussians in p(z) (5)")
    else:
        group.add_argument(
            "--partition-rows", type=int, default=None, help="rows per task (200000)"
        )


def wants_catalogue(args: argparse.Namespace) -> bool:
    """True when the command should run on a catalogue."""
    from astrokit.catalogue import is_catalogue

    return args.bands is not None or is_catalogue(args.data_url)


def _errors() -> tuple[type[BaseException], ...]:
    from astrokit.catalogue import CatalogueError
    from astrokit.inference import InferenceError
    from astrokit.models.checkpoint import CheckpointError
    from astrokit.models.photometry import PhotometryModelError
    from astrokit.store import StoreError
    from astrokit.training import TrainingError

    return (
        CatalogueError,
        InferenceError,
        CheckpointError,
        PhotometryModelError,
        StoreError,
        TrainingError,
    )


def run_train(args: argparse.Namespace) -> int:
    """``astrokit train CATALOGUE ...``: print the validation metrics as JSON."""
    from astrokit.catalogue_training import CATALOGUE_PRESET, train_catalogue

    if args.bands is None:
        print("astrokit train: error: a catalogue needs --bands (e.g. u,g,r,i,z)", file=sys.stderr)
        return 2
    preset = CATALOGUE_PRESET
    try:
        result = train_catalogue(
            args.data_url,
            out=args.out,
            bands=args.bands,
            errors=args.errors,
            z_column=args.z_column or "z",
            id_column=args.id_column,
            components=args.components or preset["components"],
            epochs=args.epochs or preset["epochs"],
            patience=args.patience or preset["patience"],
            batch_size=args.batch_size or preset["batch_size"],
            lr=args.lr or preset["lr"],
            val_fraction=args.val_fraction,
            seed=args.seed,
            threads=args.threads or 1,
        )
    except _errors() as exc:
        print(f"astrokit train: error: {exc}", file=sys.stderr)
        return 2
    json.dump(
        {"checkpoint": result.url, "seconds": round(result.seconds, 1), **result.metrics},
        sys.stdout,
        indent=1,
        default=float,
    )
    sys.stdout.write("\n")
    return 0


def run_infer(args: argparse.Namespace) -> int:
    """``astrokit infer CATALOGUE ...``: print the summary as JSON (exit 0 / 1 / 2)."""
    from astrokit.catalogue import DEFAULT_PARTITION_ROWS
    from astrokit.catalogue_inference import infer_catalogue

    def run_on(client):
        return infer_catalogue(
            args.data_url,
            model=args.model,
            out=args.out,
            bands=args.bands,
            errors=args.errors,
            z_column=args.z_column,
            id_column=args.id_column,
            client=client,
            partition_rows=args.partition_rows or DEFAULT_PARTITION_ROWS,
            batch_size=args.batch_size or 8192,
            resume=not args.no_resume,
            progress=not args.no_progress,
        )

    return report_inference("astrokit infer", args.scheduler, run_on, _errors())
