"""Catalogue files: formats, column checks, row ranges and the bad-row policy."""

from __future__ import annotations

import numpy as np
import pytest

from astrokit.catalogue import (
    CatalogueError,
    CatalogueSpec,
    MissingColumnError,
    catalogue_columns,
    plan_catalogue,
    read_catalogue,
    read_spec_arrays,
    screen_photometry,
)
from astrokit.survey_catalogue import ERROR_COLUMNS, MAG_COLUMNS, Z_COLUMN, write_catalogue

SPEC = CatalogueSpec(MAG_COLUMNS, ERROR_COLUMNS, Z_COLUMN)


@pytest.fixture(scope="module")
def small_columns(catalogue_columns):
    return {k: v[:300] for k, v in catalogue_columns.items()}


@pytest.mark.parametrize("name", ["c.parquet", "c.csv", "c.fits"])
def test_every_format_reads_the_same_rows(tmp_path, small_columns, name):
    url = write_catalogue((tmp_path / name).as_uri(), small_columns, row_group_size=64)
    got = read_spec_arrays(url, SPEC, start=50, stop=175)
    want = np.stack([small_columns[c][50:175] for c in MAG_COLUMNS], axis=1)
    np.testing.assert_array_equal(np.isnan(got["mags"]), np.isnan(want))
    np.testing.assert_allclose(got["mags"], want, rtol=1e-6)
    np.testing.assert_allclose(got["z"], small_columns[Z_COLUMN][50:175], rtol=1e-6)
    assert list(got["ids"]) == list(small_columns["id"][50:175])  # "id" picked up by default
    assert list(got["rows"]) == list(range(50, 175))


def test_parquet_range_spanning_row_groups(tmp_path, small_columns):
    url = write_catalogue((tmp_path / "c.parquet").as_uri(), small_columns, row_group_size=64)
    got = read_catalogue(url, ["id"], start=60, stop=200)["id"]  # groups 0..3, sliced
    assert list(got) == list(small_columns["id"][60:200])
    assert len(read_catalogue(url, ["id"], start=300, stop=400)["id"]) == 0


def test_missing_column_names_it_and_the_columns_the_file_has(catalogue_url):
    spec = CatalogueSpec("mag_u,mag_g,mag_y", z_column=Z_COLUMN)
    with pytest.raises(MissingColumnError) as info:
        plan_catalogue(catalogue_url, spec)
    msg = str(info.value)
    assert "'mag_y'" in msg and "magnitude band" in msg
    assert info.value.column == "mag_y"
    assert info.value.available == catalogue_columns(catalogue_url)
    assert "mag_u, mag_g, mag_r" in msg  # the file's own columns, in order
    with pytest.raises(MissingColumnError, match=r"'zphot'.*redshift"):
        read_spec_arrays(catalogue_url, CatalogueSpec("mag_u,mag_g", z_column="zphot"))


def test_spec_validation_messages():
    with pytest.raises(CatalogueError, match="at least 2"):
        CatalogueSpec("mag_r")
    with pytest.raises(CatalogueError, match=r"errors names 1 columns.*bands names 2"):
        CatalogueSpec("a,b", errors="ea")
    with pytest.raises(CatalogueError, match="empty name"):
        CatalogueSpec("a,,b")
    with pytest.raises(CatalogueError, match="not a catalogue file name"):
        plan_catalogue("/tmp/table.xlsx", CatalogueSpec("a,b"))


def test_bad_row_policy_reports_each_row_with_its_columns():
    spec = CatalogueSpec("u,g,r", errors="eu,eg,er")
    mags = np.array(
        [[20, 19, 18], [np.nan, 19, 18], [20, 99, 18], [20, 19, -99], [20, 19, 18], [20, 19, 18]],
        dtype=float,
    )
    errs = np.array([[0.1, 0.1, 0.1]] * 4 + [[np.nan, 0.1, 0.1], [0.1, -0.2, 0.1]], dtype=float)
    status, message = screen_photometry(mags, errs, spec)
    assert list(status) == [
        "ok",
        "bad_magnitude",
        "bad_magnitude",
        "bad_magnitude",
        "bad_error",
        "bad_error",
    ]
    assert message[0] == ""
    assert "u=nan" in message[1]
    assert "g=99" in message[2]
    assert "r=-99" in message[3]
    assert "eu=nan" in message[4] and "eg=-0.2" in message[5]


def test_plan_follows_row_groups(tmp_path, small_columns):
    url = write_catalogue((tmp_path / "c.parquet").as_uri(), small_columns, row_group_size=64)
    plan = plan_catalogue(url, SPEC, partition_rows=100)  # groups of 64 -> 128-row ranges
    bounds = [(p["start"], p["stop"]) for p in plan["partitions"]]
    assert bounds == [(0, 128), (128, 256), (256, 300)]
    assert plan["total_rows"] == 300 and plan["kind"] == "catalogue"
    csv = write_catalogue((tmp_path / "c.csv").as_uri(), small_columns)
    plan = plan_catalogue(csv, SPEC, partition_rows=100)
    assert [p["rows"] for p in plan["partitions"]] == [100, 100, 100]


def test_synthetic_catalogue_has_realistic_errors(catalogue_columns):
    errs = np.stack([catalogue_columns[c] for c in ERROR_COLUMNS], axis=1)
    mags = np.stack([catalogue_columns[c] for c in MAG_COLUMNS], axis=1)
    det = (errs < 50) & np.isfinite(errs) & np.isfinite(mags) & (np.abs(mags) < 50)
    r, er = mags[:, 2], errs[:, 2]
    ok = det[:, 2]
    # errors grow with magnitude (sky-limited), from ~0.01 (floor) to ~0.1 at r ~ 22
    bright, faint = ok & (r < 18), ok & (r > 21.5)
    assert np.median(er[bright]) < 0.02 < np.median(er[faint]) < 0.2
    # u is the noisiest band; there are non-detections (99) among the faint ones
    assert np.median(errs[det[:, 0], 0]) > np.median(errs[det[:, 2], 2])
    assert (mags == 99).any()
