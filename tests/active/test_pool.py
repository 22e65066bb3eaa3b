"""Pools: preprocessing, shard layout, row lookup across shards, errors, builders."""

from __future__ import annotations

import json

import numpy as np
import pytest
from toy_data import CLASSES, GRID, write_toy_pool

from astrokit.active.pool import LogGrid, Pool, PoolError, build_pool, preprocess


def test_preprocess_resamples_standardises_and_ignores_bad_pixels():
    grid = LogGrid(4000.0, 8000.0, 256)
    wave = np.linspace(3000.0, 9000.0, 6000)
    rng = np.random.default_rng(0)
    flux = 10.0 + rng.normal(0, 0.5, wave.size) + 8.0 * np.exp(-0.5 * ((wave - 6563) / 6) ** 2)
    ivar = np.full(wave.size, 4.0)
    flux[100:200] = 1e6  # a bad stretch outside the grid
    flux[3000:3010] = -1e6  # and one inside, flagged bad by ivar
    ivar[3000:3010] = 0
    out = preprocess(wave, flux, grid, ivar=ivar)
    assert out.shape == (256,) and out.dtype == np.float32
    # standardised: median 0, robust scale ~1, the line is the maximum and stands out
    assert abs(np.median(out)) < 0.05
    assert grid.wave[np.argmax(out)] == pytest.approx(6563, abs=30)
    assert out.max() > 8 and out.min() > -6  # the masked dip did not leak in


def test_preprocess_leaves_uncovered_pixels_at_zero_and_handles_batches():
    grid = LogGrid(3000.0, 10000.0, 64)
    wave = np.linspace(5000.0, 6000.0, 500)
    flux = np.vstack([np.sin(wave / 50.0), np.full(wave.size, np.nan)])
    out = preprocess(wave, flux, grid)
    outside = (grid.wave < 5000) | (grid.wave > 6000)
    assert out.shape == (2, 64)
    assert np.all(out[0, outside] == 0) and np.any(out[0, ~outside] != 0)
    assert np.all(out[1] == 0)  # nothing usable: an all-zero row


def test_rows_are_found_in_the_order_asked_across_shards(toy_pool):
    assert toy_pool.total_rows == 600 and len(toy_pool.shards) == 4
    assert [s.offset for s in toy_pool.shards] == [0, 150, 300, 450]
    rows = toy_pool.get_rows([599, 0, 151, 300], keys=("ids", "labels", "flux"))
    assert rows["ids"].tolist() == ["toy-00599", "toy-00000", "toy-00151", "toy-00300"]
    assert set(rows["labels"].tolist()) <= set(CLASSES)
    whole = toy_pool.read_shard(1, ("flux",))["flux"]
    np.testing.assert_array_equal(rows["flux"][2], whole[1])
    with pytest.raises(PoolError, match=r"out of range \[0, 600\)"):
        toy_pool.get_rows([600])


def test_pool_reloads_from_its_manifest(toy_pool):
    again = Pool.load(toy_pool.url)
    assert again.classes == CLASSES and again.grid == GRID
    assert again.fingerprint == toy_pool.fingerprint and again.has_labels


def test_bad_pools_raise_clear_errors(tmp_path, toy_pool):
    with pytest.raises(PoolError, match=r"no pool\.json; not an active-learning pool"):
        Pool.load(f"file://{tmp_path}/nothing")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "pool.json").write_text(json.dumps({"format": "astrokit-shards"}))
    with pytest.raises(PoolError, match="expected 'astrokit-al-pool'"):
        Pool.load(f"file://{tmp_path}/bad")
    copy = write_toy_pool(f"file://{tmp_path}/copy", 40, per_shard=20)
    (tmp_path / "copy" / "pool-00001.npz").write_bytes(b"not a zip")
    with pytest.raises(PoolError, match=r"pool-00001.npz: not a readable pool shard"):
        copy.get_rows([25])
    with pytest.raises(ValueError, match=r"labels \['quasar'\] not in classes"):
        build_pool(
            f"file://{tmp_path}/x",
            [{"flux": np.zeros((1, 128)), "ids": ["a"], "labels": ["quasar"]}],
            classes=CLASSES,
            grid=GRID,
        )
    with pytest.raises(ValueError, match="duplicate ids"):
        build_pool(
            f"file://{tmp_path}/y",
            [{"flux": np.zeros((2, 128)), "ids": ["a", "a"]}],
            classes=CLASSES,
            grid=GRID,
        )


@pytest.mark.s3
def test_a_pool_in_s3(s3_store_options, make_bucket):
    from astrokit.store import open_store

    store = open_store(make_bucket(), storage_options=s3_store_options)
    url = store.join("users", "ada", "pool")
    flux = np.arange(3 * 128, dtype=np.float32).reshape(3, 128)
    pool = build_pool(
        url,
        [{"flux": flux, "ids": ["a", "b", "c"], "labels": ["emission", "", "absorption"]}],
        classes=CLASSES,
        grid=GRID,
        store=store,
    )
    again = Pool.load(url, store)
    assert again.fingerprint == pool.fingerprint
    rows = again.get_rows([2, 0], keys=("flux", "labels"))
    np.testing.assert_array_equal(rows["flux"], flux[[2, 0]])
    assert rows["labels"].tolist() == ["absorption", "emission"]


def test_pool_from_real_spectrum_files_skips_bad_ones(tmp_path, real_spectra_dir, lamost_files):
    from astrokit.active.pool import build_pool_from_spectra

    (tmp_path / "junk.fits").write_bytes(b"SIMPLE  = T" + b" " * 100)
    sources = [
        str(real_spectra_dir / "SDSSJ220248.31+123656.3.fits"),
        str(lamost_files["lrs"]),
        str(tmp_path / "junk.fits"),
    ]
    pool, skipped = build_pool_from_spectra(
        sources, f"file://{tmp_path}/pool", classes=["GALAXY", "QSO", "STAR"]
    )
    assert pool.total_rows == 2
    assert [s for s, _ in skipped] == [str(tmp_path / "junk.fits")]
    assert pool.meta["skipped"][0][0] == str(tmp_path / "junk.fits")
    flux = pool.get_rows([0, 1], keys=("flux",))["flux"]
    assert np.all(np.isfinite(flux)) and np.all(np.abs(flux).max(axis=1) > 1)
