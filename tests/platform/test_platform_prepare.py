"""`astrokit platform prepare`'s pure layout and the copy of real example spectra."""

from __future__ import annotations

from pathlib import Path

from astrokit.commands.platform import copy_examples, store_layout


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
