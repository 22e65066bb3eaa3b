"""Ingest FITS cutouts into shards on a real local Dask cluster, on file:// and S3."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from astropy.io import fits
from helpers.cluster import local_client

from astrokit.formats import read_cutout
from astrokit.ingest import IngestError, ingest, plan_groups
from astrokit.shards import Manifest, read_shard, shard_name
from astrokit.store import ReadOnlyAreaError
from astrokit.survey import cutout_fits_bytes, make_survey, synth_galaxies


@pytest.fixture(scope="module")
def client(s3_server):
    """Workers take S3 credentials from their environment (as on the spawner's cluster), so
    the S3 server fixture, which sets them, must come first."""
    with local_client() as c:
        yield c


def _bad_inputs(store, src):
    """Five broken cutouts, each a different failure mode; returns name -> error type."""
    g = synth_galaxies(2, seed=99)
    good = cutout_fits_bytes(g["images"][0], g["mags"][0], 0.2, "x")
    store.write_bytes(f"{src}/bad-truncated.fits", good[: len(good) - 5000])
    big = np.zeros((5, 64, 64), np.float32)
    store.write_bytes(f"{src}/bad-shape.fits", cutout_fits_bytes(big, g["mags"][0], 0.1, "s"))
    buf = io.BytesIO()
    hdu = fits.PrimaryHDU(g["images"][0][:4])
    hdu.header["BANDS"] = "ugri"
    hdu.writeto(buf)
    store.write_bytes(f"{src}/bad-bands.fits", buf.getvalue())
    store.write_bytes(f"{src}/bad-notfits.fits", b"hello, I am not a FITS file")
    nan = g["images"][1].copy()
    nan[:, :, :20] = np.nan
    store.write_bytes(f"{src}/bad-nan.fits", cutout_fits_bytes(nan, g["mags"][1], 0.3, "n"))
    store.write_bytes(f"{src}/README.txt", b"not an input")  # ignored: not a FITS name
    return {
        "bad-truncated.fits": "CorruptFileError",
        "bad-shape.fits": "CutoutShapeError",
        "bad-bands.fits": "CutoutShapeError",
        "bad-notfits.fits": "CorruptFileError",
        "bad-nan.fits": "CorruptFileError",
    }


def test_plan_groups_is_deterministic():
    names = [f"f{i}" for i in range(10)]
    assert plan_groups(names, 4) == [names[:4], names[4:8], names[8:]]
    with pytest.raises(ValueError):
        plan_groups(names, 0)


def test_ingest_bad_files_accounting_and_resume(any_store, client):
    survey = any_store.join("users/test/survey")
    make_survey(survey, galaxies=30, spectra=0, seed=7, store=any_store, per_band_every=6)
    src = f"{survey}/cutouts"
    expected_bad = _bad_inputs(any_store, src)
    dst = any_store.join("users/test/shards")

    # 0.1 MB -> 4 rows per shard: 35 files -> 9 shards (one all-bad group is possible)
    report = ingest(src, dst, partition_mb=0.1, client=client, store=any_store)
    assert report.files == 35
    assert report.good_rows == 30 and len(report.bad) == 5
    assert report.good_rows + len(report.bad) == report.files
    assert {b.file: b.error for b in report.bad} == expected_bad
    for b in report.bad:
        assert b.file in b.reason  # the reason names the file
    assert report.shards_skipped == 0

    manifest = Manifest.load(dst, store=any_store)
    assert manifest.total_rows == 30
    assert manifest.verify(any_store) == []
    assert all(s.rows <= 4 for s in manifest.shards)
    ids, zs = [], []
    for info in manifest.shards:
        arrays = read_shard(manifest.shard_url(info), any_store, expect=info)
        ids += arrays["ids"].tolist()
        zs += arrays["z"].tolist()
    assert len(set(ids)) == 30
    # spot-check one row against the reader
    first = read_shard(manifest.shard_url(manifest.shards[0]), any_store)
    cut = read_cutout(f"{src}/{first['ids'][0]}.fits", store=any_store)
    np.testing.assert_array_equal(first["images"][0], cut.image)
    np.testing.assert_array_equal(first["mags"][0], cut.magnitudes)
    assert first["z"][0] == pytest.approx(cut.redshift)
    doc = json.loads(any_store.read_bytes(report.report_url))
    assert doc["good_rows"] == 30 and len(doc["bad"]) == 5

    # re-run: everything finished is reused
    again = ingest(src, dst, partition_mb=0.1, client=client, store=any_store)
    assert again.shards_written == 0 and again.shards_skipped == 9
    assert [s.sha256 for s in Manifest.load(dst, store=any_store).shards] == [
        s.sha256 for s in manifest.shards
    ]
    # damage one shard: only that one is redone
    victim = manifest.shards[1]
    any_store.write_bytes(manifest.shard_url(victim), b"garbage")
    third = ingest(src, dst, partition_mb=0.1, client=client, store=any_store)
    assert third.shards_written == 1 and third.shards_skipped == 8
    assert Manifest.load(dst, store=any_store).verify(any_store) == []
    assert third.good_rows == 30 and len(third.bad) == 5


def test_ingest_errors(any_store, client):
    empty = any_store.join("users/test/empty")
    any_store.makedirs(empty)
    with pytest.raises(IngestError, match="no FITS files"):
        ingest(empty, any_store.join("users/test/out"), client=client, store=any_store)
    with pytest.raises(IngestError, match="does not exist"):
        ingest(any_store.join("users/test/nothere"), any_store.join("users/test/o"),
               client=client, store=any_store)  # fmt: skip
    with pytest.raises(ReadOnlyAreaError):
        ingest(empty, any_store.join("shared/shards"), client=client, store=any_store)


def test_shard_names_follow_sorted_inputs(tmp_path, client):
    from astrokit.store import open_store

    store = open_store(f"file://{tmp_path}")
    g = synth_galaxies(6, seed=3)
    for i in reversed(range(6)):  # written in reverse: order must come from the names
        store.write_bytes(
            store.join(f"src/c{i}.fits"),
            cutout_fits_bytes(g["images"][i], g["mags"][i], None, f"c{i}"),
        )
    ingest(store.join("src"), store.join("dst"), partition_mb=0.05, client=client, store=store)
    m = Manifest.load(store.join("dst"), store=store)
    assert [s.name for s in m.shards] == [shard_name(i) for i in range(3)]
    got = [read_shard(m.shard_url(s), store)["ids"].tolist() for s in m.shards]
    assert got == [["c0", "c1"], ["c2", "c3"], ["c4", "c5"]]
    assert np.isnan(read_shard(m.shard_url(m.shards[0]), store)["z"]).all()  # unknown z -> NaN


def _small_survey(tmp_path, files: int = 12):
    from astrokit.store import open_store

    store = open_store(f"file://{tmp_path}")
    g = synth_galaxies(files, seed=5)
    for i in range(files):
        store.write_bytes(
            store.join(f"src/c{i:02d}.fits"),
            cutout_fits_bytes(g["images"][i], g["mags"][i], 0.1, f"c{i:02d}"),
        )
    return store


def test_every_file_the_manifest_names_is_flushed_before_it(tmp_path, client, monkeypatch):
    """Shard tasks publish without waiting for the disk; the client flushes their files while
    they run, and writes the manifest only after all of them (and a crash before leaves no
    manifest)."""
    store = _small_survey(tmp_path)
    dst = store.join("dst")
    flushed: list[str] = []
    real = store.make_durable

    def make_durable(urls):
        if not flushed_before:  # the first run: no manifest may exist yet
            assert not store.exists(f"{dst}/manifest.json"), "manifest written before a flush"
        real(urls)
        flushed.extend(urls)

    flushed_before: list[str] = []

    monkeypatch.setattr(store, "make_durable", make_durable)
    report = ingest(store.join("src"), dst, partition_mb=0.05, client=client, store=store)
    manifest = Manifest.load(dst, store=store)
    sidecars = [f"{dst}/_ingest/{shard_name(i).removesuffix('.npz')}.json" for i in range(6)]
    assert report.shards == 6
    assert sorted(flushed) == sorted([manifest.shard_url(s) for s in manifest.shards] + sidecars)

    # a rerun reuses every shard and flushes them again: a crashed run may have left them
    flushed_before[:] = flushed
    flushed.clear()
    again = ingest(store.join("src"), dst, partition_mb=0.05, client=client, store=store)
    assert again.shards_skipped == 6
    assert len(flushed) == 12


def test_a_shard_that_cannot_be_flushed_fails_the_ingest_before_the_manifest(
    tmp_path, client, monkeypatch
):
    from astrokit.store import StoreError

    store = _small_survey(tmp_path)
    dst = store.join("dst")
    real = store.make_durable

    def make_durable(urls):
        if any(u.endswith(shard_name(2)) for u in urls):
            raise StoreError(f"{urls[0]}: OSError: [Errno 5] Input/output error")
        real(urls)

    monkeypatch.setattr(store, "make_durable", make_durable)
    with pytest.raises(IngestError, match=r"shard-00002\.npz: could not be flushed.*resume"):
        ingest(store.join("src"), dst, partition_mb=0.05, client=client, store=store)
    assert not store.exists(f"{dst}/manifest.json")
    monkeypatch.setattr(store, "make_durable", real)  # the disk is back
    report = ingest(store.join("src"), dst, partition_mb=0.05, client=client, store=store)
    assert report.shards_skipped == 6 and report.good_rows == 12
    assert Manifest.load(dst, store=store).verify(store) == []
