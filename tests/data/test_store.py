"""The object store, run against file:// and a real S3 server on loopback (moto)."""

from __future__ import annotations

import logging
import os
import tracemalloc

import pytest

from astrokit.store import (
    Page,
    ReadOnlyAreaError,
    StoreCredentialsError,
    StoreError,
    StoreNotFound,
    open_store,
)


def _names(page: Page) -> list[str]:
    return [e.name for e in page.entries]


def test_write_read_info_roundtrip(any_store):
    url = any_store.join("users/test/a/b.bin")
    any_store.write_bytes(url, b"0123456789")
    assert any_store.exists(url)
    assert any_store.read_bytes(url) == b"0123456789"
    assert any_store.read_bytes(url, 2, 5) == b"234"
    info = any_store.info(url)
    assert (info.name, info.kind, info.size) == ("b.bin", "file", 10)
    with any_store.open(url) as fh:
        assert fh.read() == b"0123456789"
    assert any_store.info(any_store.join("users/test/a")).kind == "directory"


def test_missing_is_typed(any_store):
    url = any_store.join("users/test/nope.bin")
    assert not any_store.exists(url)
    with pytest.raises(StoreNotFound, match=r"nope\.bin"):
        any_store.read_bytes(url)
    with pytest.raises(StoreNotFound):
        any_store.list_page(any_store.join("users/test/nodir"))


def test_shared_area_is_read_only(any_store):
    for url in (any_store.join("shared/x.fits"), any_store.shared_url):
        with pytest.raises(ReadOnlyAreaError, match="read-only shared area"):
            any_store.write_bytes(url if url.endswith(".fits") else url + "/y", b"x")
    with pytest.raises(ReadOnlyAreaError):
        any_store.makedirs(any_store.join("shared/sub"))
    # a sibling whose name merely starts with "shared" is writable
    any_store.write_bytes(any_store.join("shared-not/x"), b"ok")


def test_atomic_open_failure_leaves_nothing(any_store):
    url = any_store.join("users/test/atomic.bin")
    any_store.write_bytes(url, b"old")
    with pytest.raises(RuntimeError), any_store.atomic_open(url) as fh:
        fh.write(b"new-but-incomplete" * 1000)
        raise RuntimeError("crash mid-write")
    assert any_store.read_bytes(url) == b"old"  # previous content intact
    listing = _names(any_store.list_page(any_store.join("users/test")))
    assert listing == ["atomic.bin"]  # no temporary leftovers visible
    if any_store.protocol == "file":
        assert os.listdir(any_store._path(any_store.join("users/test"))) == ["atomic.bin"]
    with any_store.atomic_open(url, "w") as fh:
        fh.write("text ok")
    assert any_store.read_bytes(url) == b"text ok"


def test_large_atomic_write_multipart(any_store):
    # > s3fs's 50 MiB block would be slow on moto; 6 MiB already crosses a part boundary
    # when the block size is the 5 MiB minimum.
    url = any_store.join("users/test/big.bin")
    data = os.urandom(6 * 1024 * 1024)
    if any_store.protocol == "s3":
        any_store.fs.blocksize = 5 * 1024 * 1024
    with any_store.atomic_open(url) as fh:
        for i in range(0, len(data), 1 << 20):
            fh.write(data[i : i + (1 << 20)])
    assert any_store.read_bytes(url) == data


def test_list_page_paging_dirs_files_pattern(any_store):
    base = any_store.join("users/test/list")
    names = [f"f{i:03d}.fits" for i in range(23)] + ["notes.txt"]
    for n in names:
        any_store.write_bytes(f"{base}/{n}", n.encode())
    # sub-directories with content, and one that sorts between files by key
    any_store.write_bytes(f"{base}/d1/inner-{1}.fits", b"x")
    any_store.write_bytes(f"{base}/d1/inner-{2}.fits", b"x")
    any_store.write_bytes(f"{base}/f010.fits-dir/x", b"x")
    any_store.makedirs(f"{base}/empty")

    seen, after, pages = [], None, 0
    while True:
        page = any_store.list_page(base, limit=5, after=after)
        assert len(page.entries) <= 5
        seen += page.entries
        pages += 1
        if page.next_after is None:
            break
        after = page.next_after
    got = [e.name for e in seen]
    assert len(got) == len(set(got)), "an entry was listed twice across pages"
    assert set(got) == {*names, "d1", "f010.fits-dir", "empty"}
    kinds = {e.name: e.kind for e in seen}
    assert kinds["d1"] == kinds["empty"] == kinds["f010.fits-dir"] == "directory"
    assert kinds["notes.txt"] == "file"
    assert pages >= 6
    assert {e.size for e in seen if e.name.startswith("f0") and e.kind == "file"} == {9}

    fits = list(any_store.iter_entries(base, pattern="*.fits", page_size=7))
    assert [e.name for e in fits] == sorted(n for n in names if n.endswith(".fits"))
    assert _names(any_store.list_page(f"{base}/empty")) == []


def test_relative_paths_and_join(any_store):
    assert any_store.join("a", "/b/", "c.fits") == any_store.url + "/a/b/c.fits"
    any_store.write_bytes("users/test/rel.bin", b"r")
    assert any_store.read_bytes(any_store.join("users/test/rel.bin")) == b"r"


def test_unsupported_url():
    with pytest.raises(StoreError, match="unsupported store URL"):
        open_store("ftp://example.org/x")
    with pytest.raises(StoreError, match="ASTROKIT_STORE_URL"):
        os.environ.pop("ASTROKIT_STORE_URL", None)
        open_store()


def test_env_configuration(monkeypatch, tmp_path):
    root = f"file://{tmp_path}"
    monkeypatch.setenv("ASTROKIT_STORE_URL", root)
    monkeypatch.setenv("ASTROKIT_SHARED_URL", f"{root}/survey")
    monkeypatch.setenv("ASTROKIT_USER_URL", f"{root}/users/ada")
    store = open_store()
    assert store.url == root
    assert store.shared_url == f"{root}/survey"
    assert store.user_url == f"{root}/users/ada"
    with pytest.raises(ReadOnlyAreaError):
        store.write_bytes(f"{root}/survey/x", b"x")
    admin = open_store(root, allow_shared_writes=True)  # the platform's seeding tools only
    admin.write_bytes(f"{root}/survey/x", b"x")
    assert store.read_bytes(f"{root}/survey/x") == b"x"


@pytest.mark.s3
def test_secrets_never_in_repr_or_logs(make_bucket, s3_server, caplog, monkeypatch):
    secret = "sUp3r-s3cret-VALUE"
    monkeypatch.setenv("ASTROKIT_S3_ENDPOINT", s3_server)
    caplog.set_level(logging.DEBUG, logger="astrokit")
    bucket = make_bucket()
    store = open_store(bucket, storage_options={"key": "astrokit-test", "secret": secret})
    store.write_bytes(store.join("users/x/a.bin"), b"a")
    store.list_page(store.join("users/x"))
    assert s3_server in repr(store)
    for text in (repr(store), str(store), caplog.text):
        assert secret not in text
        assert "astrokit-test" not in text


@pytest.mark.s3
def test_bad_credentials_typed_error(make_bucket, s3_server, monkeypatch):
    bucket = make_bucket()
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    store = open_store(bucket, storage_options={"client_kwargs": {"endpoint_url": s3_server}})
    with pytest.raises(StoreCredentialsError, match="credentials"):
        store.write_bytes(store.join("users/x/a.bin"), b"a")


def test_list_page_memory_is_bounded_local(tmp_path):
    # 20,000 files: listing the first page must not hold all of them in memory.
    d = tmp_path / "big"
    d.mkdir()
    for i in range(20_000):
        (d / f"obj-{i:06d}.fits").touch()
    store = open_store(f"file://{tmp_path}")
    tracemalloc.start()
    page = store.list_page(store.join("big"), limit=100)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert _names(page)[:2] == ["obj-000000.fits", "obj-000001.fits"]
    assert page.next_after == "obj-000099.fits"
    # 20,000 names as Python strings alone would take > 1.4 MB; the heap holds 101.
    assert peak < 400_000, peak


@pytest.mark.s3
def test_list_page_s3_requests_one_page(make_bucket, s3_store_options):
    """A page costs one ListObjectsV2 call bounded by MaxKeys, whatever the prefix size."""
    bucket = make_bucket()
    store = open_store(bucket, storage_options=s3_store_options)
    for i in range(60):
        store.fs.call_s3("put_object", Bucket=bucket[5:], Key=f"p/k{i:03d}", Body=b"")
    calls = []
    real = store.fs.call_s3

    def counting(method, *a, **kw):
        calls.append((method, kw.get("MaxKeys")))
        return real(method, *a, **kw)

    store.fs.call_s3 = counting
    page = store.list_page(store.join("p"), limit=10, after="k019")
    assert _names(page) == [f"k{i:03d}" for i in range(20, 30)]
    assert calls == [("list_objects_v2", 10)]
