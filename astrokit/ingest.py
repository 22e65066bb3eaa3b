"""Ingest: many FITS cutouts (the KASI case: millions of files) -> ~25 MB shards for ML.

Plan (on the client, cheap): list the source prefix page by page (never whole; names in
:data:`astrokit.partitions.FITS_SUFFIXES`), and cut the sorted list into consecutive groups of
``rows_per_shard(partition_mb)`` files (:func:`astrokit.partitions.group_files`); group ``i``
becomes ``shard-<i>.npz``. Names are therefore deterministic from the sorted input list,
whatever the cluster.

Work (on the Dask cluster, one named task per shard, ``ingest-shard-NNNNN-<run>``): read each
file with :func:`astrokit.formats.read_cutout`, skip bad ones with the reason, write the shard
atomically, then a small sidecar ``_ingest/shard-NNNNN.json`` (inputs digest, shard info, bad
files). Workers open the store from a :class:`astrokit.workers.StoreSpec` and their
environment, so no secret travels in the task graph.

Scaling: the listing is streamed -- a group's task is submitted as soon as its names are
listed, so workers start while the client still lists. The last wave is balanced: the final
``groups % threads`` groups are each read by one task per worker thread
(``ingest-read-NNNNN-k-<run>``) and written by one more (the shard's own key), so no worker
idles while another reads a whole last shard (17 shards on 2 workers would otherwise run in 9
waves, not 8.5). The shards are the same either way.

Resume: a task whose sidecar has the same inputs digest and whose shard's sha256 still
matches is skipped (it reports the recorded result without reading inputs again).

Durability: a shard task publishes its shard and sidecar atomically (rename) but does not
wait for the disk; the client fsyncs each task's files in a thread as its result arrives,
while the workers go on reading. Measured on the 2-core machine, waiting in the task left
each worker's core idle for ~0.5 s per 20,000 files, and two workers waited on the same disk
at once, so it cost the 2-worker run more than the 1-worker one. The manifest is written
only once every file it names is on disk; a crash before that leaves at worst a shard whose
checksum no longer matches its sidecar, which the next run redoes.

Accounting: ``files == good_rows + len(bad)`` is checked at the end, always; a violation
raises :class:`IngestError`. The report (``ingest_report.json``) and ``manifest.json`` are
written last, atomically.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from astrokit.errors import UserError
from astrokit.partitions import FITS_SUFFIXES, FileGroup, group_files, list_fits
from astrokit.shards import (
    DEFAULT_PARTITION_MB,
    Manifest,
    ShardInfo,
    rows_per_shard,
    shard_name,
    write_shard,
)
from astrokit.store import Store, StoreError, StoreNotFound, resolve
from astrokit.workers import StoreSpec, open_task_store, task_store

log = logging.getLogger(__name__)

__all__ = ["FITS_SUFFIXES", "IngestError", "IngestReport", "StoreSpec", "ingest", "plan_groups"]

STATE_DIR = "_ingest"
REPORT_NAME = "ingest_report.json"
#: Listing page size. A local directory is scanned whole for every page, so pages much
#: larger than S3's 1000 keep the client's listing (serial work, before and between tasks)
#: cheap; memory stays bounded by one page either way.
DEFAULT_PAGE_SIZE = 10_000


class IngestError(UserError):
    """The ingest could not run, or its row accounting does not add up."""


@dataclass
class BadFile:
    """A skipped input file and why."""

    file: str
    error: str
    reason: str


@dataclass
class ShardResult:
    """What one shard task did."""

    name: str
    info: ShardInfo | None
    files: int
    bad: list[BadFile]
    skipped: bool
    bytes_in: int = 0


@dataclass
class IngestReport:
    """Summary of an ingest run (also written as ``ingest_report.json``)."""

    src: str
    dst: str
    files: int
    good_rows: int
    bad: list[BadFile]
    shards: int
    shards_written: int
    shards_skipped: int
    bytes_in: int
    bytes_out: int
    seconds: float
    partition_mb: float
    manifest_url: str
    report_url: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def files_per_s(self) -> float:
        """Input files per second of wall time."""
        return self.files / self.seconds if self.seconds > 0 else float("nan")

    @property
    def mb_per_s(self) -> float:
        """Input MB (10^6 bytes) per second of wall time."""
        return self.bytes_in / 1e6 / self.seconds if self.seconds > 0 else float("nan")

    def to_json(self) -> str:
        """The report document."""
        doc = asdict(self)
        doc["files_per_s"] = self.files_per_s
        doc["mb_per_s"] = self.mb_per_s
        return json.dumps(doc, indent=1, default=str)


def plan_groups(names: list[str], rows: int) -> list[list[str]]:
    """Consecutive groups of ``rows`` names; group i -> shard i (pure)."""
    return [list(g.files) for g in group_files(names, rows)]


def inputs_digest(names: Sequence[str], shape: tuple[int, int], max_nan_fraction: float) -> str:
    """Identity of a shard's inputs and reading options (resume key)."""
    h = hashlib.sha256()
    h.update(json.dumps([list(shape), max_nan_fraction]).encode())
    for n in names:
        h.update(n.encode())
        h.update(b"\n")
    return h.hexdigest()


def _sidecar_url(dst_url: str, index: int) -> str:
    return f"{dst_url}/{STATE_DIR}/{shard_name(index).removesuffix('.npz')}.json"


def _reuse(
    store: Store, dst_url: str, group: FileGroup, shape: tuple[int, int], max_nan_fraction: float
) -> ShardResult | None:
    """The recorded result of a finished shard with the same inputs, None when it must be made."""
    from astrokit.shards import shard_checksum

    done = _load_sidecar(store, _sidecar_url(dst_url, group.index))
    if done is None or done.get("inputs") != inputs_digest(group.files, shape, max_nan_fraction):
        return None
    name = shard_name(group.index)
    info = ShardInfo(**done["info"]) if done.get("info") else None
    if info is not None and shard_checksum(f"{dst_url}/{name}", store) != info.sha256:
        return None
    bad = [BadFile(**b) for b in done.get("bad", [])]
    return ShardResult(name, info, group.rows, bad, skipped=True)


@dataclass
class Cutouts:
    """The readable cutouts of (part of) a group, and the files that were not."""

    images: np.ndarray
    mags: np.ndarray
    z: np.ndarray
    ids: list[str]
    bad: list[BadFile]
    bytes_in: int


def read_cutouts(
    spec: StoreSpec | None,
    src_url: str,
    group: FileGroup,
    shape: tuple[int, int],
    max_nan_fraction: float,
) -> Cutouts:
    """Task body: read a group's cutouts, skipping bad ones with the reason."""
    from astrokit.formats import FormatError, read_cutout

    store = open_task_store(spec)
    h, w = shape
    n = group.rows
    images = np.empty((n, 5, h, w), np.float32)
    mags = np.empty((n, 5), np.float32)
    z = np.empty(n, np.float32)
    ids: list[str] = []
    bad: list[BadFile] = []
    bytes_in = 0
    sizes = group.sizes or (0,) * n
    for fname, size in zip(group.files, sizes, strict=True):
        url = f"{src_url}/{fname}"
        try:
            cut = read_cutout(url, store=store, shape=shape, max_nan_fraction=max_nan_fraction)
        except (FormatError, StoreError) as exc:
            bad.append(BadFile(fname, type(exc).__name__, str(exc)))
            continue
        except Exception as exc:  # a reader bug must not sink the other files of the shard
            log.warning("unexpected error reading %s", url, exc_info=True)
            bad.append(BadFile(fname, type(exc).__name__, f"{url}: {exc}"))
            continue
        k = len(ids)
        images[k] = cut.image
        mags[k] = cut.magnitudes
        z[k] = np.nan if cut.redshift is None else cut.redshift
        ids.append(cut.id)
        bytes_in += size
    k = len(ids)
    return Cutouts(images[:k], mags[:k], z[:k], ids, bad, bytes_in)


def write_group(
    spec: StoreSpec | None,
    dst_url: str,
    group: FileGroup,
    shape: tuple[int, int],
    max_nan_fraction: float,
    *pieces: Cutouts,
) -> ShardResult:
    """Task body: write one shard from the cutouts read for its group, then its sidecar."""
    store = open_task_store(spec) or resolve(dst_url)[0]
    name = shard_name(group.index)
    ids = [i for p in pieces for i in p.ids]
    bad = [b for p in pieces for b in p.bad]
    info = None
    if ids:
        one = len(pieces) == 1
        arrays = {
            "images": pieces[0].images if one else np.concatenate([p.images for p in pieces]),
            "mags": pieces[0].mags if one else np.concatenate([p.mags for p in pieces]),
            "ids": np.array(ids, dtype=str),
            "z": pieces[0].z if one else np.concatenate([p.z for p in pieces]),
        }
        # not flushed here: the client does it while this worker reads on (module docstring)
        info = write_shard(f"{dst_url}/{name}", arrays, store=store, durable=False)
    doc = {
        "inputs": inputs_digest(group.files, shape, max_nan_fraction),
        "info": asdict(info) if info else None,
        "bad": [asdict(b) for b in bad],
    }
    store.write_bytes(_sidecar_url(dst_url, group.index), json.dumps(doc).encode(), durable=False)
    bytes_in = sum(p.bytes_in for p in pieces)
    return ShardResult(name, info, group.rows, bad, skipped=False, bytes_in=bytes_in)


def build_shard(
    spec: StoreSpec | None,
    src_url: str,
    dst_url: str,
    group: FileGroup,
    shape: tuple[int, int],
    max_nan_fraction: float,
) -> ShardResult:
    """Task body: read one group of cutouts and write one shard (or reuse a finished one)."""
    store = open_task_store(spec) or resolve(dst_url)[0]
    done = _reuse(store, dst_url, group, shape, max_nan_fraction)
    if done is not None:
        return done
    cutouts = read_cutouts(spec, src_url, group, shape, max_nan_fraction)
    return write_group(spec, dst_url, group, shape, max_nan_fraction, cutouts)


def _named(first: Any, rest: Iterator[Any], counted: dict[str, int]) -> Iterator[tuple[str, int]]:
    """(name, bytes) of the listing's entries (``first`` then ``rest``), counting them."""
    for entry in itertools.chain([first], rest):
        size = int(entry.size or 0)
        counted["files"] += 1
        counted["bytes"] += size
        yield entry.name, size


def _load_sidecar(store: Store, url: str) -> dict | None:
    try:
        return json.loads(store.read_bytes(url))
    except StoreNotFound:
        return None
    except (ValueError, StoreError):
        return None  # unreadable state: redo the shard


def ingest(
    src_url: str,
    dst_url: str,
    *,
    partition_mb: float = DEFAULT_PARTITION_MB,
    client: Any = None,
    store: Store | None = None,
    shape: tuple[int, int] = (32, 32),
    max_nan_fraction: float = 0.25,
    page_size: int = DEFAULT_PAGE_SIZE,
) -> IngestReport:
    """Turn the FITS cutouts directly under ``src_url`` into a shard set at ``dst_url``.

    Parameters
    ----------
    src_url : str
        Prefix holding ``*.fits`` / ``*.fits.gz`` cutouts (one level).
    dst_url : str
        Destination shard-set directory (``manifest.json``, ``shard-NNNNN.npz``, report).
    partition_mb : float
        Target shard size in MB (default 25, as CAI's partitions).
    client : distributed.Client, optional
        Cluster to run on; default :func:`astrokit.cluster.client_or_local`.
    store : Store, optional
        Store holding both URLs; default: resolved from ``src_url``.
    shape : (int, int)
        Required cutout image shape; others are reported as bad.
    max_nan_fraction : float
        Passed to :func:`astrokit.formats.read_cutout`.
    page_size : int
        Listing page size (the listing is streamed: shard tasks start while it goes on).

    Returns
    -------
    IngestReport

    Raises
    ------
    IngestError
        No input files, or the accounting ``files == good_rows + bad`` fails.
    """
    from distributed import as_completed

    from astrokit.cluster import client_or_local

    t0 = time.perf_counter()
    store, src_url = resolve(src_url, store)
    dst_url = store._norm(dst_url).rstrip("/")
    src_url = src_url.rstrip("/")
    store._check_writable(dst_url + "/x")  # fail fast, before any work, on a read-only target
    rows = rows_per_shard(partition_mb, (5, *shape))
    listing = list_fits(store, src_url, page_size=page_size)
    try:
        first = next(listing, None)  # the first page, before any cluster is started
    except StoreNotFound as exc:
        raise IngestError(f"{src_url}: source prefix does not exist") from exc
    if first is None:
        raise IngestError(f"{src_url}: no FITS files ({', '.join(FITS_SUFFIXES)}) to ingest")
    spec = task_store(store)
    run = uuid.uuid4().hex[:8]
    results: dict[int, ShardResult] = {}
    groups: list[FileGroup] = []
    counted = {"files": 0, "bytes": 0}
    flushes: list[tuple[int, Future]] = []

    def flush(index: int, result: ShardResult) -> None:
        """Have ``result``'s files (written or reused) fsync'ed while the workers go on."""
        files = [_sidecar_url(dst_url, index)]
        if result.info is not None:
            files.insert(0, f"{dst_url}/{result.name}")
        flushes.append((index, flusher.submit(store.make_durable, files)))

    with (
        ThreadPoolExecutor(1, thread_name_prefix="ingest-flush") as flusher,
        client_or_local(client) as cl,
    ):
        workers = cl.scheduler_info().get("workers", {})
        n_workers = len(workers)
        slots = max(1, sum(int(w.get("nthreads", 1)) for w in workers.values()))
        futures: dict[Any, FileGroup] = {}

        def submit(group: FileGroup, pieces: int = 1) -> Any:
            key = f"ingest-shard-{group.index:05d}-{run}"
            args = (group, tuple(shape), max_nan_fraction)
            if pieces <= 1:
                fut = cl.submit(
                    build_shard, spec, src_url, dst_url, *args, key=key, pure=False, retries=1
                )
            else:
                reads = [
                    cl.submit(
                        read_cutouts,
                        spec,
                        src_url,
                        piece,
                        *args[1:],
                        key=f"ingest-read-{group.index:05d}-{k}-{run}",
                        pure=False,
                        retries=1,
                    )
                    for k, piece in enumerate(group.split(pieces))
                ]
                fut = cl.submit(write_group, spec, dst_url, *args, *reads, key=key, pure=False)
            futures[fut] = group
            return fut

        # Shard tasks start while the listing goes on (it is serial work on the client). The
        # last slots-1 groups are held back until the listing ends: the final wave is then
        # known, and each of its groups is read by `slots` tasks (one writer joins them), so
        # that no worker idles while another reads a whole last shard. Those pieces are
        # submitted once every whole shard has started (no more than `slots` pending): sent
        # earlier, the scheduler would hand them out first (small task groups skip its queue).
        held: list[FileGroup] = []
        previous = ""
        for group in group_files(_named(first, listing, counted), rows):
            if group.files[0] < previous:
                raise IngestError(f"{src_url}: the store listed names out of order")
            previous = group.files[-1]
            groups.append(group)
            held.append(group)
            if len(held) >= slots:
                submit(held.pop(0))
        tail = len(groups) % slots if slots > 1 else 0
        last_wave: list[FileGroup] = []
        for k, group in enumerate(held):
            if k < len(held) - tail:
                submit(group)
            elif done := _reuse(store, dst_url, group, shape, max_nan_fraction):
                results[group.index] = done
                flush(group.index, done)  # a crashed run may have left it unflushed
            else:
                last_wave.append(group)
        log.info(
            "ingest %s -> %s: %d files in %d shards of <= %d rows (last %d read in %d pieces)",
            src_url, dst_url, counted["files"], len(groups), rows, tail, slots,
        )  # fmt: skip
        finished = as_completed(list(futures))
        pending = len(futures)

        def start_last_wave() -> None:
            if last_wave and pending <= slots:
                finished.update([submit(g, slots) for g in last_wave])
                last_wave.clear()

        start_last_wave()
        for fut in finished:
            pending -= 1
            start_last_wave()
            group = futures[fut]
            i = group.index
            try:
                results[i] = fut.result()
            except Exception as exc:
                # a whole task failed (e.g. the store is unreachable): nothing of this group
                # was written, so every file of it is reported, not lost
                log.error("shard %d failed: %s", i, exc)
                lost = [
                    BadFile(n, type(exc).__name__, f"shard task failed: {exc}") for n in group.files
                ]
                results[i] = ShardResult(shard_name(i), None, group.rows, lost, skipped=False)
            else:
                flush(i, results[i])
            fut.release()
            r = results[i]
            log.info(
                "%s %s: %d rows, %d bad",
                "reused" if r.skipped else "wrote", r.name,
                r.info.rows if r.info else 0, len(r.bad),
            )  # fmt: skip

        for i, flushed in flushes:
            try:
                flushed.result()
            except StoreError as exc:
                raise IngestError(
                    f"{dst_url}/{shard_name(i)}: could not be flushed to disk ({exc}); "
                    "no manifest was written, run the ingest again to resume"
                ) from exc

    names_total = counted["files"]
    ordered = [results[i] for i in range(len(groups))]
    infos = [r.info for r in ordered if r.info is not None]
    bad = [b for r in ordered for b in r.bad]
    good = sum(i.rows for i in infos)
    if good + len(bad) != names_total:
        raise IngestError(
            f"row accounting failed: {names_total} files in, {good} rows out + {len(bad)} bad"
        )
    manifest = Manifest(
        shards=infos,
        meta={
            "source": src_url,
            "partition_mb": partition_mb,
            "image_shape": [5, *shape],
            "files": names_total,
            "bad_files": len(bad),
            "report": REPORT_NAME,
        },
    )
    manifest_url = manifest.save(dst_url, store)
    bytes_in = int(counted["bytes"])
    report = IngestReport(
        src=src_url,
        dst=dst_url,
        files=names_total,
        good_rows=good,
        bad=bad,
        shards=len(infos),
        shards_written=sum(1 for r in ordered if not r.skipped),
        shards_skipped=sum(1 for r in ordered if r.skipped),
        bytes_in=bytes_in,
        bytes_out=manifest.total_bytes,
        seconds=time.perf_counter() - t0,
        partition_mb=partition_mb,
        manifest_url=manifest_url,
        report_url=f"{dst_url}/{REPORT_NAME}",
        extra={"workers": n_workers, "tail_shards_split": tail},
    )
    store.write_bytes(report.report_url, report.to_json().encode())
    log.info(
        "ingest done: %d rows, %d bad files, %d shards (%d reused) in %.1f s (%.0f files/s)",
        good, len(bad), report.shards, report.shards_skipped, report.seconds, report.files_per_s,
    )  # fmt: skip
    return report
