"""Shard files and manifests on both store backends."""

from __future__ import annotations

import numpy as np
import pytest

from astrokit.shards import (
    ChecksumMismatch,
    Manifest,
    ShardError,
    read_shard,
    rows_per_shard,
    shard_name,
    write_shard,
)


def _arrays(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "images": rng.normal(size=(n, 5, 32, 32)).astype(np.float32),
        "mags": rng.uniform(16, 22, size=(n, 5)).astype(np.float32),
        "ids": np.array([f"g{seed}-{i}" for i in range(n)]),
        "z": np.where(np.arange(n) % 3 == 0, np.nan, rng.uniform(0, 0.6, n)).astype(np.float32),
    }


def test_write_read_manifest_roundtrip(any_store):
    set_url = any_store.join("users/test/shards")
    manifest = Manifest(meta={"source": "unit"})
    for i, n in enumerate((7, 5)):
        arrays = _arrays(n, seed=i)
        info = write_shard(f"{set_url}/{shard_name(i)}", arrays, store=any_store)
        assert (info.name, info.rows) == (shard_name(i), n)
        manifest.shards.append(info)
    manifest.save(set_url, store=any_store)

    loaded = Manifest.load(set_url, store=any_store)
    assert loaded.total_rows == 12
    assert loaded.shards == manifest.shards
    assert loaded.meta == {"source": "unit"}
    assert loaded.verify(any_store) == []
    back = read_shard(loaded.shard_url(loaded.shards[1]), any_store, expect=loaded.shards[1])
    ref = _arrays(5, seed=1)
    for key in ref:
        np.testing.assert_array_equal(back[key], ref[key])
    assert back["images"].dtype == np.float32 and back["ids"].dtype.kind == "U"


def test_checksum_and_schema_errors(any_store):
    set_url = any_store.join("users/test/bad")
    info = write_shard(f"{set_url}/{shard_name(0)}", _arrays(3), store=any_store)
    # another shard written over it: checksum no longer matches the recorded one
    write_shard(f"{set_url}/{shard_name(0)}", _arrays(3, seed=9), store=any_store)
    with pytest.raises(ChecksumMismatch, match="shard-00000"):
        read_shard(f"{set_url}/{shard_name(0)}", any_store, expect=info)
    manifest = Manifest(shards=[info], url=set_url)
    assert manifest.verify(any_store) == ["shard-00000.npz: checksum mismatch"]

    bad = _arrays(3)
    bad["images"] = bad["images"].astype(np.float64)
    with pytest.raises(ShardError, match=r"expected \(N, 5, H, W\) float32"):
        write_shard(f"{set_url}/x.npz", bad, store=any_store)
    bad = _arrays(3)
    bad["z"] = bad["z"][:2]
    with pytest.raises(ShardError, match="z has shape"):
        write_shard(f"{set_url}/x.npz", bad, store=any_store)
    any_store.write_bytes(f"{set_url}/junk.npz", b"not a zip")
    with pytest.raises(ShardError, match=r"junk\.npz"):
        read_shard(f"{set_url}/junk.npz", any_store)
    with pytest.raises(ShardError, match="not a shard set"):
        Manifest.load(any_store.join("users/test/none"), store=any_store)
    any_store.write_bytes(f"{set_url}/manifest.json", b'{"format": "other"}')
    with pytest.raises(ShardError, match="expected 'astrokit-shards'"):
        Manifest.load(set_url, store=any_store)


def test_rows_per_shard_matches_target_size():
    rows = rows_per_shard(25)
    one = len(__import__("astrokit.shards", fromlist=["x"]).encode_shard(_arrays(rows)))
    assert 0.9 * 25e6 < one < 1.05 * 25e6
    with pytest.raises(ValueError):
        rows_per_shard(0)


def test_local_paths_without_store(tmp_path):
    info = write_shard(str(tmp_path / "s" / shard_name(0)), _arrays(2))
    Manifest(shards=[info]).save(str(tmp_path / "s"))
    m = Manifest.load(f"file://{tmp_path}/s")
    assert m.total_rows == 2
    assert read_shard(m.shard_url(m.shards[0]))["ids"].tolist() == ["g0-0", "g0-1"]
