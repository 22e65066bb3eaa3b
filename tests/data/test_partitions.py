"""One planner (astrokit.partitions), one shard layer for pools, one store policy for tasks."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from astrokit.partitions import (
    FITS_SUFFIXES,
    CatalogueRange,
    FileGroup,
    ShardRange,
    as_partition,
    balance,
    from_dict,
    group_files,
    is_fits_name,
    plan_shard_set,
)
from astrokit.shards import DEFAULT_PARTITION_MB, Manifest, ShardInfo


def _manifest(rows=(120, 120, 60), bytes_per_row=20_000):
    shards = [
        ShardInfo(f"shard-{i:05d}.npz", n, f"{i:064x}", n * bytes_per_row)
        for i, n in enumerate(rows)
    ]
    return Manifest(shards, url="file:///x/shards")


def test_one_partition_size_and_one_list_of_fits_suffixes():
    from astrokit import inference, ingest
    from astrokit.active import pool

    assert inference.DEFAULT_PARTITION_MB is DEFAULT_PARTITION_MB
    assert pool.DEFAULT_PARTITION_MB is DEFAULT_PARTITION_MB
    assert ingest.FITS_SUFFIXES is FITS_SUFFIXES
    for name in ("a.fits", "B.FITS.GZ", "c.fit.gz", "d.fit", "e.fts"):
        assert is_fits_name(name)
    assert not is_fits_name("notes.txt") and not is_fits_name("x.fits.bak")
    # inference's patterns are derived from the same list
    assert {p.removeprefix("*") for p in inference.FITS_PATTERNS} == set(FITS_SUFFIXES)


def test_shard_ranges_are_typed_frozen_and_keep_the_plan_json():
    parts = plan_shard_set(_manifest(), partition_mb=1.0)  # 2.4 MB shards -> 3 ranges each
    assert all(isinstance(p, ShardRange) for p in parts)
    assert [(p.source, p.start, p.stop) for p in parts[:3]] == [
        ("shard-00000.npz", 0, 40),
        ("shard-00000.npz", 40, 80),
        ("shard-00000.npz", 80, 120),
    ]
    assert [p.index for p in parts] == list(range(len(parts)))
    assert parts[3].offset == 120 and parts[-1].offset == 240
    with pytest.raises(AttributeError):
        parts[0].start = 5  # frozen
    doc = parts[0].to_dict()
    assert set(doc) == {"index", "kind", "source_url", "shard", "start", "stop", "rows"}
    assert doc["shard"]["name"] == "shard-00000.npz" and doc["kind"] == "shard"
    again = from_dict(json.loads(json.dumps(doc)))
    assert again == ShardRange(0, doc["source_url"], parts[0].shard, 0, 40)
    assert as_partition(doc) == again and as_partition(again) is again
    # one range per shard when no size is given (pools)
    assert [p.rows for p in plan_shard_set(_manifest(), None)] == [120, 120, 60]


def test_balance_cuts_the_last_wave_of_every_kind():
    parts = plan_shard_set(_manifest(), DEFAULT_PARTITION_MB)
    two = balance(parts, 2)
    assert [(p.index, p.start, p.stop) for p in two] == [
        (0, 0, 120),
        (1, 0, 120),
        (2, 0, 30),
        (3, 30, 60),
    ]
    files = FileGroup(0, tuple(f"c{i}.fits" for i in range(5)), (1, 2, 3, 4, 5))
    cut = balance([files], 2)
    assert [len(p.files) for p in cut] == [2, 3] or [len(p.files) for p in cut] == [3, 2]
    assert sum(p.bytes for p in cut) == 15 and [p.index for p in cut] == [0, 1]
    cat = CatalogueRange(0, "file:///c.parquet", "c.parquet", 0, 10)
    assert [(p.start, p.stop) for p in balance([cat], 2)] == [(0, 5), (5, 10)]
    assert cat.to_dict()["kind"] == "catalogue" and from_dict(cat.to_dict()) == cat


def test_group_files_streams_consecutive_groups():
    names = [f"f{i}" for i in range(10)]
    groups = list(group_files(names, 4))
    assert [g.files for g in groups] == [tuple(names[:4]), tuple(names[4:8]), tuple(names[8:])]
    assert [g.index for g in groups] == [0, 1, 2]
    sized = list(group_files([(n, 10) for n in names], 5))
    assert [g.bytes for g in sized] == [50, 50]
    with pytest.raises(ValueError):
        list(group_files(names, 0))


def test_pool_shards_are_verified_against_their_checksums(tmp_path):
    from astrokit.active.pool import PoolError, build_pool, pool_partitions

    flux = np.arange(4 * 128, dtype=np.float32).reshape(4, 128)
    from astrokit.active.pool import LogGrid

    grid = LogGrid(3700.0, 9300.0, 128)
    pool = build_pool(
        f"file://{tmp_path}/pool",
        [{"flux": flux[:2], "ids": ["a", "b"]}, {"flux": flux[2:], "ids": ["c", "d"]}],
        classes=["x", "y"],
        grid=grid,
    )
    parts = pool_partitions(pool)
    assert [(p.index, p.offset, p.rows) for p in parts] == [(0, 0, 2), (1, 2, 2)]
    np.testing.assert_array_equal(pool.get_rows([3, 0])["flux"], flux[[3, 0]])
    # a shard replaced by another valid .npz (same shape, other values): caught by its sha256
    other = tmp_path / "other.npz"
    np.savez(other, flux=flux[:2] + 1, ids=np.array(["a", "b"]))
    (tmp_path / "pool" / "pool-00000.npz").write_bytes(other.read_bytes())
    with pytest.raises(PoolError, match=r"pool-00000.npz: not a readable pool shard .*sha256"):
        pool.read_shard(0)


def test_tasks_get_the_store_without_credentials(tmp_path):
    from astrokit.active.pool import Pool
    from astrokit.store import open_store
    from astrokit.workers import StoreSpec, open_task_store, task_store

    secret = "sUp3r-s3cret-VALUE-for-the-graph"
    store = open_store(
        "s3://bucket/prefix",
        storage_options={
            "key": "AKIDKEY",
            "secret": secret,
            "client_kwargs": {"endpoint_url": "http://127.0.0.1:9"},
        },
    )
    spec = task_store(store)
    assert isinstance(spec, StoreSpec) and spec.endpoint == "http://127.0.0.1:9"
    assert secret.encode() not in pickle.dumps(spec)
    assert b"AKIDKEY" not in pickle.dumps(spec)
    assert task_store(None) is None and task_store(spec) is spec
    with pytest.raises(TypeError):
        task_store("s3://bucket")
    pool = Pool("s3://bucket/prefix/pool", grid=None, classes=["a", "b"], shards=[], store=store)
    assert secret.encode() not in pickle.dumps(pool.for_tasks())
    local = open_store(f"file://{tmp_path}")
    reopened = open_task_store(task_store(local))
    assert reopened.url == local.url and reopened.shared_url == local.shared_url


def test_torch_threads_context_restores():
    import torch

    from astrokit.workers import torch_threads

    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with torch_threads(None):
        assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="threads must be >= 1"), torch_threads(0):
        pass
