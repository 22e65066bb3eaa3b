"""Partitions: one planner that cuts a shard set, FITS files or a catalogue into tasks.

Every distributed step of AstroKit maps one task onto one *partition*, a typed, frozen
description of the rows it handles:

* :class:`ShardRange` -- rows ``[start, stop)`` of one shard of a shard set
  (:mod:`astrokit.shards`; photo-z inference) or of an active-learning pool (scoring);
* :class:`FileGroup` -- a list of FITS cutout files (ingest, inference on raw cutouts);
* :class:`CatalogueRange` -- rows ``[start, stop)`` of one catalogue file
  (:func:`astrokit.catalogue.plan_catalogue`).

Planning is pure apart from listing: :func:`plan_shard_set` (size-based row ranges),
:func:`group_files` (consecutive groups of ``n`` files: ingest's shards),
:func:`group_files_by_size` (groups of about ``n`` bytes), :func:`plan_input` (a shard set or
a directory of FITS files), and :func:`balance` (cut the last wave for the cluster's threads).
Partitions serialise to the JSON dicts of ``plan.json`` (:meth:`Partition.to_dict`,
:func:`from_dict`), unchanged from the dict-based plans of earlier versions so that resumed
runs keep their identity.

:data:`FITS_SUFFIXES` is the one list of file names accepted as FITS cutouts.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, ClassVar, Union

import numpy as np

from astrokit.shards import DEFAULT_PARTITION_MB, Manifest, ShardInfo

__all__ = [
    "DEFAULT_PARTITION_MB",
    "FITS_SUFFIXES",
    "CatalogueRange",
    "FileGroup",
    "Partition",
    "ShardRange",
    "as_partition",
    "balance",
    "from_dict",
    "group_files",
    "group_files_by_size",
    "is_fits_name",
    "list_fits",
    "plan_input",
    "plan_shard_set",
]

#: File names accepted as FITS cutouts (compared lower-case), by ingest and inference alike.
FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fts.gz")


def is_fits_name(name: str) -> bool:
    """True when ``name`` (a file name or URL) ends in one of :data:`FITS_SUFFIXES`."""
    return name.lower().endswith(FITS_SUFFIXES)


def _basename(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


def _bounds(start: int, stop: int, pieces: int) -> list[tuple[int, int]]:
    edges = np.linspace(start, stop, pieces + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in itertools.pairwise(edges)]


class _RowRange:
    """Rows ``[start, stop)`` of one ``source``: what shard and catalogue ranges share."""

    start: int
    stop: int
    source: str

    @property
    def rows(self) -> int:
        return self.stop - self.start

    def expected_keys(self) -> list[tuple[str, int]]:
        """The (source, row) identities this partition must produce."""
        return [(self.source, r) for r in range(self.start, self.stop)]

    def split(self, pieces: int) -> list[Any]:
        """Up to ``pieces`` near-equal row ranges (indices kept; :func:`balance` renumbers)."""
        pieces = max(1, min(pieces, self.rows))
        return [replace(self, start=a, stop=b) for a, b in _bounds(self.start, self.stop, pieces)]


@dataclass(frozen=True)
class ShardRange(_RowRange):
    """Rows ``[start, stop)`` of the shard ``shard`` at ``source_url``.

    ``offset`` is the set's global index of the shard's first row (pools; 0 where unused).
    """

    index: int
    source_url: str
    shard: ShardInfo
    start: int
    stop: int
    offset: int = 0
    kind: ClassVar[str] = "shard"

    @property
    def source(self) -> str:  # type: ignore[override]
        """Name identifying the rows' source (the shard file name)."""
        return self.shard.name

    def to_dict(self) -> dict[str, Any]:
        # ``offset`` stays out: plan.json keeps the layout (and fingerprints) it always had
        return {
            "index": self.index,
            "kind": self.kind,
            "source_url": self.source_url,
            "shard": asdict(self.shard),
            "start": self.start,
            "stop": self.stop,
            "rows": self.rows,
        }


@dataclass(frozen=True)
class FileGroup:
    """A group of files (URLs or names), one row each; ``sizes`` (bytes) when listed."""

    index: int
    files: tuple[str, ...]
    sizes: tuple[int, ...] = field(default=(), compare=False)
    kind: ClassVar[str] = "fits"

    def __post_init__(self) -> None:
        object.__setattr__(self, "files", tuple(self.files))
        object.__setattr__(self, "sizes", tuple(int(s) for s in self.sizes))

    @property
    def rows(self) -> int:
        return len(self.files)

    @property
    def bytes(self) -> int:
        return int(sum(self.sizes))

    def expected_keys(self) -> list[tuple[str, int]]:
        return [(_basename(u), 0) for u in self.files]

    def split(self, pieces: int) -> list[FileGroup]:
        pieces = max(1, min(pieces, self.rows))
        return [
            FileGroup(self.index, self.files[a:b], self.sizes[a:b] if self.sizes else ())
            for a, b in _bounds(0, self.rows, pieces)
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "kind": self.kind,
            "files": list(self.files),
            "rows": self.rows,
        }


@dataclass(frozen=True)
class CatalogueRange(_RowRange):
    """Rows ``[start, stop)`` of one catalogue file (``source`` is its file name)."""

    index: int
    source_url: str
    source: str
    start: int
    stop: int
    kind: ClassVar[str] = "catalogue"

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "kind": self.kind,
            "source_url": self.source_url,
            "source": self.source,
            "start": self.start,
            "stop": self.stop,
            "rows": self.rows,
        }


Partition = Union[ShardRange, FileGroup, CatalogueRange]  # noqa: UP007 (a runtime alias)


def from_dict(doc: Mapping[str, Any]) -> Partition:
    """The partition a ``plan.json`` entry describes."""
    kind = doc.get("kind")
    if kind == "shard":
        s = doc["shard"]
        shard = ShardInfo(str(s["name"]), int(s["rows"]), str(s["sha256"]), int(s["bytes"]))
        return ShardRange(
            int(doc["index"]),
            str(doc["source_url"]),
            shard,
            int(doc["start"]),
            int(doc["stop"]),
        )
    if kind == "fits":
        return FileGroup(int(doc["index"]), tuple(doc["files"]))
    if kind == "catalogue":
        return CatalogueRange(
            int(doc["index"]),
            str(doc["source_url"]),
            str(doc["source"]),
            int(doc["start"]),
            int(doc["stop"]),
        )
    raise ValueError(f"unknown partition kind {kind!r}; expected 'shard', 'fits' or 'catalogue'")


def as_partition(part: Partition | Mapping[str, Any]) -> Partition:
    """``part`` as a typed partition (plan dicts are converted)."""
    if isinstance(part, ShardRange | FileGroup | CatalogueRange):
        return part
    return from_dict(part)


# -- planning --------------------------------------------------------------------------------


def plan_shard_set(
    manifest: Manifest, partition_mb: float | None = DEFAULT_PARTITION_MB
) -> list[ShardRange]:
    """Row ranges of about ``partition_mb`` MB over every non-empty shard of ``manifest``.

    A shard is cut into ``ceil(bytes / target)`` near-equal ranges (one per shard at the
    default size); ``partition_mb=None`` gives one range per shard. ``offset`` is the global
    index of each shard's first row.
    """
    if partition_mb is not None and partition_mb <= 0:
        raise ValueError(f"partition_mb must be > 0, got {partition_mb}")
    parts: list[ShardRange] = []
    offset = 0
    for info in manifest.shards:
        if info.rows == 0:
            continue
        pieces = 1 if partition_mb is None else max(1, math.ceil(info.bytes / (partition_mb * 1e6)))
        url = manifest.shard_url(info)
        for start, stop in _bounds(0, info.rows, min(pieces, info.rows)):
            parts.append(ShardRange(len(parts), url, info, start, stop, offset))
        offset += info.rows
    return parts


def list_fits(store: Any, url: str, *, page_size: int = 1000) -> Iterator[Any]:
    """The FITS file entries directly under ``url``, in name order, listed page by page.

    Raises
    ------
    StoreNotFound
        ``url`` does not exist.
    """
    for entry in store.iter_entries(url, page_size=page_size):
        if entry.kind == "file" and is_fits_name(entry.name):
            yield entry


def group_files(files: Iterable[str | tuple[str, int]], rows: int) -> Iterator[FileGroup]:
    """Consecutive groups of ``rows`` files (names, or ``(name, bytes)`` pairs); group ``i``
    is partition ``i``.

    Groups are yielded as soon as they are full, so a caller can submit work while the
    listing goes on.
    """
    if rows < 1:
        raise ValueError(f"rows per group must be >= 1, got {rows}")
    names: list[str] = []
    nbytes: list[int] = []
    index = 0
    for item in files:
        name, size = (item, 0) if isinstance(item, str) else item
        names.append(name)
        nbytes.append(int(size))
        if len(names) == rows:
            yield FileGroup(index, tuple(names), tuple(nbytes))
            index += 1
            names, nbytes = [], []
    if names:
        yield FileGroup(index, tuple(names), tuple(nbytes))


def group_files_by_size(entries: Iterable[Any], target_bytes: float) -> list[FileGroup]:
    """Groups of consecutive file entries of about ``target_bytes`` (by URL)."""
    parts: list[FileGroup] = []
    group: list[str] = []
    sizes: list[int] = []
    total = 0
    for entry in entries:
        group.append(entry.url)
        sizes.append(int(entry.size or 0))
        total += entry.size or 0
        if total >= target_bytes:
            parts.append(FileGroup(len(parts), tuple(group), tuple(sizes)))
            group, sizes, total = [], [], 0
    if group:
        parts.append(FileGroup(len(parts), tuple(group), tuple(sizes)))
    return parts


def is_shard_set(data_url: str, store: Any = None) -> bool:
    """True when ``data_url`` is (or names the manifest of) a shard set."""
    from astrokit.shards import MANIFEST_NAME
    from astrokit.store import resolve

    st, url = resolve(data_url, store)
    return url.endswith("/" + MANIFEST_NAME) or st.exists(f"{url.rstrip('/')}/{MANIFEST_NAME}")


def plan_input(
    data_url: str, *, partition_mb: float = DEFAULT_PARTITION_MB, store: Any = None
) -> tuple[str, list[Partition]]:
    """``("shards", ranges)`` for a shard set, ``("fits", groups)`` for a directory of FITS.

    May return an empty list (nothing to do).

    Raises
    ------
    ValueError
        ``partition_mb`` <= 0.
    StoreNotFound
        ``data_url`` is neither a shard set nor an existing directory.
    """
    if partition_mb <= 0:
        raise ValueError(f"partition_mb must be > 0, got {partition_mb}")
    if is_shard_set(data_url, store):
        return "shards", list(plan_shard_set(Manifest.load(data_url, store=store), partition_mb))
    from astrokit.store import resolve

    st, url = resolve(data_url, store)
    return "fits", list(group_files_by_size(list_fits(st, url), partition_mb * 1e6))


def balance(partitions: Sequence[Partition], slots: int) -> list[Partition]:
    """Cut the last wave of tasks so that it spreads over ``slots`` worker threads.

    ``n`` size-based partitions on ``slots`` threads run in ``ceil(n / slots)`` waves; when
    ``n`` is not a multiple of ``slots`` the last wave leaves threads idle while one of them
    finishes a whole partition (17 x 25 MB on 2 workers: one worker does 9, the other 8 and
    then waits, ~6 % of the run). Each of the last ``n % slots`` partitions is therefore cut
    into ``slots`` pieces, which the scheduler hands out last (tasks run roughly in
    submission order), so every thread finishes at about the same time. With fewer
    partitions than threads (a small data set) this cuts them all, so no worker sits idle.
    Partitions keep their order; indices are renumbered.
    """
    slots = int(slots)
    parts = list(partitions)
    if slots <= 1 or not parts:
        return parts
    rest = len(parts) % slots
    out = parts[: len(parts) - rest]
    for part in parts[len(parts) - rest :]:
        out.extend(part.split(slots))
    return [p if p.index == i else replace(p, index=i) for i, p in enumerate(out)]
