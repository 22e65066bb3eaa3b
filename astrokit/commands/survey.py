"""``astrokit survey make --galaxies N --spectra M --out URL --seed S``: a synthetic survey.

Writes FITS cutouts, FITS spectra and parquet catalogues into the store (see
:mod:`astrokit.survey` for how they are made) and prints a JSON summary on stdout.
Exit status: 0 written, 2 could not write (bad URL, read-only area, store error).
"""

from __future__ import annotations

import argparse
import json
import sys


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="survey_command", metavar="ACTION", required=True)
    make = sub.add_parser("make", help="write a synthetic survey", description=__doc__)
    make.add_argument("--galaxies", type=int, default=1000, help="number of cutouts")
    make.add_argument("--spectra", type=int, default=500, help="number of spectra")
    make.add_argument("--out", required=True, help="destination URL (file:// or s3://)")
    make.add_argument("--seed", type=int, default=0, help="random seed (deterministic output)")
    make.add_argument(
        "--per-band-every",
        type=int,
        default=0,
        help="write every k-th cutout as one HDU per band instead of a cube (default: never)",
    )


def run(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from astrokit.store import StoreError
    from astrokit.survey import make_survey

    if args.galaxies < 0 or args.spectra < 0:
        print("astrokit survey make: --galaxies and --spectra must be >= 0", file=sys.stderr)
        return 2
    try:
        summary = make_survey(
            args.out,
            galaxies=args.galaxies,
            spectra=args.spectra,
            seed=args.seed,
            per_band_every=args.per_band_every,
        )
    except StoreError as exc:
        print(f"astrokit survey make: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(asdict(summary), default=str))
    return 0
