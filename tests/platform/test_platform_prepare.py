"""`astrokit platform prepare`: its layout, the copy of real example spectra, seeding, freeze."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from astrokit.commands.platform import (
    SHARED_DIR_MODE,
    _freeze_shared,
    _thaw_shared,
    copy_examples,
    prepare,
    store_layout,
)
from astrokit.shards import Manifest
from astrokit.store import ReadOnlyAreaError, open_store


def test_store_layout_is_under_the_run_dir(tmp_path):
    layout = store_layout(tmp_path / "run")
    root = (tmp_path / "run" / "store").resolve()
    assert layout["store_url"] == root.as_uri()
    assert layout["shared_url"] == (root / "shared").as_uri()
    assert layout["shards_url"] == (root / "shared" / "survey" / "shards").as_uri()
    assert layout["model_url"] == (root / "shared" / "models" / "photoz-small.pt").as_uri()
    assert layout["examples_url"] == (root / "shared" / "examples").as_uri()
    assert layout["users_url"] == (root / "users").as_uri()


def test_copy_examples_copies_real_spectra_once(tmp_path, lamost_files):
    dest = tmp_path / "examples"
    missing = tmp_path / "no-such-dir"
    n = copy_examples(dest, [lamost_files["lrs"].parent, missing])
    names = {p.name for p in dest.iterdir()}
    assert lamost_files["lrs"].name in names and lamost_files["mrs"].name in names
    # the packaged SDSS/BOSS/DESI files come along when their packages are installed (test extra)
    assert "spPlate-4055-55359-0020.fits" in names
    assert n == len(names)
    assert not any(name.startswith(".tmp-") for name in names)
    # a second run copies nothing new and leaves the files as they are
    before = {p.name: p.stat().st_mtime_ns for p in dest.iterdir()}
    assert copy_examples(dest, [lamost_files["lrs"].parent]) == n
    assert {p.name: p.stat().st_mtime_ns for p in dest.iterdir()} == before
    assert (dest / lamost_files["lrs"].name).read_bytes() == Path(lamost_files["lrs"]).read_bytes()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _assert_frozen(shared: Path) -> int:
    """Every directory under ``shared`` is 0o555 and no file has a write bit; returns #files."""
    files = 0
    for dirpath, _dirnames, filenames in os.walk(shared):
        assert _mode(Path(dirpath)) == SHARED_DIR_MODE, dirpath
        for name in filenames:
            assert _mode(Path(dirpath) / name) & 0o222 == 0, name
            files += 1
    return files


def test_prepare_seeds_through_its_own_store_and_freezes_shared(
    tmp_path, monkeypatch, lamost_files
):
    run = tmp_path / "run"
    layout = store_layout(run)
    # A spawner-style environment, whose store refuses writes under shared/: the seeding must
    # not depend on it (it used to go through whatever store resolve() found).
    monkeypatch.setenv("ASTROKIT_STORE_URL", layout["store_url"])
    monkeypatch.setenv("ASTROKIT_SHARED_URL", layout["shared_url"])
    monkeypatch.setenv("ASTROKIT_USER_URL", layout["users_url"] + "/ada")
    prepare(run, galaxies=6, spectra=2, seed=3, train_model=False)

    shared = Path(layout["shared_url"].removeprefix("file://"))
    assert (shared / "survey" / "catalog.parquet").exists()
    assert len(list((shared / "survey" / "cutouts").iterdir())) == 6
    assert Manifest.load(layout["shards_url"]).total_rows == 6
    # Tests run as root, which the bits do not stop; what is checked is that they are set.
    n_files = _assert_frozen(shared)
    assert n_files > 6
    assert _mode(Path(layout["users_url"].removeprefix("file://"))) & 0o200  # users/ stays open
    # and the library refuses shared/ for everyone else, whatever the bits
    with pytest.raises(ReadOnlyAreaError):
        open_store().write_bytes(layout["survey_url"] + "/mine.fits", b"x")

    # idempotent: a second run adds only what is new (here the LAMOST examples) and re-freezes
    before = (shared / "survey" / "catalog.parquet").stat().st_mtime_ns
    prepare(run, galaxies=6, spectra=2, seed=3, train_model=False,
            examples=[lamost_files["lrs"].parent])  # fmt: skip
    assert (shared / "survey" / "catalog.parquet").stat().st_mtime_ns == before
    assert (shared / "examples" / lamost_files["mrs"].name).exists()
    assert _assert_frozen(shared) == n_files + 2


def test_freeze_and_thaw_modes(tmp_path):
    shared = tmp_path / "shared"
    (shared / "a" / "b").mkdir(parents=True)
    (shared / "a" / "b" / "f.fits").write_bytes(b"x")
    (shared / "a" / "b" / "f.fits").chmod(0o664)
    _freeze_shared(shared)
    _assert_frozen(shared)
    assert _mode(shared / "a" / "b" / "f.fits") == 0o444
    _thaw_shared(shared)
    assert {_mode(d) for d in (shared, shared / "a", shared / "a" / "b")} == {0o755}
    assert _mode(shared / "a" / "b" / "f.fits") == 0o444  # files are replaced, not rewritten
