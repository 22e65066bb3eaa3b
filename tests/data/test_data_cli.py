"""The ``astrokit survey`` and ``astrokit ingest`` commands end to end (real local cluster)."""

from __future__ import annotations

import json

from astrokit.cli import main
from astrokit.shards import Manifest


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
