"""``astrokit ingest SRC_URL DST_URL --partition-mb 25``: FITS cutouts -> shards.

Runs one task per shard on the cluster named by the environment (the spawner's) or by
``--scheduler``, else on a temporary local one. Prints the report (JSON) on stdout. Bad files
are skipped and listed in the report; a re-run resumes. Exit status: 0 all files ingested,
1 done but some files were bad (see the report), 2 could not run.
"""

from __future__ import annotations

import argparse
import sys


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("src_url", metavar="SRC_URL", help="prefix holding *.fits cutouts")
    parser.add_argument("dst_url", metavar="DST_URL", help="destination shard-set directory")
    parser.add_argument("--partition-mb", type=float, default=25.0, help="MB per shard")
    parser.add_argument(
        "--scheduler", default=None, help="Dask scheduler address (default: from the env)"
    )
    parser.add_argument(
        "--size", type=int, default=32, help="required cutout side in pixels (default 32)"
    )
    parser.add_argument(
        "--max-nan-fraction", type=float, default=0.25, help="reject cutouts with more NaNs"
    )


def run(args: argparse.Namespace) -> int:
    from astrokit.ingest import IngestError, ingest
    from astrokit.shards import ShardError
    from astrokit.store import StoreError

    client = None
    if args.scheduler:
        from distributed import Client

        client = Client(args.scheduler)
    try:
        report = ingest(
            args.src_url,
            args.dst_url,
            partition_mb=args.partition_mb,
            client=client,
            shape=(args.size, args.size),
            max_nan_fraction=args.max_nan_fraction,
        )
    except (IngestError, StoreError, ShardError, ValueError) as exc:
        print(f"astrokit ingest: {exc}", file=sys.stderr)
        return 2
    finally:
        if client is not None:
            client.close()
    print(report.to_json())
    return 1 if report.bad else 0
