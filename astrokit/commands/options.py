"""What several ``astrokit`` commands share: option definitions and the inference report.

One definition of each option more than one command takes (``--precision``), and one
:func:`report_inference`, the run-and-report step of ``astrokit infer`` on shards and on
catalogues, so that the commands cannot drift apart. Light imports only at module level
(``astrokit --help``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["add_precision_argument", "report_inference"]


def add_precision_argument(parser: argparse.ArgumentParser, help: str) -> None:
    """``--precision {auto,fp32,bf16,fp16}`` (default None: ``$ASTROKIT_PRECISION``, else the
    command's own); ``help`` says what computes in it and what the command's default is."""
    from astrokit.models.precision import PRECISIONS

    parser.add_argument("--precision", choices=PRECISIONS, default=None, help=help)


def report_inference(
    command: str,
    scheduler: str | None,
    run: Callable[[Any], Any],
    errors: tuple[type[BaseException], ...],
) -> int:
    """Call ``run(client)`` and print the result's summary on stdout as JSON.

    ``client`` is a ``distributed.Client`` of ``scheduler`` when one is given, else None (the
    run then finds the cluster itself). Returns the exit status: 0 complete, 1 incomplete
    (the summary is printed all the same, the reason goes to stderr), 2 could not run (an
    error of ``errors``, told in one line on stderr instead of a traceback).
    """
    from astrokit.inference import IncompleteResultError

    client = None
    if scheduler:
        from distributed import Client

        client = Client(scheduler)
    try:
        result = run(client)
        status = 0
    except IncompleteResultError as exc:
        print(f"{command}: {exc}", file=sys.stderr)
        result, status = exc.result, 1
    except errors as exc:
        print(f"{command}: error: {exc}", file=sys.stderr)
        return 2
    finally:
        if client is not None:
            client.close()
    json.dump(result.summary, sys.stdout, indent=1, default=float)
    sys.stdout.write("\n")
    return status
