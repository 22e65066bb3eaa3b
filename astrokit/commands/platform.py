"""``astrokit platform prepare``: everything the embedded default needs before the hub starts.

(And ``astrokit platform stop``: end the user servers of a run directory, ``make stop``.)

Idempotent, so ``make run`` can call it every time: it creates the local object store layout
(``shared/`` read-only survey area, ``users/``), seeds ``shared/survey`` with a synthetic survey
and its shards if that area is empty, and trains the demo photo-z model if none exists.
Each step is skipped when its output is already complete.

The seeding writes go through a store opened with ``allow_shared_writes=True`` -- the one
place that may write under ``shared/`` -- so they do not depend on the store that
``ASTROKIT_STORE_URL`` / ``ASTROKIT_SHARED_URL`` (the spawner's view, which refuses shared/)
would give. When done, ``shared/`` is made read-only on disk too: directories 0o555, files
without write bits.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import shutil
import time
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger("astrokit.platform")

# Sizes of the embedded default's survey: big enough to make the notebooks meaningful
# (thousands of cutouts, a few hundred MB at most), small enough to make in a couple of minutes.
DEFAULT_GALAXIES = 6000
DEFAULT_SPECTRA = 3000
#: The photometric catalogue seeded next to the survey (``shared/survey/photometry.parquet``).
PHOTOMETRY_CATALOGUE = "photometry.parquet"
CATALOGUE_ROWS = 50_000


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="platform_command", metavar="ACTION", required=True)
    prep = sub.add_parser("prepare", help="create the local store, seed a survey, train a model")
    prep.add_argument("--run-dir", default=".run", help="state directory (default: .run)")
    prep.add_argument("--galaxies", type=int, default=DEFAULT_GALAXIES)
    prep.add_argument("--spectra", type=int, default=DEFAULT_SPECTRA)
    prep.add_argument("--seed", type=int, default=42)
    prep.add_argument(
        "--skip-model", action="store_true", help="do not train the demo photo-z model"
    )
    prep.add_argument(
        "--examples",
        action="append",
        default=[],
        metavar="DIR",
        help="directory of real spectra to copy into shared/examples (repeatable; "
        "missing directories are skipped)",
    )
    prep.add_argument(
        "--tutorials",
        metavar="DIR",
        help="folder of teaching notebooks (*.ipynb) published in shared/tutorials, from where "
        "the spawner copies them into each user's home (astrokit-tutorials/)",
    )
    stop = sub.add_parser(
        "stop",
        help="end every user server of a run directory (they outlive the hub process, so "
        "stopping `make run` leaves them running)",
    )
    stop.add_argument("--run-dir", default=".run", help="state directory (default: .run)")


# Real spectra that permissively licensed PyPI packages ship (DESIGN.md §4): when those packages
# are installed, `prepare` puts copies into shared/examples so the notebooks show real data.
PACKAGED_EXAMPLES = [
    ("pydl", "pydlspec2d/tests/t/spPlate-4055-55359-0020.fits"),
    ("linetools", "spectra/tests/files/SDSSJ220248.31+123656.3.fits"),
    ("specutils", "io/default_loaders/tests/desi_test_data/coadd-sv3-dark-26065.fits"),
]


def store_layout(run_dir: Path) -> dict[str, str]:
    """URLs of the embedded store's areas under ``run_dir`` (pure; no I/O)."""
    root = (run_dir / "store").resolve()
    return {
        "store_url": root.as_uri(),
        "shared_url": (root / "shared").as_uri(),
        "survey_url": (root / "shared" / "survey").as_uri(),
        "shards_url": (root / "shared" / "survey" / "shards").as_uri(),
        "models_url": (root / "shared" / "models").as_uri(),
        "examples_url": (root / "shared" / "examples").as_uri(),
        "tutorials_url": (root / "shared" / "tutorials").as_uri(),
        "model_url": (root / "shared" / "models" / "photoz-small.pt").as_uri(),
        "users_url": (root / "users").as_uri(),
    }


def _path(url: str) -> Path:
    return Path(url.removeprefix("file://"))


def prepare(
    run_dir: Path,
    *,
    galaxies: int = DEFAULT_GALAXIES,
    spectra: int = DEFAULT_SPECTRA,
    seed: int = 42,
    train_model: bool = True,
    examples: Iterable[Path] = (),
    tutorials: Path | None = None,
) -> dict[str, str]:
    """Create and seed the embedded store under ``run_dir``; return its URLs.

    Parameters
    ----------
    run_dir
        The platform's state directory (``.run`` for ``make run``).
    galaxies, spectra, seed
        Size and seed of the synthetic survey written when ``shared/survey`` is empty.
    train_model
        Train the demo photo-z model when ``shared/models/photoz-small.pt`` is missing.
    examples
        Directories of real spectra (e.g. ``tests/data/lamost``) copied, with the real
        spectra that installed PyPI packages ship, into ``shared/examples``.
    tutorials
        Folder of teaching notebooks published in ``shared/tutorials`` (changed ones
        replaced), which the spawner copies into each user's home.
    """
    from astrokit.store import open_store

    layout = store_layout(run_dir)
    shared = _path(layout["shared_url"])
    # A previous run left shared/ read-only on disk; new content (a survey after a wipe, the
    # model, examples) needs its directories writable until the freeze below.
    _thaw_shared(shared)
    try:
        for key in ("shared_url", "users_url", "models_url"):
            _path(layout[key]).mkdir(parents=True, exist_ok=True)
        # users/<name>/ belong to their owners (0700, made by the spawner); users/ itself can
        # be passed through but not listed, so nobody learns who else has an area.
        _path(layout["users_url"]).chmod(0o711)
        # Explicit, so that a spawner-style environment (whose store refuses shared/) cannot
        # change where or whether the seed is written.
        store = open_store(
            layout["store_url"], shared_url=layout["shared_url"], allow_shared_writes=True
        )
        _seed(store, layout, galaxies=galaxies, spectra=spectra, seed=seed)
        _train_and_copy(store, layout, train_model=train_model, examples=examples)
        if tutorials is not None:
            n = publish_tutorials(Path(tutorials), _path(layout["tutorials_url"]))
            log.info("%d tutorials in %s", n, _path(layout["tutorials_url"]))
    finally:
        # The shared survey area is read-only for users: the library refuses writes under
        # shared/, and on the embedded default's file:// store the mode bits say so as well.
        _freeze_shared(shared)
    return layout


def _seed(store, layout: dict[str, str], *, galaxies: int, spectra: int, seed: int) -> None:
    survey_dir = _path(layout["survey_url"])
    if not (survey_dir / "catalog.parquet").exists():
        from astrokit.survey import make_survey

        log.info("seeding %s with %d galaxies and %d spectra", survey_dir, galaxies, spectra)
        t0 = time.perf_counter()
        make_survey(
            layout["survey_url"], galaxies=galaxies, spectra=spectra, seed=seed, store=store
        )
        log.info("survey written in %.1f s", time.perf_counter() - t0)
    else:
        log.info("survey already present in %s", survey_dir)

    if not (_path(layout["shards_url"]) / "manifest.json").exists():
        from astrokit.ingest import ingest

        log.info("ingesting cutouts into shards at %s", layout["shards_url"])
        ingest(layout["survey_url"] + "/cutouts", layout["shards_url"], store=store)

    # A photometric catalogue of the same galaxy population, with realistic magnitude errors,
    # for catalogue photo-z (notebook 05, `astrokit train/infer CATALOGUE --bands ...`).
    catalogue = _path(layout["survey_url"]) / PHOTOMETRY_CATALOGUE
    if not catalogue.exists():
        from astrokit.survey_catalogue import synth_photometry, write_catalogue

        log.info("writing a %d-row photometric catalogue to %s", CATALOGUE_ROWS, catalogue)
        write_catalogue(
            f"{layout['survey_url']}/{PHOTOMETRY_CATALOGUE}",
            synth_photometry(CATALOGUE_ROWS, seed),
            store=store,
            row_group_size=10_000,
        )


def _train_and_copy(
    store, layout: dict[str, str], *, train_model: bool, examples: Iterable[Path]
) -> None:
    model_path = _path(layout["model_url"])
    if train_model and not model_path.exists():
        from astrokit.training import train_demo_model

        log.info("training the demo photo-z model (a few minutes on 2 cores)")
        result = train_demo_model(layout["shards_url"], out=layout["model_url"], store=store)
        log.info("demo model metrics: %s", json.dumps(result.metrics, default=float))
    elif model_path.exists():
        log.info("demo model already present at %s", model_path)

    n_examples = copy_examples(_path(layout["examples_url"]), examples)
    log.info("%d real example spectra in %s", n_examples, _path(layout["examples_url"]))


def _packaged_example_files() -> list[Path]:
    found = []
    for package, rel in PACKAGED_EXAMPLES:
        spec = importlib.util.find_spec(package)
        if spec is not None and spec.origin is not None:
            path = Path(spec.origin).parent / rel
            if path.is_file():
                found.append(path)
    return found


def copy_examples(dest: Path, sources: Iterable[Path]) -> int:
    """Copy real spectra into ``dest`` (skipping ones already there); return how many are there.

    Each copy goes to a temporary name first and is renamed, so a reader never sees half a file.
    """
    files = [f for d in sources if Path(d).is_dir() for f in sorted(Path(d).iterdir())]
    files = [f for f in files if f.is_file() and ".fits" in f.name] + _packaged_example_files()
    dest.mkdir(parents=True, exist_ok=True)
    for src in files:
        target = dest / src.name
        if target.exists():
            continue
        tmp = dest / f".tmp-{src.name}"
        shutil.copyfile(src, tmp)
        os.replace(tmp, target)
    return sum(1 for f in dest.iterdir() if not f.name.startswith("."))


def publish_tutorials(source: Path, dest: Path) -> int:
    """Copy ``source/*.ipynb`` into ``dest`` (world-readable), replacing changed ones atomically.

    Raises
    ------
    FileNotFoundError
        If ``source`` holds no notebook (a wrong path would otherwise publish nothing quietly).
    """
    notebooks = sorted(Path(source).glob("*.ipynb"))
    if not notebooks:
        raise FileNotFoundError(f"{source}: no teaching notebooks (*.ipynb) to publish")
    dest.mkdir(parents=True, exist_ok=True)
    for src in notebooks:
        target = dest / src.name
        data = src.read_bytes()
        if target.exists() and target.read_bytes() == data:
            continue
        tmp = dest / f".tmp-{src.name}"
        tmp.write_bytes(data)
        tmp.chmod(0o644)
        os.replace(tmp, target)
    return len(notebooks)


#: Mode of every directory under shared/ once frozen: anyone may list and enter, nobody write.
SHARED_DIR_MODE = 0o555


def _freeze_shared(shared: Path) -> None:
    """Drop the write bits under ``shared``: directories 0o555, files read-only.

    Read-only files alone would not do: a writable directory still lets anyone create, rename
    over or delete its files. Root ignores the bits (as the library's ReadOnlyAreaError does
    not), but the notebook servers of a multi-user deployment do not run as root.
    """
    if not shared.is_dir():
        return
    for dirpath, _dirnames, filenames in os.walk(shared):
        for name in filenames:
            p = Path(dirpath) / name
            p.chmod(p.stat().st_mode & ~0o222)
        Path(dirpath).chmod(SHARED_DIR_MODE)


def _thaw_shared(shared: Path) -> None:
    """Give the owner write access to the directories under ``shared`` (undo the freeze)."""
    if not shared.is_dir():
        return
    for dirpath, _dirnames, _filenames in os.walk(shared):
        p = Path(dirpath)
        p.chmod(p.stat().st_mode | 0o700)


def run(args: argparse.Namespace) -> int:
    if args.platform_command == "prepare":
        # The set-up output is our steps: the local clusters that ingest and train use log
        # their start, every connection and their shutdown (with a stray CommClosedError
        # traceback when a worker's stream closes first) at INFO. Warnings and errors stay.
        # The variable reaches the worker processes, which configure logging at import.
        os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
        logging.getLogger("distributed").setLevel(logging.WARNING)
        layout = prepare(
            Path(args.run_dir),
            galaxies=args.galaxies,
            spectra=args.spectra,
            seed=args.seed,
            train_model=not args.skip_model,
            examples=[Path(d) for d in args.examples],
            tutorials=Path(args.tutorials) if args.tutorials else None,
        )
        for key, url in layout.items():
            log.info("%-11s %s", key, url)
        return 0
    if args.platform_command == "stop":
        import asyncio

        from astrokit_spawner.teardown import stop_all_servers

        stopped = asyncio.run(stop_all_servers(Path(args.run_dir)))
        print(f"stopped {len(stopped)} server(s){': ' if stopped else ''}{', '.join(stopped)}")
        return 0
    raise AssertionError(f"unhandled action {args.platform_command!r}")  # argparse forbids it
