"""Shard sets: image stacks for ML as ~25 MB ``.npz`` files plus a checksummed manifest.

A shard set is a directory URL holding (the photo-z layout; the active-learning pools of
:mod:`astrokit.active.pool` are shard sets of another schema, written and verified through
:func:`write_arrays` / :func:`read_arrays` here)::

    manifest.json        {"format": "astrokit-shards", "version": 1, "total_rows": ...,
                          "shards": [{"name", "rows", "sha256", "bytes"}, ...], ...}
    shard-00000.npz      uncompressed npz: images (N,5,H,W) f32, mags (N,5) f32,
    shard-00001.npz      ids (N,) str, z (N,) f32 (NaN where unknown)
    ...

Uncompressed ``.npz`` keeps reads a single sequential GET plus a memory copy (survey images
compress poorly anyway) and needs nothing but numpy on the workers. Each shard and the
manifest are written atomically (:meth:`astrokit.store.Store.atomic_open`). The default size of
about 25 MB follows the CAI paper's Lambda partitions: large enough to amortise a request and a
task, small enough for many tasks per worker.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import zipfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from astrokit.store import Store, StoreError, StoreNotFound, resolve

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "astrokit-shards"
MANIFEST_VERSION = 1
#: Default shard size in MB (10^6 bytes), as in CAI's 25 MB partitions.
DEFAULT_PARTITION_MB = 25.0
#: Arrays every shard holds.
REQUIRED_ARRAYS = ("images", "mags", "ids", "z")


class ShardError(StoreError):
    """A shard or manifest is missing, malformed or fails its checksum."""


class ChecksumMismatch(ShardError):
    """A shard's bytes do not match the sha256 recorded in the manifest."""


@dataclass(frozen=True)
class ShardInfo:
    """One manifest entry: file ``name`` (relative to the set), ``rows``, ``sha256``, ``bytes``."""

    name: str
    rows: int
    sha256: str
    bytes: int


def shard_name(index: int) -> str:
    """Deterministic shard file name for position ``index`` (``shard-00042.npz``)."""
    return f"shard-{index:05d}.npz"


def row_bytes(image_shape: tuple[int, ...] = (5, 32, 32), id_chars: int = 32) -> int:
    """Approximate bytes one row takes in a shard (image + 5 mags + z + fixed-width id)."""
    return int(np.prod(image_shape)) * 4 + 5 * 4 + 4 + id_chars * 4


def rows_per_shard(
    partition_mb: float = DEFAULT_PARTITION_MB,
    image_shape: tuple[int, ...] = (5, 32, 32),
    id_chars: int = 32,
) -> int:
    """Rows that make a shard of about ``partition_mb`` MB (at least 1)."""
    if partition_mb <= 0:
        raise ValueError(f"partition_mb must be > 0, got {partition_mb}")
    return max(1, int(partition_mb * 1e6 // row_bytes(image_shape, id_chars)))


def validate_arrays(arrays: dict[str, np.ndarray], where: str = "shard") -> int:
    """Check the shard schema; return the row count.

    Raises
    ------
    ShardError
        Naming the array and the expected shape/dtype.
    """
    missing = [k for k in REQUIRED_ARRAYS if k not in arrays]
    if missing:
        raise ShardError(f"{where}: missing arrays {missing}; a shard needs {REQUIRED_ARRAYS}")
    images = np.asarray(arrays["images"])
    if images.ndim != 4 or images.shape[1] != 5 or images.dtype != np.float32:
        raise ShardError(
            f"{where}: images has shape {images.shape} dtype {images.dtype}; "
            "expected (N, 5, H, W) float32"
        )
    n = images.shape[0]
    mags = np.asarray(arrays["mags"])
    if mags.shape != (n, 5) or mags.dtype != np.float32:
        raise ShardError(
            f"{where}: mags has shape {mags.shape} dtype {mags.dtype}; expected ({n}, 5) float32"
        )
    ids = np.asarray(arrays["ids"])
    if ids.shape != (n,) or ids.dtype.kind != "U":
        raise ShardError(
            f"{where}: ids has shape {ids.shape} dtype {ids.dtype}; expected ({n},) str"
        )
    z = np.asarray(arrays["z"])
    if z.shape != (n,) or z.dtype != np.float32:
        raise ShardError(f"{where}: z has shape {z.shape} dtype {z.dtype}; expected ({n},) float32")
    for key, value in arrays.items():
        if key not in REQUIRED_ARRAYS and (np.ndim(value) == 0 or len(value) != n):
            raise ShardError(f"{where}: extra array {key!r} must have {n} rows")
    return n


def encode_arrays(arrays: dict[str, np.ndarray]) -> bytes:
    """Serialise arrays of any schema to uncompressed ``.npz`` bytes (no pickles)."""
    buf = io.BytesIO()
    np.savez(buf, **{k: np.ascontiguousarray(v) for k, v in arrays.items()})
    return buf.getvalue()


def encode_shard(arrays: dict[str, np.ndarray]) -> bytes:
    """Serialise validated arrays to uncompressed ``.npz`` bytes (no pickles)."""
    validate_arrays(arrays)
    return encode_arrays(arrays)


def decode_arrays(
    data: bytes, where: str = "shard", keys: Iterable[str] | None = None
) -> dict[str, np.ndarray]:
    """Parse ``.npz`` bytes into arrays (only ``keys`` when given), without a schema check."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            wanted = npz.files if keys is None else [k for k in keys if k in npz.files]
            return {k: npz[k] for k in wanted}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as exc:
        raise ShardError(f"{where}: not a readable .npz shard ({exc})") from exc


def decode_shard(data: bytes, where: str = "shard") -> dict[str, np.ndarray]:
    """Parse ``.npz`` bytes into arrays, validating the schema."""
    arrays = decode_arrays(data, where)
    validate_arrays(arrays, where)
    return arrays


def write_arrays(
    url: str,
    arrays: dict[str, np.ndarray],
    store: Store | None = None,
    *,
    rows: int | None = None,
    durable: bool = True,
) -> ShardInfo:
    """Write one ``.npz`` file of any schema atomically and return its manifest entry.

    The writing half of every shard set (photo-z shards, active-learning pools): the entry's
    sha256 is what :func:`read_arrays` verifies. ``rows`` defaults to the first array's length.
    ``durable=False``: see :meth:`astrokit.store.Store.atomic_open`.
    """
    store, url = resolve(url, store)
    data = encode_arrays(arrays)
    store.write_bytes(url, data, durable=durable)
    if rows is None:
        rows = len(next(iter(arrays.values()))) if arrays else 0
    info = ShardInfo(url.rstrip("/").rsplit("/", 1)[-1], int(rows), _sha256(data), len(data))
    log.debug("wrote shard %s (%d rows, %d bytes)", url, info.rows, len(data))
    return info


def read_arrays(
    url: str,
    store: Store | None = None,
    *,
    expect: ShardInfo | None = None,
    keys: Iterable[str] | None = None,
) -> dict[str, np.ndarray]:
    """Read one ``.npz`` file of any schema, verified against its manifest entry.

    The reading half of every shard set. With ``expect`` the bytes must match its sha256
    (:class:`ChecksumMismatch` otherwise) and every array read must have its row count.

    Raises
    ------
    StoreNotFound
        The file does not exist.
    ShardError
        Unreadable file, checksum or row-count mismatch.
    """
    store, url = resolve(url, store)
    data = store.read_bytes(url)
    if expect is not None:
        digest = _sha256(data)
        if digest != expect.sha256:
            raise ChecksumMismatch(
                f"{url}: sha256 {digest[:12]}... does not match manifest {expect.sha256[:12]}..."
            )
    arrays = decode_arrays(data, url, keys)
    if expect is not None:
        for key, value in arrays.items():
            if np.ndim(value) and len(value) != expect.rows:
                raise ShardError(f"{url}: {key} has {len(value)} rows, manifest says {expect.rows}")
    return arrays


def write_shard(
    url: str, arrays: dict[str, np.ndarray], store: Store | None = None, *, durable: bool = True
) -> ShardInfo:
    """Write one photo-z shard atomically and return its manifest entry.

    Parameters
    ----------
    url : str
        Shard file URL (its last component becomes :attr:`ShardInfo.name`).
    arrays : dict
        ``images``, ``mags``, ``ids``, ``z`` (+ optional extra per-row arrays).
    store : Store, optional
        Store to write through; default: resolved from the URL.
    durable : bool
        False: the caller makes the file durable later (:meth:`Store.make_durable`).
    """
    rows = validate_arrays(arrays, url)
    return write_arrays(url, arrays, store, rows=rows, durable=durable)


def read_shard(
    url: str, store: Store | None = None, *, expect: ShardInfo | None = None
) -> dict[str, np.ndarray]:
    """Read one photo-z shard into a dict of arrays.

    Parameters
    ----------
    url : str
        Shard file URL.
    store : Store, optional
        Store to read through; default: resolved from the URL.
    expect : ShardInfo, optional
        When given, the bytes are checked against its sha256 and row count.

    Raises
    ------
    ShardError
        Unreadable file, wrong schema, or (with ``expect``) a checksum/row mismatch.
    """
    arrays = read_arrays(url, store, expect=expect)
    validate_arrays(arrays, url)
    return arrays


def shard_checksum(url: str, store: Store | None = None) -> str | None:
    """sha256 of a stored shard, or None when it does not exist."""
    store, url = resolve(url, store)
    try:
        return _sha256(store.read_bytes(url))
    except StoreNotFound:
        return None


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Manifest:
    """The index of a shard set.

    Attributes
    ----------
    shards : list of ShardInfo
        In order; row ``i`` of the set is found by walking the shards.
    url : str or None
        The shard set's directory URL (set by :meth:`load`/:meth:`save`).
    meta : dict
        Free-form provenance (source URL, partition size, image shape, bad-file count...).
    """

    shards: list[ShardInfo] = field(default_factory=list)
    url: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def total_rows(self) -> int:
        """Rows across all shards."""
        return sum(s.rows for s in self.shards)

    @property
    def total_bytes(self) -> int:
        """Bytes across all shards."""
        return sum(s.bytes for s in self.shards)

    def shard_url(self, shard: ShardInfo | str) -> str:
        """Full URL of a shard of this set."""
        if self.url is None:
            raise ShardError("manifest has no url; load() or save() it first")
        name = shard.name if isinstance(shard, ShardInfo) else shard
        return f"{self.url.rstrip('/')}/{name}"

    def to_json(self) -> str:
        """The manifest document (``manifest.json``)."""
        doc = {
            "format": MANIFEST_FORMAT,
            "version": MANIFEST_VERSION,
            "total_rows": self.total_rows,
            "total_bytes": self.total_bytes,
            "meta": self.meta,
            "shards": [asdict(s) for s in self.shards],
        }
        return json.dumps(doc, indent=1, sort_keys=False)

    @classmethod
    def from_json(cls, text: str | bytes, url: str | None = None) -> Manifest:
        """Parse a manifest document; ``url`` is the set's directory."""
        where = url or "manifest"
        try:
            doc = json.loads(text)
            if doc.get("format") != MANIFEST_FORMAT:
                raise ShardError(
                    f"{where}: format {doc.get('format')!r}, expected {MANIFEST_FORMAT!r}"
                )
            if int(doc.get("version", 0)) > MANIFEST_VERSION:
                raise ShardError(
                    f"{where}: manifest version {doc['version']} is newer than this "
                    f"AstroKit understands ({MANIFEST_VERSION})"
                )
            shards = [
                ShardInfo(str(s["name"]), int(s["rows"]), str(s["sha256"]), int(s["bytes"]))
                for s in doc["shards"]
            ]
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ShardError(f"{where}: malformed {MANIFEST_NAME} ({exc})") from exc
        manifest = cls(shards=shards, url=url, meta=dict(doc.get("meta") or {}))
        if "total_rows" in doc and int(doc["total_rows"]) != manifest.total_rows:
            raise ShardError(
                f"{where}: total_rows {doc['total_rows']} != sum of shard rows "
                f"{manifest.total_rows}"
            )
        return manifest

    @classmethod
    def load(cls, url: str, store: Store | None = None) -> Manifest:
        """Load ``<url>/manifest.json`` (``url`` may also name the manifest file itself)."""
        store, url = resolve(url, store)
        set_url = url[: -len(MANIFEST_NAME) - 1] if url.endswith("/" + MANIFEST_NAME) else url
        try:
            text = store.read_bytes(f"{set_url.rstrip('/')}/{MANIFEST_NAME}")
        except StoreNotFound as exc:
            raise ShardError(f"{set_url}: no {MANIFEST_NAME}; not a shard set") from exc
        return cls.from_json(text, set_url)

    def save(self, url: str | None = None, store: Store | None = None) -> str:
        """Write ``manifest.json`` atomically under ``url`` (default: :attr:`url`)."""
        url = url or self.url
        if url is None:
            raise ShardError("Manifest.save needs a url")
        store, url = resolve(url, store)
        self.url = url
        target = f"{url.rstrip('/')}/{MANIFEST_NAME}"
        store.write_bytes(target, self.to_json().encode())
        return target

    def verify(self, store: Store | None = None) -> list[str]:
        """Check every shard's checksum; return a list of problems (empty when all good)."""
        problems = []
        for s in self.shards:
            digest = shard_checksum(self.shard_url(s), store)
            if digest is None:
                problems.append(f"{s.name}: missing")
            elif digest != s.sha256:
                problems.append(f"{s.name}: checksum mismatch")
        return problems
