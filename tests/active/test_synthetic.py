"""The controlled-difficulty line-spectra generator and the ``al pool`` command."""

from __future__ import annotations

import numpy as np
import pytest

from astrokit.active.pool import LogGrid, Pool
from astrokit.active.synthetic import LINE_CLASSES, line_spectra
from astrokit.cli import main
from astrokit.lines import find_line

GRID = LogGrid(n=256)


def test_classes_follow_the_fractions_and_emission_is_a_minority():
    draw = line_spectra(4000, 3, GRID)
    assert draw["flux"].shape == (4000, 256) and draw["flux"].dtype == np.float32
    counts = {c: int(np.sum(draw["labels"] == c)) for c in LINE_CLASSES}
    assert counts["emission"] / 4000 == pytest.approx(0.12, abs=0.02)
    assert counts["absorption"] > counts["featureless"] > counts["emission"] > counts["broadline"]
    assert draw["snr"].min() >= 3.0 and draw["snr"].max() <= 40.0


def test_features_are_where_the_class_says():
    draw = line_spectra(600, 5, GRID, snr_range=(30.0, 40.0))
    peak, dip = draw["flux"].max(axis=1), draw["flux"].min(axis=1)
    labels = draw["labels"]
    # S/N 30-40 features stand out by ~8-20 noise units once preprocessed (a line is averaged
    # over pixels ~1000 km/s wide here); the weakest of ~200 objects sits near the bottom
    assert np.all(peak[labels == "emission"] > 7)
    assert np.all(dip[labels == "absorption"] < -7)
    assert np.median(peak[labels == "featureless"]) < 4  # noise only
    # the emission peak sits at the redshifted H-alpha (or [O III]) vacuum wavelength
    row = np.flatnonzero(labels == "emission")[0]
    at = GRID.wave[np.argmax(draw["flux"][row])] / (1 + draw["z"][row])
    lines = (find_line("H\N{GREEK SMALL LETTER ALPHA}"), find_line("[O III]", near=5008))
    assert min(abs(at - line.rest_wavelength) for line in lines) < 25  # a pixel is ~24 A


def test_same_seed_same_spectra_and_bad_arguments():
    a, b = line_spectra(20, 1, GRID), line_spectra(20, 1, GRID)
    np.testing.assert_array_equal(a["flux"], b["flux"])
    with pytest.raises(ValueError, match="fractions must be 4"):
        line_spectra(5, 0, GRID, fractions=(1, 2))
    with pytest.raises(ValueError, match="0 < low < high"):
        line_spectra(5, 0, GRID, snr_range=(5, 1))


def test_al_pool_command_writes_a_labelled_pool(tmp_path, capsys):
    url = f"file://{tmp_path}/pool"
    argv = ["al", "pool", url, "--synthetic", "250", "--pixels", "128", "--rows-per-shard", "100"]
    assert main(argv) == 0
    assert "250 spectra in 3 shards" in capsys.readouterr().out
    pool = Pool.load(url)
    assert pool.has_labels and pool.classes == list(LINE_CLASSES) and pool.grid.n == 128


def test_al_pool_from_the_survey_generator(tmp_path):
    from astrokit.survey import SPECTRAL_CLASSES

    url = f"file://{tmp_path}/pool"
    argv = ["al", "pool", url, "--source", "survey", "--synthetic", "120", "--pixels", "256"]
    assert main(argv) == 0
    pool = Pool.load(url)
    assert pool.total_rows == 120 and pool.classes == list(SPECTRAL_CLASSES)
    rows = pool.get_rows(np.arange(120), keys=("flux", "labels", "ids"))
    assert set(rows["labels"].tolist()) <= set(SPECTRAL_CLASSES)
    assert len(set(rows["ids"].tolist())) == 120
    assert np.all(np.isfinite(rows["flux"])) and np.abs(rows["flux"]).max() > 3
