"""The ``astrokit`` command line.

Each subcommand lives in its own module under :mod:`astrokit.commands` with two functions,
``configure(parser)`` and ``run(args) -> int``. Command modules must import only light
dependencies at module level (heavy ones such as torch inside ``run``), so that
``astrokit --help`` is quick and works in the hub's environment.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

# subcommand -> (module, one-line help). Order is the order shown by --help.
COMMANDS: dict[str, tuple[str, str]] = {
    "survey": ("astrokit.commands.survey", "make a synthetic survey in the store"),
    "ingest": ("astrokit.commands.ingest", "turn FITS cutouts into ~25 MB shards"),
    "fetch": ("astrokit.commands.fetch", "fetch real survey data (SDSS) into the store"),
    "train": ("astrokit.commands.train", "train or fine-tune the photo-z model"),
    "infer": ("astrokit.commands.infer", "distributed photo-z inference over shards"),
    "al": ("astrokit.commands.al", "active-learning experiments"),
    "platform": ("astrokit.commands.platform", "prepare the embedded platform (store, model)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="astrokit", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue  # command not built yet in this checkout
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        module.configure(sub_parser)
        sub_parser.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
