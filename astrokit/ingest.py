"""Ingest: many FITS cutouts (the KASI case: millions of files) -> ~25 MB shards for ML.

Plan (on the client, cheap): list the source prefix page by page (never whole), keep FITS
names sorted, and cut the list into consecutive groups of ``rows_per_shard(partition_mb)``
files; group ``i`` becomes ``shard-<i>.npz``. Names are therefore deterministic from the
sorted input list.

Work (on the Dask cluster, one named task per shard, ``ingest-shard-NNNNN-<run>``): read each
file with :func:`astrokit.formats.read_cutout`, skip bad ones with the reason, write the shard
atomically, then a small sidecar ``_ingest/shard-NNNNN.json`` (inputs digest, shard info, bad
files). Workers open the store from the URL and the environment, so no secret travels in the
task graph.

Resume: a task whose sidecar has the same inputs digest and whose shard's sha256 still
matches is skipped (it reports the recorded result without reading inputs again).

Accounting: ``files == good_rows + len(bad)`` is checked at the end, always; a violation
raises :class:`IngestError`. The report (``ingest_report.json``) and ``manifest.json`` are
written last, atomically.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from astrokit.errors import UserError
from astrokit.shards import (
    DEFAULT_PARTITION_MB,
    Manifest,
    ShardInfo,
    rows_per_shard,
    shard_name,
    write_shard,
)
from astrokit.store import Store, StoreError, StoreNotFound, open_store, resolve

log = logging.getLogger(__name__)

FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz")
STATE_DIR = "_ingest"
REPORT_NAME = "ingest_report.json"


class IngestError(UserError):
    """The ingest could not run, or its row accounting does not add up."""


@dataclass(frozen=True)
class StoreSpec:
    """How a worker re-opens the store: URL and endpoint only (credentials from its env).

    The shared area and whether it may be written travel too: the worker writes the shards,
    so it must refuse (or, for the platform's seeding, allow) exactly what the caller's
    store does, whatever ``ASTROKIT_SHARED_URL`` says in the worker's environment.
    """

    url: str
    endpoint: str | None = None
    anon: bool = False
    shared_url: str | None = None
    allow_shared_writes: bool = False

    @classmethod
    def of(cls, store: Store) -> StoreSpec:
        """The spec of an open store (secrets are deliberately left out)."""
        anon = bool(getattr(store.fs, "anon", False))
        return cls(
            store.url,
            store.endpoint,
            anon,
            shared_url=store.shared_url,
            allow_shared_writes=store.allow_shared_writes,
        )

    def open(self) -> Store:
        """Open the store on a worker."""
        opts: dict[str, Any] = {}
        if self.endpoint:
            opts["client_kwargs"] = {"endpoint_url": self.endpoint}
        if self.anon:
            opts["anon"] = True
        return open_store(
            self.url,
            storage_options=opts or None,
            shared_url=self.shared_url,
            allow_shared_writes=self.allow_shared_writes,
        )


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


def list_inputs(
    store: Store, src_url: str, *, page_size: int = 1000
) -> tuple[list[str], list[int]]:
    """Sorted FITS file names (one level) under ``src_url`` and their sizes, paged."""
    names: list[str] = []
    sizes: list[int] = []
    for entry in store.iter_entries(src_url, page_size=page_size):
        if entry.kind == "file" and entry.name.lower().endswith(FITS_SUFFIXES):
            names.append(entry.name)
            sizes.append(int(entry.size or 0))
    order = np.argsort(names, kind="stable")  # listing is sorted already; be explicit
    return [names[i] for i in order], [sizes[i] for i in order]


def plan_groups(names: list[str], rows: int) -> list[list[str]]:
    """Consecutive groups of ``rows`` names; group i -> shard i (pure)."""
    if rows < 1:
        raise ValueError(f"rows per shard must be >= 1, got {rows}")
    return [names[i : i + rows] for i in range(0, len(names), rows)]


def inputs_digest(names: list[str], shape: tuple[int, int], max_nan_fraction: float) -> str:
    """Identity of a shard's inputs and reading options (resume key)."""
    h = hashlib.sha256()
    h.update(json.dumps([list(shape), max_nan_fraction]).encode())
    for n in names:
        h.update(n.encode())
        h.update(b"\n")
    return h.hexdigest()


def build_shard(
    spec: StoreSpec,
    src_url: str,
    dst_url: str,
    index: int,
    names: list[str],
    sizes: list[int],
    shape: tuple[int, int],
    max_nan_fraction: float,
) -> ShardResult:
    """Task body: read one group of cutouts and write one shard (or reuse a finished one)."""
    from astrokit.formats import FormatError, read_cutout
    from astrokit.shards import shard_checksum

    store = spec.open()
    name = shard_name(index)
    digest = inputs_digest(names, shape, max_nan_fraction)
    sidecar = f"{dst_url}/{STATE_DIR}/{name.removesuffix('.npz')}.json"
    shard_url = f"{dst_url}/{name}"
    done = _load_sidecar(store, sidecar)
    if done is not None and done.get("inputs") == digest:
        info = ShardInfo(**done["info"]) if done.get("info") else None
        if info is None or shard_checksum(shard_url, store) == info.sha256:
            bad = [BadFile(**b) for b in done.get("bad", [])]
            return ShardResult(name, info, len(names), bad, skipped=True)

    h, w = shape
    images = np.empty((len(names), 5, h, w), np.float32)
    mags = np.empty((len(names), 5), np.float32)
    z = np.empty(len(names), np.float32)
    ids: list[str] = []
    bad: list[BadFile] = []
    bytes_in = 0
    for fname, size in zip(names, sizes, strict=True):
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
    n = len(ids)
    info = None
    if n:
        arrays = {
            "images": images[:n],
            "mags": mags[:n],
            "ids": np.array(ids, dtype=str),
            "z": z[:n],
        }
        info = write_shard(shard_url, arrays, store=store)
    doc = {
        "inputs": digest,
        "info": asdict(info) if info else None,
        "bad": [asdict(b) for b in bad],
    }
    store.write_bytes(sidecar, json.dumps(doc).encode())
    return ShardResult(name, info, len(names), bad, skipped=False, bytes_in=bytes_in)


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
    page_size: int = 1000,
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
        Listing page size.

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
    try:
        names, sizes = list_inputs(store, src_url, page_size=page_size)
    except StoreNotFound as exc:
        raise IngestError(f"{src_url}: source prefix does not exist") from exc
    if not names:
        raise IngestError(f"{src_url}: no FITS files ({', '.join(FITS_SUFFIXES)}) to ingest")
    rows = rows_per_shard(partition_mb, (5, *shape))
    groups = plan_groups(names, rows)
    log.info(
        "ingest %s -> %s: %d files in %d shards of <= %d rows",
        src_url, dst_url, len(names), len(groups), rows,
    )  # fmt: skip
    spec = StoreSpec.of(store)
    run = uuid.uuid4().hex[:8]
    results: dict[int, ShardResult] = {}
    offset = 0
    with client_or_local(client) as cl:
        n_workers = len(cl.scheduler_info().get("workers", {}))
        futures = {}
        for i, group in enumerate(groups):
            fut = cl.submit(
                build_shard,
                spec, src_url, dst_url, i, group, sizes[offset : offset + len(group)],
                tuple(shape), max_nan_fraction,
                key=f"ingest-shard-{i:05d}-{run}", pure=False, retries=1,
            )  # fmt: skip
            futures[fut] = i
            offset += len(group)
        for fut in as_completed(futures):
            i = futures[fut]
            try:
                results[i] = fut.result()
            except Exception as exc:
                # a whole task failed (e.g. the store is unreachable): nothing of this group
                # was written, so every file of it is reported, not lost
                log.error("shard %d failed: %s", i, exc)
                lost = [
                    BadFile(n, type(exc).__name__, f"shard task failed: {exc}") for n in groups[i]
                ]
                results[i] = ShardResult(shard_name(i), None, len(groups[i]), lost, skipped=False)
            r = results[i]
            log.info(
                "%s %s: %d rows, %d bad",
                "reused" if r.skipped else "wrote", r.name,
                r.info.rows if r.info else 0, len(r.bad),
            )  # fmt: skip

    ordered = [results[i] for i in range(len(groups))]
    infos = [r.info for r in ordered if r.info is not None]
    bad = [b for r in ordered for b in r.bad]
    good = sum(i.rows for i in infos)
    if good + len(bad) != len(names):
        raise IngestError(
            f"row accounting failed: {len(names)} files in, {good} rows out + {len(bad)} bad"
        )
    manifest = Manifest(
        shards=infos,
        meta={
            "source": src_url,
            "partition_mb": partition_mb,
            "image_shape": [5, *shape],
            "files": len(names),
            "bad_files": len(bad),
            "report": REPORT_NAME,
        },
    )
    manifest_url = manifest.save(dst_url, store)
    bytes_in = int(sum(sizes))
    report = IngestReport(
        src=src_url,
        dst=dst_url,
        files=len(names),
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
        extra={"workers": n_workers},
    )
    store.write_bytes(report.report_url, report.to_json().encode())
    log.info(
        "ingest done: %d rows, %d bad files, %d shards (%d reused) in %.1f s (%.0f files/s)",
        good, len(bad), report.shards, report.shards_skipped, report.seconds, report.files_per_s,
    )  # fmt: skip
    return report
