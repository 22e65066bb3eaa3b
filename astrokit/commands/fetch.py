"""``astrokit fetch sdss --sql QUERY | --ra RA --dec DEC [--radius 2] --out URL``.

Queries SDSS through astroquery (SkyServer for catalogues, SAS for FITS files) and writes the
catalogue, spectra and optionally imaging frames into the store; prints a JSON report.
``--skyserver-url`` / ``--sas-url`` point at a mirror. Exit status: 0 all fetched, 1 some
files failed (listed in the report), 2 the query failed.
"""

from __future__ import annotations

import argparse
import json
import sys


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="fetch_source", metavar="SOURCE", required=True)
    sdss = sub.add_parser("sdss", help="SDSS spectra and images via astroquery")
    where = sdss.add_mutually_exclusive_group(required=True)
    where.add_argument("--sql", help="SkyServer SQL (must return plate, mjd, fiberID, run2d)")
    where.add_argument("--ra", type=float, help="cone centre RA in degrees (with --dec)")
    sdss.add_argument("--dec", type=float, help="cone centre Dec in degrees")
    sdss.add_argument("--radius", type=float, default=2.0, help="cone radius, arcsec")
    sdss.add_argument("--out", required=True, help="destination URL (your own prefix)")
    sdss.add_argument("--images", action="store_true", help="also fetch imaging frames")
    sdss.add_argument("--no-spectra", action="store_true", help="catalogue (and images) only")
    sdss.add_argument("--bands", default="ugriz", help="imaging bands (default ugriz)")
    sdss.add_argument("--data-release", type=int, default=17)
    sdss.add_argument("--limit", type=int, default=None, help="use at most this many rows")
    sdss.add_argument("--skyserver-url", default=None, help="SkyServer base URL override")
    sdss.add_argument("--sas-url", default=None, help="SAS base URL override")


def run(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from astrokit.fetch import FetchError, fetch_sdss
    from astrokit.store import StoreError

    coordinates = None
    if args.ra is not None:
        if args.dec is None:
            print("astrokit fetch sdss: --ra needs --dec", file=sys.stderr)
            return 2
        from astropy import units as u
        from astropy.coordinates import SkyCoord

        coordinates = SkyCoord(args.ra * u.deg, args.dec * u.deg)
    try:
        report = fetch_sdss(
            args.out,
            sql=args.sql,
            coordinates=coordinates,
            radius=args.radius,
            spectra=not args.no_spectra,
            images=args.images,
            bands=args.bands,
            data_release=args.data_release,
            limit=args.limit,
            skyserver_url=args.skyserver_url,
            sas_url=args.sas_url,
        )
    except (FetchError, StoreError) as exc:
        print(f"astrokit fetch sdss: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(asdict(report)))
    return 1 if report.failed else 0
