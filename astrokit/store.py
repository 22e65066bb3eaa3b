"""The object store: one API over ``file://`` directories and ``s3://`` buckets.

Every path in AstroKit is an fsspec URL. The store's layout, set by the spawner through the
environment (:mod:`astrokit.env`), is::

    <root>/shared/...        read-only survey area (ASTROKIT_SHARED_URL)
    <root>/users/<name>/...  the user's own prefix (ASTROKIT_USER_URL)

Three properties matter and are guaranteed here rather than left to each caller:

* **Writes are atomic.** Local files are written to a hidden temporary name
  (``.tmp-<name>-<random>``) in the target directory and moved into place with
  :func:`os.replace`, so a crash leaves either the old file or the new one, never half a file
  under the final name. On S3 an object becomes visible only when its ``PutObject`` or
  ``CompleteMultipartUpload`` succeeds, which is atomic by the protocol; an aborted write is
  discarded (the multipart upload is aborted). Listing hides ``.tmp-`` names.
* **Listing is paged, one level at a time** (:meth:`Store.list_page`): a prefix with 100,000
  objects is never pulled into memory whole (fsspec's ``ls`` on S3 would).
* **Secrets stay secret**: ``repr``, ``str`` and log lines name the URL and endpoint only.

Writes under the shared area raise :class:`ReadOnlyAreaError`.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import heapq
import io
import logging
import os
import posixpath
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any
from urllib.parse import unquote, urlsplit

import fsspec

from astrokit import env
from astrokit.errors import UserError

log = logging.getLogger(__name__)

#: Prefix of temporary names used by atomic writes; never a finished file, hidden by listing.
TMP_PREFIX = ".tmp-"
#: Default page size of :meth:`Store.list_page`.
DEFAULT_PAGE = 200
#: Names one scan of a local directory holds while :meth:`Store.iter_entries` walks it
#: (about 100 bytes each: a few MB at most, whatever the directory's size).
LOCAL_SCAN_NAMES = 50_000
# Highest code point: appended to "dir/" it sorts after every key under dir/ (S3 keys compare as
# UTF-8 bytes, which orders like code points), so listing resumes *after* a whole sub-prefix.
_AFTER_ALL = "\U0010ffff"


class StoreError(UserError):
    """Base class of object-store errors."""


class StoreNotFound(StoreError, FileNotFoundError):
    """The URL names nothing in the store."""


class StorePermissionError(StoreError, PermissionError):
    """The store refused the operation (credentials valid, but not allowed)."""


class ReadOnlyAreaError(StorePermissionError):
    """A write was attempted under the read-only shared survey area."""


class StoreCredentialsError(StoreError):
    """No usable credentials for the store (missing or rejected keys)."""


@dataclass
class Entry:
    """One listing entry.

    Attributes
    ----------
    url : str
        Full URL of the entry (directories without a trailing slash).
    name : str
        Last path component.
    kind : str
        ``"file"`` or ``"directory"``.
    size : int or None
        Size in bytes for files, None for directories.
    modified : datetime or None
        Last modification time (UTC) when the backend reports one.
    """

    url: str
    name: str
    kind: str
    size: int | None
    modified: datetime | None


@dataclass
class Page:
    """One page of a listing: ``entries`` sorted by name; ``next_after`` is None on the last."""

    entries: list[Entry]
    next_after: str | None


def _split(url: str) -> tuple[str, str]:
    """Return (protocol, path without protocol, no trailing slash) for a URL or local path."""
    parts = urlsplit(url)
    if parts.scheme in ("", "file") or len(parts.scheme) == 1:  # 1 char: a Windows drive
        path = unquote(parts.path) if parts.scheme == "file" else url
        path = os.path.abspath(os.path.expanduser(path))
        return "file", path
    if parts.scheme in ("s3", "s3a"):
        path = (parts.netloc + parts.path).rstrip("/")
        if not parts.netloc:
            raise StoreError(f"S3 URL {url!r} has no bucket; expected s3://bucket[/prefix]")
        return "s3", path
    raise StoreError(f"unsupported store URL {url!r}; expected file:///path or s3://bucket/prefix")


def _to_url(protocol: str, path: str) -> str:
    return f"file://{path}" if protocol == "file" else f"s3://{path}"


def _token(entry: Entry) -> str:
    """Resume token for ``after``: the name, with ``/`` for directories."""
    return entry.name + "/" if entry.kind == "directory" else entry.name


def _smallest_keys(path: str, limit: int, after: str | None, pattern: str | None) -> list[str]:
    """The ``limit`` smallest resume tokens above ``after`` in directory ``path``, sorted.

    One :func:`os.scandir` pass through a heap bounded by ``limit``: memory O(limit) however
    large the directory. The token (the name, with ``/`` for directories) is also the sort
    key, which gives the order S3 lists in.
    """

    def keys() -> Iterator[str]:
        with os.scandir(path) as it:
            for d in it:
                name = d.name
                if name.startswith(TMP_PREFIX):
                    continue
                if pattern is not None and not fnmatch.fnmatchcase(name, pattern):
                    continue
                try:
                    key = name + "/" if d.is_dir() else name
                except OSError:
                    continue
                if after is None or key > after:
                    yield key

    return heapq.nsmallest(limit, keys())


def _local_entry(path: str, key: str) -> Entry | None:
    """The entry for resume token ``key`` in ``path``; None if it was removed meanwhile."""
    name = key.removesuffix("/")
    full = os.path.join(path, name)
    try:
        st = os.stat(full)
    except FileNotFoundError:
        return None
    is_dir = key.endswith("/")
    return Entry(
        url=_to_url("file", full),
        name=name,
        kind="directory" if is_dir else "file",
        size=None if is_dir else st.st_size,
        modified=datetime.fromtimestamp(st.st_mtime, tz=UTC),
    )


def _start_after(token: str) -> str:
    # After a directory "d/", start after every key under it; after a file, after the file.
    return token + _AFTER_ALL if token.endswith("/") else token


def _is_under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _s3_options_from_env(storage_options: dict | None) -> dict:
    """s3fs options: explicit storage_options win over the spawner's environment."""
    opts: dict[str, Any] = {}
    endpoint = os.environ.get(env.S3_ENDPOINT)
    if endpoint:
        opts["client_kwargs"] = {"endpoint_url": endpoint}
    if os.environ.get(env.S3_ANON, "").strip().lower() in ("1", "true", "yes"):
        opts["anon"] = True
    # AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY are read by botocore itself; not copied here
    # so that they never sit in an object we might log.
    for key, value in (storage_options or {}).items():
        if key == "client_kwargs" and isinstance(value, dict):
            opts["client_kwargs"] = {**opts.get("client_kwargs", {}), **value}
        else:
            opts[key] = value
    return opts


# Environment variables botocore reads credentials from. s3fs caches filesystem instances by
# their constructor arguments only, so a store opened after these change would silently reuse
# a client holding the old credentials; we key our own cache on a digest of them as well.
_CREDENTIAL_VARS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CONFIG_FILE",
)
_S3_FILESYSTEMS: dict[tuple[str, str], Any] = {}


def _s3_filesystem(opts: dict) -> Any:
    """An s3fs filesystem for ``opts``, reused while the environment's credentials stay the same."""
    import s3fs  # lab/ml extra: imported only when an s3:// store is used
    from fsspec.utils import tokenize

    creds = "\0".join(os.environ.get(k, "") for k in _CREDENTIAL_VARS)
    key = (tokenize(opts), hashlib.sha256(creds.encode()).hexdigest())
    fs = _S3_FILESYSTEMS.get(key)
    if fs is None:
        fs = _S3_FILESYSTEMS[key] = s3fs.S3FileSystem(skip_instance_cache=True, **opts)
    return fs


def _fsync(path: str, url: str) -> None:
    """Flush one local file or folder to disk; errors name ``url``."""
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise _translate(exc, url) from exc


def _translate(exc: BaseException, url: str) -> StoreError:
    """Map backend exceptions onto our typed errors (the caller raises ``from exc``)."""
    name = type(exc).__name__
    if isinstance(exc, StoreError):
        return exc
    if isinstance(exc, FileNotFoundError):
        return StoreNotFound(f"{url}: no such file or directory in the store")
    if name in ("NoCredentialsError", "PartialCredentialsError") or "InvalidAccessKeyId" in str(
        exc
    ):
        return StoreCredentialsError(
            f"{url}: no valid S3 credentials (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
            f"or {env.S3_ANON}=1 for a public bucket)"
        )
    if isinstance(exc, PermissionError) or "AccessDenied" in str(exc):
        if "SignatureDoesNotMatch" in str(exc):
            return StoreCredentialsError(f"{url}: S3 rejected the secret key")
        return StorePermissionError(f"{url}: permission denied by the store")
    return StoreError(f"{url}: {name}: {exc}")


class Store:
    """A store root (``file://`` or ``s3://``) with shared and per-user areas.

    Use :func:`open_store` to build one. Methods take full URLs under any root the backend can
    reach, or paths relative to :attr:`url`.

    Attributes
    ----------
    url : str
        Root URL.
    fs : fsspec.AbstractFileSystem
        The underlying filesystem (for reading with other libraries).
    shared_url : str
        The read-only survey area.
    user_url : str or None
        The user's writable prefix when known.
    """

    def __init__(
        self,
        url: str,
        fs: fsspec.AbstractFileSystem,
        *,
        shared_url: str | None = None,
        user_url: str | None = None,
        endpoint: str | None = None,
        allow_shared_writes: bool = False,
    ) -> None:
        self.protocol, self._root = _split(url)
        self.url = _to_url(self.protocol, self._root)
        self.fs = fs
        self.shared_url = self._norm(shared_url) if shared_url else self.join("shared")
        self.user_url = self._norm(user_url) if user_url else None
        self._shared_path = _split(self.shared_url)[1]
        self.endpoint = endpoint
        self.allow_shared_writes = allow_shared_writes

    # -- naming -------------------------------------------------------------------------------
    def __repr__(self) -> str:
        # Only non-secret fields: URL and endpoint (never keys or storage options).
        extra = f", endpoint={self.endpoint!r}" if self.endpoint else ""
        return f"Store({self.url!r}{extra})"

    __str__ = __repr__

    def _norm(self, url: str) -> str:
        return _to_url(*self._resolve(url))

    def _resolve(self, url: str) -> tuple[str, str]:
        """(protocol, backend path) for a full URL or a path relative to the root."""
        if "://" not in url and not os.path.isabs(url):
            return self.protocol, posixpath.join(self._root, url).rstrip("/")
        protocol, path = _split(url)
        if protocol != self.protocol:
            raise StoreError(f"{url!r} is not on this store's backend ({self.url})")
        return protocol, path

    def _path(self, url: str) -> str:
        return self._resolve(url)[1]

    def join(self, *parts: str) -> str:
        """URL under the root made of ``parts`` (each may contain ``/``)."""
        clean = [p.strip("/") for p in parts if p and p.strip("/")]
        return _to_url(self.protocol, posixpath.join(self._root, *clean))

    def is_shared(self, url: str) -> bool:
        """True when ``url`` lies in the read-only shared area."""
        return _is_under(self._path(url), self._shared_path)

    def _check_writable(self, url: str) -> str:
        path = self._path(url)
        if _is_under(path, self._shared_path) and not self.allow_shared_writes:
            raise ReadOnlyAreaError(
                f"{self._norm(url)} is in the read-only shared area ({self.shared_url}); "
                f"write under your own prefix ({self.user_url or self.join('users', '<name>')})"
            )
        return path

    # -- listing ------------------------------------------------------------------------------
    def list_page(
        self,
        url: str,
        *,
        limit: int = DEFAULT_PAGE,
        after: str | None = None,
        pattern: str | None = None,
    ) -> Page:
        """List one level of ``url``, one page at a time, sorted by name.

        Parameters
        ----------
        url : str
            Directory (prefix) to list.
        limit : int
            Maximum entries in the page.
        after : str, optional
            Where to resume: the previous page's ``next_after`` (the last entry's name, with a
            trailing ``/`` when it was a directory, so that S3 skips the whole sub-prefix).
        pattern : str, optional
            ``fnmatch`` pattern on names (e.g. ``"*.fits"``); directories must match too.

        Returns
        -------
        Page
            ``next_after`` is None when this is the last page.

        Notes
        -----
        S3 uses ``ListObjectsV2`` with ``Delimiter="/"``, ``MaxKeys=limit`` and ``StartAfter``,
        so memory and work per page are O(limit). Local directories are streamed with
        :func:`os.scandir` through a heap bounded by ``limit``: memory is O(limit), but each
        page scans the whole directory, so paging through n entries costs O(n^2 / limit)
        directory reads -- the price of not materialising huge directories.
        """
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        try:
            if self.protocol == "s3":
                return self._list_page_s3(url, limit, after, pattern)
            return self._list_page_local(url, limit, after, pattern)
        except StoreError:
            raise
        except Exception as exc:
            raise _translate(exc, self._norm(url)) from exc

    def iter_entries(
        self, url: str, *, pattern: str | None = None, page_size: int = 1000
    ) -> Iterator[Entry]:
        """Yield every entry one level under ``url``, fetching ``page_size`` at a time.

        A local directory is read in scans of up to :data:`LOCAL_SCAN_NAMES` names instead
        (names only, a few MB), each entry stat'ed as it is yielded: every scan reads the
        whole directory, so paging it ``page_size`` at a time would cost ``n / page_size``
        full reads (20 for 20,000 files; client CPU an ingest's workers compete with).
        """
        after = None
        if self.protocol != "s3":
            path = self._local_dir(url)
            while True:
                keys = _smallest_keys(path, LOCAL_SCAN_NAMES + 1, after, pattern)
                for key in keys[:LOCAL_SCAN_NAMES]:
                    entry = _local_entry(path, key)
                    if entry is not None:
                        yield entry
                if len(keys) <= LOCAL_SCAN_NAMES:
                    return
                after = keys[LOCAL_SCAN_NAMES - 1]
        while True:
            page = self.list_page(url, limit=page_size, after=after, pattern=pattern)
            yield from page.entries
            if page.next_after is None:
                return
            after = page.next_after

    def _local_dir(self, url: str) -> str:
        path = self._path(url)
        if not os.path.isdir(path):
            if os.path.exists(path):
                raise StoreError(f"{self._norm(url)} is a file, not a directory")
            raise StoreNotFound(f"{self._norm(url)}: no such directory in the store")
        return path

    def _list_page_local(
        self, url: str, limit: int, after: str | None, pattern: str | None
    ) -> Page:
        path = self._local_dir(url)
        # one more than asked for tells us whether another page exists
        keys = _smallest_keys(path, limit + 1, after, pattern)
        more = len(keys) > limit
        entries = [e for e in (_local_entry(path, k) for k in keys[:limit]) if e is not None]
        return Page(entries, _token(entries[-1]) if more and entries else None)

    def _list_page_s3(self, url: str, limit: int, after: str | None, pattern: str | None) -> Page:
        path = self._path(url)
        bucket, _, key = path.partition("/")
        prefix = f"{key}/" if key else ""
        entries: list[Entry] = []
        start = prefix + _start_after(after) if after else None
        last_name = None
        while len(entries) < limit:
            kwargs: dict[str, Any] = {
                "Bucket": bucket,
                "Prefix": prefix,
                "Delimiter": "/",
                # with a pattern, ask for more per round trip: most keys may not match
                "MaxKeys": min(1000, limit - len(entries) if pattern is None else 1000),
            }
            if start:
                kwargs["StartAfter"] = start
            resp = self.fs.call_s3("list_objects_v2", **kwargs)
            items: list[tuple[str, Entry]] = []
            for cp in resp.get("CommonPrefixes", []):
                name = cp["Prefix"][len(prefix) :].rstrip("/")
                ent = Entry(
                    _to_url("s3", f"{bucket}/{prefix}{name}"), name, "directory", None, None
                )
                items.append((name, ent))
            for obj in resp.get("Contents", []):
                name = obj["Key"][len(prefix) :]
                if not name:  # the "directory marker" object of the prefix itself
                    continue
                ent = Entry(
                    _to_url("s3", f"{bucket}/{obj['Key']}"),
                    name,
                    "file",
                    int(obj["Size"]),
                    obj.get("LastModified"),
                )
                items.append((name, ent))
            items.sort(key=lambda t: _token(t[1]))  # key order, as S3 itself sorts
            for name, ent in items:
                last_name = name
                if name.startswith(TMP_PREFIX):
                    continue
                if pattern is not None and not fnmatch.fnmatchcase(name, pattern):
                    continue
                if len(entries) == limit:  # a matching entry remains: there is a next page
                    return Page(entries, _token(entries[-1]))
                entries.append(ent)
            truncated = bool(resp.get("IsTruncated"))
            if not truncated or last_name is None:
                if not entries and not items and prefix and not self._s3_prefix_exists(path):
                    raise StoreNotFound(f"{self._norm(url)}: no such prefix in the store")
                return Page(entries, None)
            start = prefix + _start_after(_token(items[-1][1]))
        return Page(entries, _token(entries[-1]) if entries else None)

    def _s3_prefix_exists(self, path: str) -> bool:
        bucket, _, key = path.partition("/")
        resp = self.fs.call_s3("list_objects_v2", Bucket=bucket, Prefix=key + "/", MaxKeys=1)
        return bool(resp.get("KeyCount", 0))

    def info(self, url: str) -> Entry:
        """Return the :class:`Entry` for ``url`` (file or directory)."""
        path = self._path(url)
        try:
            if self.protocol == "file":
                st = os.stat(path)
                is_dir = os.path.isdir(path)
                return Entry(
                    _to_url("file", path),
                    os.path.basename(path),
                    "directory" if is_dir else "file",
                    None if is_dir else st.st_size,
                    datetime.fromtimestamp(st.st_mtime, tz=UTC),
                )
            raw = self.fs.info(path)
        except Exception as exc:
            raise _translate(exc, self._norm(url)) from exc
        kind = "directory" if raw.get("type") == "directory" else "file"
        modified = raw.get("LastModified")
        return Entry(
            _to_url("s3", path),
            posixpath.basename(path),
            kind,
            int(raw["size"]) if kind == "file" and raw.get("size") is not None else None,
            modified if isinstance(modified, datetime) else None,
        )

    def exists(self, url: str) -> bool:
        """True when ``url`` names a file or a non-empty prefix/directory."""
        try:
            self.info(url)
        except StoreNotFound:
            return False
        return True

    # -- reading ------------------------------------------------------------------------------
    def open(self, url: str, mode: str = "rb", *, block_size: int | None = None) -> IO:
        """Open ``url`` for reading (``"rb"`` or ``"r"``); use :meth:`atomic_open` to write.

        ``block_size`` sets the read-ahead of remote files: s3fs defaults to 50 MiB, far too
        much for reading a FITS header; callers that read a few blocks pass e.g. 64 KiB.
        """
        if mode not in ("rb", "r"):
            raise ValueError(f"Store.open is read-only (mode 'rb' or 'r'), got {mode!r}")
        path = self._path(url)
        try:
            if self.protocol == "file":
                return open(path, mode)
            if block_size is not None:
                return self.fs.open(path, mode, block_size=block_size)
            return self.fs.open(path, mode)
        except Exception as exc:
            raise _translate(exc, self._norm(url)) from exc

    def read_bytes(self, url: str, start: int | None = None, end: int | None = None) -> bytes:
        """Read ``[start, end)`` of a file (the whole file by default)."""
        path = self._path(url)
        try:
            if self.protocol == "file":
                with open(path, "rb") as fh:
                    if start:
                        fh.seek(start)
                    if end is None:
                        return fh.read()
                    return fh.read(max(0, end - (start or 0)))
            return self.fs.cat_file(path, start=start, end=end)
        except Exception as exc:
            raise _translate(exc, self._norm(url)) from exc

    # -- writing ------------------------------------------------------------------------------
    def write_bytes(self, url: str, data: bytes, *, durable: bool = True) -> None:
        """Write ``data`` to ``url`` atomically (refuses the shared area).

        On S3 this is one ``PutObject`` (a multipart upload above s3fs's threshold), which the
        protocol makes atomic: readers see the old object or the whole new one. For
        ``durable`` see :meth:`atomic_open`.
        """
        if self.protocol == "file":
            with self.atomic_open(url, "wb", durable=durable) as fh:
                fh.write(data)
            return
        path = self._check_writable(url)
        try:
            self.fs.pipe_file(path, data)
        except Exception as exc:
            raise _translate(exc, self._norm(url)) from exc
        finally:
            self.fs.invalidate_cache(path)
        log.debug("wrote %s (%d bytes)", self._norm(url), len(data))

    @contextlib.contextmanager
    def atomic_open(self, url: str, mode: str = "wb", *, durable: bool = True) -> Iterator[IO]:
        """Context manager yielding a writable file that appears at ``url`` only on success.

        If the block raises, nothing is left under ``url`` (any previous content stays) and no
        temporary file remains. A local file is flushed to disk before it appears
        (``durable``). ``durable=False`` skips that wait -- the file still appears whole or
        not at all, but a power loss may lose its content -- for a writer that will call
        :meth:`make_durable` on it later, off its critical path (ingest's shards: a shard
        task that waits for the disk leaves its core idle). Objects on S3 are durable either
        way.
        """
        if mode not in ("wb", "w"):
            raise ValueError(f"atomic_open writes new files (mode 'wb' or 'w'), got {mode!r}")
        path = self._check_writable(url)
        if self.protocol == "file":
            yield from self._atomic_local(path, mode, durable)
        else:
            yield from self._atomic_s3(path, mode)
        log.debug("wrote %s", _to_url(self.protocol, path))

    def _atomic_local(self, path: str, mode: str, durable: bool) -> Iterator[IO]:
        directory, name = os.path.split(path)
        os.makedirs(directory, exist_ok=True)
        tmp = os.path.join(directory, f"{TMP_PREFIX}{name}-{uuid.uuid4().hex[:12]}")
        try:
            with open(tmp, mode) as fh:
                yield fh
                fh.flush()
                if durable:
                    os.fsync(fh.fileno())  # data on disk before the rename makes it visible
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp)
            raise

    def _atomic_s3(self, path: str, mode: str) -> Iterator[IO]:
        try:
            raw = self.fs.open(path, "wb", autocommit=False)
        except Exception as exc:
            raise _translate(exc, _to_url("s3", path)) from exc
        fh: IO = io.TextIOWrapper(raw, encoding="utf-8") if mode == "w" else raw
        try:
            yield fh
            fh.flush()
            raw.close()
            raw.commit()  # CompleteMultipartUpload: the object appears whole, atomically
        except BaseException as exc:
            with contextlib.suppress(Exception):
                raw.discard()  # abort the multipart upload: nothing becomes visible
            # Mark it closed: otherwise its finaliser later tries to flush the discarded
            # buffer through s3fs's event loop, which can hang interpreter shutdown.
            raw.closed = True
            backend = type(exc).__module__.startswith(("botocore", "s3fs", "aiobotocore"))
            if backend and isinstance(exc, Exception) and not isinstance(exc, StoreError):
                raise _translate(exc, _to_url("s3", path)) from exc
            raise
        finally:
            self.fs.invalidate_cache(path)

    def make_durable(self, urls: Iterable[str]) -> None:
        """Flush local files written with ``durable=False`` to disk, then their folders.

        Each file is fsync'ed, then each folder holding one (which makes the renames that
        published them survive a power loss). On S3 there is nothing to do: an object is
        stored durably when its upload returns.

        Raises
        ------
        StoreNotFound, StoreError
            A file is missing or the disk reported an error; the message names the file.
        """
        if self.protocol != "file":
            return
        folders: dict[str, None] = {}
        for url in urls:
            path = self._path(url)
            _fsync(path, self._norm(url))
            folders[os.path.dirname(path)] = None
        for folder in folders:
            _fsync(folder, _to_url("file", folder))

    def makedirs(self, url: str) -> None:
        """Create a directory.

        On S3, which has no directories, this writes an empty ``prefix/`` marker object (as the
        AWS console's "create folder" does) so that an empty prefix can be listed; listing
        never shows the marker itself.
        """
        path = self._check_writable(url)
        try:
            if self.protocol == "file":
                os.makedirs(path, exist_ok=True)
            elif "/" in path:
                bucket, _, key = path.partition("/")
                self.fs.call_s3("put_object", Bucket=bucket, Key=key + "/", Body=b"")
                self.fs.invalidate_cache(path)
        except Exception as exc:
            raise _translate(exc, self._norm(url)) from exc

    def remove(self, url: str) -> None:
        """Delete one file (refuses the shared area)."""
        path = self._check_writable(url)
        try:
            if self.protocol == "file":
                os.remove(path)
            else:
                self.fs.rm_file(path)
                self.fs.invalidate_cache(path)
        except Exception as exc:
            raise _translate(exc, self._norm(url)) from exc


def open_store(
    url: str | None = None,
    *,
    storage_options: dict | None = None,
    shared_url: str | None = None,
    user_url: str | None = None,
    allow_shared_writes: bool = False,
) -> Store:
    """Open the store at ``url`` (default: ``$ASTROKIT_STORE_URL``).

    Parameters
    ----------
    url : str, optional
        ``file:///path``, a local path, or ``s3://bucket[/prefix]``.
    storage_options : dict, optional
        Extra s3fs options (``key``, ``secret``, ``client_kwargs={"endpoint_url": ...}``,
        ``anon``). Unset ones come from ``ASTROKIT_S3_ENDPOINT``, ``ASTROKIT_S3_ANON`` and the
        standard ``AWS_*`` variables.
    shared_url, user_url : str, optional
        Override ``ASTROKIT_SHARED_URL`` / ``ASTROKIT_USER_URL`` (default shared area:
        ``<url>/shared``).
    allow_shared_writes : bool
        For the platform's own seeding tools only (``astrokit platform prepare``): lift the
        read-only rule of the shared area. User-facing code never sets it.

    Returns
    -------
    Store

    Raises
    ------
    StoreError
        When no URL is given and ``ASTROKIT_STORE_URL`` is unset, or the URL is unsupported.
    """
    if url is None:
        url = os.environ.get(env.STORE_URL)
        if not url:
            raise StoreError(
                f"no store URL given and {env.STORE_URL} is not set "
                "(expected file:///path or s3://bucket)"
            )
    protocol, _ = _split(url)
    shared = shared_url or os.environ.get(env.SHARED_URL) or None
    user = user_url or os.environ.get(env.USER_URL) or None
    endpoint = None
    if protocol == "file":
        fs = fsspec.filesystem("file")
    else:
        opts = _s3_options_from_env(storage_options)
        endpoint = opts.get("client_kwargs", {}).get("endpoint_url")
        fs = _s3_filesystem(opts)
    root = _to_url(*_split(url))
    # the environment's areas apply only when they belong to this root
    if shared and not _is_under(_split(shared)[1], _split(root)[1]):
        shared = None
    if user and not _is_under(_split(user)[1], _split(root)[1]):
        user = None
    store = Store(
        url,
        fs,
        shared_url=shared,
        user_url=user,
        endpoint=endpoint,
        allow_shared_writes=allow_shared_writes,
    )
    log.debug("opened %r", store)
    return store


def resolve(url: str, store: Store | None = None) -> tuple[Store, str]:
    """(store, url) for a URL, opening a store rooted at it when ``store`` is None.

    Helper for functions that take ``url, store=None``: a bare local path or a ``file://`` URL
    needs no configured store; an ``s3://`` URL uses the environment's endpoint/credentials.
    """
    if store is not None:
        return store, store._norm(url)
    env_url = os.environ.get(env.STORE_URL)
    if env_url and "://" in url:
        try:
            env_store = open_store(env_url)
            if _split(url)[0] == env_store.protocol:
                return env_store, env_store._norm(url)
        except StoreError:
            pass
    protocol, path = _split(url)
    if protocol == "file":
        return open_store("file:///"), _to_url("file", path)
    bucket = path.split("/", 1)[0]
    st = open_store(f"s3://{bucket}")
    return st, _to_url("s3", path)
