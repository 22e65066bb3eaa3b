"""The object store, run against file:// and a real S3 server on loopback (SeaweedFS)."""

from __future__ import annotations

import json
import logging
import os
import tracemalloc

import pytest

from astrokit.store import (
    TMP_PREFIX,
    Page,
    ReadOnlyAreaError,
    StoreCredentialsError,
    StoreError,
    StoreNotFound,
    StorePermissionError,
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


# S3's minimum part size. s3fs's own default part is 50 MiB, slow in a test: the tests lower its
# block size to this (``default_block_size`` is what S3FileSystem.open uses) so that 6 MiB
# already spans two parts.
MIN_PART = 5 * 1024 * 1024


def _bucket_key(store, url):
    return store._path(url).split("/", 1)


def _record_fsyncs(monkeypatch) -> list[str]:
    """Paths os.fsync is called on from now on (the real fsync still runs)."""
    synced: list[str] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return synced


def test_deferred_durability_publishes_at_once_and_flushes_later(tmp_path, monkeypatch):
    store = open_store(f"file://{tmp_path}")
    synced = _record_fsyncs(monkeypatch)
    store.write_bytes(store.join("a/durable.bin"), b"now")
    assert len(synced) == 1  # the default: flushed under its temporary name, then renamed
    assert os.path.basename(synced[0]).startswith(TMP_PREFIX + "durable.bin")
    synced.clear()
    later = [store.join("a/one.bin"), store.join("b/two.bin")]
    for url in later:
        store.write_bytes(url, b"later", durable=False)
        assert store.read_bytes(url) == b"later"  # published (renamed) already
    with store.atomic_open(store.join("a/three.txt"), "w", durable=False) as fh:
        fh.write("text")
    assert synced == []  # nothing waited for the disk
    store.make_durable(later)
    files_then_folders = ["a/one.bin", "b/two.bin", "a", "b"]
    assert synced == [str(tmp_path / p) for p in files_then_folders]
    with pytest.raises(StoreNotFound, match=r"a/missing\.bin"):
        store.make_durable([store.join("a/missing.bin")])


def test_make_durable_on_s3_has_nothing_to_wait_for(make_bucket, s3_store_options, monkeypatch):
    store = open_store(make_bucket(), storage_options=s3_store_options)
    url = store.join("x.bin")
    store.write_bytes(url, b"x", durable=False)  # an object is durable once its PUT returns
    synced = _record_fsyncs(monkeypatch)
    store.make_durable([url])
    assert synced == [] and store.read_bytes(url) == b"x"


def test_large_atomic_write_multipart(any_store, monkeypatch):
    url = any_store.join("users/test/big.bin")
    data = os.urandom(6 * 1024 * 1024)
    if any_store.protocol == "s3":
        monkeypatch.setattr(any_store.fs, "default_block_size", MIN_PART)
    with any_store.atomic_open(url) as fh:
        for i in range(0, len(data), 1 << 20):
            fh.write(data[i : i + (1 << 20)])
    assert any_store.read_bytes(url) == data
    if any_store.protocol == "s3":
        bucket, key = _bucket_key(any_store, url)
        head = any_store.fs.call_s3("head_object", Bucket=bucket, Key=key)
        assert head["ETag"].endswith('-2"'), head["ETag"]  # completed from two parts


@pytest.mark.s3
def test_failed_multipart_write_leaves_no_object_and_no_upload(make_bucket, s3_store_options,
                                                                monkeypatch):  # fmt: skip
    """A crash after parts were uploaded: nothing visible, and the upload is aborted.

    An unaborted multipart upload is invisible to listings but its parts are stored (and
    billed) until a lifecycle rule removes them, so "no object" alone is not enough.
    """
    bucket = make_bucket()
    store = open_store(bucket, storage_options=s3_store_options)
    monkeypatch.setattr(store.fs, "default_block_size", MIN_PART)
    url = store.join("users/test/crash.bin")
    name, key = _bucket_key(store, url)
    chunk = os.urandom(1 << 20)
    with pytest.raises(RuntimeError, match="crash after 6 MiB"), store.atomic_open(url) as fh:
        for _ in range(6):
            fh.write(chunk)
        # the first 5 MiB went out as part 1 of a multipart upload already
        (upload,) = store.fs.call_s3("list_multipart_uploads", Bucket=name)["Uploads"]
        assert upload["Key"] == key
        uploaded = store.fs.call_s3("list_parts", Bucket=name, Key=key, UploadId=upload["UploadId"])
        assert [p["Size"] for p in uploaded["Parts"]] == [MIN_PART]
        raise RuntimeError("crash after 6 MiB")
    assert not store.exists(url)
    assert store.fs.call_s3("list_objects_v2", Bucket=name).get("KeyCount", 0) == 0
    assert store.fs.call_s3("list_multipart_uploads", Bucket=name).get("Uploads", []) == []


@pytest.mark.s3
def test_anonymous_read_of_a_public_bucket(make_bucket, s3_store_options, s3_server,
                                           monkeypatch):  # fmt: skip
    """ASTROKIT_S3_ANON=1 (what the spawner sets for a public bucket): unsigned requests.

    The server refuses unsigned reads until the bucket is made public, so the test shows both
    the refusal and the anonymous code path end to end (no credentials anywhere, every request
    sent unsigned).
    """
    bucket = make_bucket()
    # seeded as the platform seeds shared/ (its tools alone may write there)
    writer = open_store(bucket, storage_options=s3_store_options, allow_shared_writes=True)
    writer.write_bytes(writer.join("shared/spectra/a.fits"), b"SIMPLE  = T")
    writer.write_bytes(writer.join("shared/spectra/b.fits"), b"SIMPLE  = F")

    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(var)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("ASTROKIT_S3_ENDPOINT", s3_server)
    monkeypatch.setenv("ASTROKIT_S3_ANON", "1")
    store = open_store(bucket)
    assert store.fs.anon is True
    store.fs.connect()
    signed = []

    def record(request, **_):
        signed.append("Authorization" in request.headers)

    store.fs.s3.meta.events.register("before-send.s3", record)
    # objects are private until the bucket is made public: an unsigned read is refused
    with pytest.raises(StorePermissionError, match=r"b\.fits: permission denied"):
        store.read_bytes(store.join("shared/spectra/b.fits"))
    # Publish the bucket as a public dataset is published: a bucket policy letting anyone
    # list it and read its objects.
    public = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": "*",
                "Action": ["s3:GetObject", "s3:ListBucket"],
                "Resource": [f"arn:aws:s3:::{bucket[5:]}", f"arn:aws:s3:::{bucket[5:]}/*"],
            }
        ],
    }
    writer.fs.call_s3("put_bucket_policy", Bucket=bucket[5:], Policy=json.dumps(public))
    page = store.list_page(store.join("shared/spectra"))
    assert [(e.name, e.size) for e in page.entries] == [("a.fits", 11), ("b.fits", 11)]
    assert store.read_bytes(store.join("shared/spectra/b.fits")) == b"SIMPLE  = F"
    assert store.read_bytes(store.join("shared/spectra/a.fits"), 0, 6) == b"SIMPLE"
    assert signed and not any(signed), signed  # every request went out unsigned

    # the same through explicit storage_options (a notebook user pointing at a public bucket)
    explicit = open_store(
        bucket, storage_options={"anon": True, "client_kwargs": {"endpoint_url": s3_server}}
    )
    assert [e.name for e in explicit.list_page(explicit.join("shared/spectra")).entries] == [
        "a.fits", "b.fits",
    ]  # fmt: skip


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
def test_secrets_never_in_repr_or_logs(make_bucket, s3_server, s3_identities, caplog,
                                      monkeypatch):  # fmt: skip
    user = s3_identities["redaction"]
    monkeypatch.setenv("ASTROKIT_S3_ENDPOINT", s3_server)
    caplog.set_level(logging.DEBUG, logger="astrokit")
    bucket = make_bucket()
    store = open_store(bucket, storage_options={"key": user.key, "secret": user.secret})
    store.write_bytes(store.join("users/x/a.bin"), b"a")
    store.list_page(store.join("users/x"))
    assert s3_server in repr(store)
    for text in (repr(store), str(store), caplog.text):
        assert user.secret not in text
        assert user.key not in text


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


def test_local_walk_reads_the_directory_in_bounded_scans(tmp_path, monkeypatch):
    # iter_entries reads a local directory LOCAL_SCAN_NAMES names per scan; made small here,
    # the walk crosses several scans, directories included, and loses or repeats nothing.
    import astrokit.store as store_module

    monkeypatch.setattr(store_module, "LOCAL_SCAN_NAMES", 4)
    d = tmp_path / "walk"
    d.mkdir()
    files = [f"f{i:02d}.fits" for i in range(13)]
    for name in files:
        (d / name).write_bytes(b"abc")
    (d / "f05.fits-dir").mkdir()  # sorts between files by its token "f05.fits-dir/"
    (d / f"{store_module.TMP_PREFIX}partial").touch()  # an unfinished write: never listed
    store = open_store(f"file://{tmp_path}")
    scans = []
    real = store_module._smallest_keys
    monkeypatch.setattr(store_module, "_smallest_keys", lambda *a: scans.append(a) or real(*a))
    walked = list(store.iter_entries(store.join("walk")))
    assert [e.name for e in walked] == sorted([*files, "f05.fits-dir"])
    assert {e.name: e.kind for e in walked}["f05.fits-dir"] == "directory"
    assert {e.size for e in walked if e.kind == "file"} == {3}
    assert len(scans) == 4  # 14 entries, 4 per scan: not one scan per page
    fits = list(store.iter_entries(store.join("walk"), pattern="*.fits"))
    assert [e.name for e in fits] == files


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
