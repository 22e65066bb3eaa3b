"""The ``astrokit survey`` and ``astrokit ingest`` commands end to end (real local cluster)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from astrokit.cli import main
from astrokit.formats import read_cutout, read_spectrum
from astrokit.shards import Manifest


def _tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` by relative path, with its bytes."""
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _make(tmp_path: Path, name: str, seed: int, capsys) -> tuple[Path, dict]:
    argv = ["survey", "make", "--galaxies", "6", "--spectra", "3", "--per-band-every", "3",
            "--out", f"file://{tmp_path / name}", "--seed", str(seed)]  # fmt: skip
    assert main(argv) == 0
    return tmp_path / name, json.loads(capsys.readouterr().out)


def test_survey_make_is_deterministic_by_seed(tmp_path, capsys):
    a, sum_a = _make(tmp_path, "a", 7, capsys)
    b, sum_b = _make(tmp_path, "b", 7, capsys)
    files_a, files_b = _tree(a), _tree(b)
    # 6 cutouts (both layouts: every 3rd one HDU per band), 3 spectra, 2 catalogues
    assert len(files_a) == 11 and sorted(files_a) == sorted(files_b)
    # byte for byte, parquet included: pyarrow writes no timestamp into the file
    different = [name for name in files_a if files_a[name] != files_b[name]]
    assert different == []
    for key in ("galaxies", "spectra", "seed", "bytes_written", "files"):
        assert sum_a[key] == sum_b[key]

    c, _ = _make(tmp_path, "c", 8, capsys)
    cat_a, cat_c = pq.read_table(a / "catalog.parquet"), pq.read_table(c / "catalog.parquet")
    assert cat_a.num_rows == cat_c.num_rows == 6
    assert not np.allclose(cat_a.column("z").to_numpy(), cat_c.column("z").to_numpy())
    for row in range(6):  # every cutout's pixels differ, not just the names (ids carry the seed)
        img_a = read_cutout(str(a / cat_a.column("file")[row].as_py())).image
        img_c = read_cutout(str(c / cat_c.column("file")[row].as_py())).image
        assert not np.allclose(img_a, img_c)
    spec_a = pq.read_table(a / "spectra_catalog.parquet").column("file").to_pylist()
    spec_c = pq.read_table(c / "spectra_catalog.parquet").column("file").to_pylist()
    flux_a = read_spectrum(str(a / spec_a[0])).flux.value
    flux_c = read_spectrum(str(c / spec_c[0])).flux.value
    assert flux_a.shape == flux_c.shape and not np.allclose(flux_a, flux_c)


def test_survey_make_then_ingest(tmp_path, capsys):
    out = f"file://{tmp_path}/survey"
    assert (
        main(["survey", "make", "--galaxies", "9", "--spectra", "2", "--out", out, "--seed", "2"])
        == 0
    )
    summary = json.loads(capsys.readouterr().out)
    assert summary["galaxies"] == 9 and summary["spectra"] == 2
    (tmp_path / "survey" / "cutouts" / "zz-broken.fits").write_bytes(b"SIMPLE  =  junk")
    rc = main(["ingest", f"{out}/cutouts", f"file://{tmp_path}/shards", "--partition-mb", "0.1"])
    report = json.loads(capsys.readouterr().out)
    assert rc == 1  # done, but one bad file
    assert report["good_rows"] == 9 and [b["file"] for b in report["bad"]] == ["zz-broken.fits"]
    assert Manifest.load(f"file://{tmp_path}/shards").total_rows == 9


def test_cli_errors(tmp_path, capsys):
    assert main(["ingest", f"file://{tmp_path}/none", f"file://{tmp_path}/o"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["survey", "make", "--galaxies", "-1", "--out", f"file://{tmp_path}/x"]) == 2
