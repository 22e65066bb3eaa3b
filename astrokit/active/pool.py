"""The unlabelled pool: spectra resampled to one log-wavelength grid, sharded in the store.

A pool is a directory URL holding::

    pool.json          {"format": "astrokit-al-pool", "version": 1, "grid": {...},
                        "classes": [...], "total_rows": N,
                        "shards": [{"name", "rows", "offset", "sha256", "bytes"}, ...], "meta"}
    pool-00000.npz     uncompressed npz: flux (n, L) float32 (normalised, on the grid),
    pool-00001.npz     ids (n,) str, labels (n,) str ("" where unknown; optional)
    ...

Row ``i`` of the pool (its *index*) is row ``i - offset`` of the shard whose range holds it, so
the loop can keep nothing but integer indices, ids and labels in memory, whatever the pool's
size; the spectra themselves are read shard by shard on the Dask workers.

Every spectrum is preprocessed the same way before it is stored (:func:`preprocess`):
interpolated onto the grid using only good pixels, then standardised with its median and
robust scale (1.4826 * MAD), so that lines stand out in units of the noise whatever the
survey's flux calibration. Pixels the spectrum does not cover are 0 (the median).

Builders: :func:`build_pool` (arrays already in memory), :func:`build_pool_from_synthetic`
(the project's synthetic spectra, generated chunk by chunk), :func:`build_pool_from_spectra`
(any files :func:`astrokit.formats.read_spectrum` reads; bad files are skipped and reported).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from astrokit.partitions import ShardRange
from astrokit.shards import DEFAULT_PARTITION_MB, ShardError, ShardInfo, read_arrays, write_arrays
from astrokit.store import Store, StoreError, StoreNotFound, resolve

__all__ = [
    "DEFAULT_GRID",
    "LogGrid",
    "Pool",
    "PoolError",
    "PoolShard",
    "build_pool",
    "build_pool_from_spectra",
    "build_pool_from_synthetic",
    "preprocess",
]

log = logging.getLogger(__name__)

POOL_FORMAT = "astrokit-al-pool"
POOL_VERSION = 1
POOL_MANIFEST = "pool.json"
#: Width in ln(wavelength) of the running-median continuum :func:`preprocess` removes.
DEFAULT_CONTINUUM_WIDTH = 0.075
# Standardised flux is clipped: one cosmic ray or a bad calibration edge must not dominate
# a batch's gradient, and real lines stay well inside this range.
_CLIP = 50.0


class PoolError(StoreError):
    """A pool is missing, malformed, or asked for rows it does not have."""


@dataclass(frozen=True)
class LogGrid:
    """A log-uniform wavelength grid: ``n`` pixels from ``start`` to ``stop`` Angstrom."""

    start: float = 3700.0
    stop: float = 9300.0
    n: int = 1024

    def __post_init__(self) -> None:
        if not (0 < self.start < self.stop) or self.n < 8:
            raise ValueError(
                f"LogGrid needs 0 < start < stop and n >= 8, got {self.start}, {self.stop}, "
                f"{self.n}"
            )

    @property
    def wave(self) -> np.ndarray:
        """Pixel wavelengths in Angstrom, shape ``(n,)``."""
        return np.geomspace(self.start, self.stop, self.n)

    def to_dict(self) -> dict[str, Any]:
        return {"start": self.start, "stop": self.stop, "n": self.n, "unit": "Angstrom"}

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> LogGrid:
        return cls(float(doc["start"]), float(doc["stop"]), int(doc["n"]))


DEFAULT_GRID = LogGrid()


def preprocess(
    wave: np.ndarray,
    flux: np.ndarray,
    grid: LogGrid = DEFAULT_GRID,
    *,
    ivar: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    continuum: float | None = DEFAULT_CONTINUUM_WIDTH,
) -> np.ndarray:
    """Resample spectra onto ``grid``, remove the continuum and standardise them.

    Parameters
    ----------
    wave : ndarray, shape (L,)
        Wavelengths in Angstrom (increasing), shared by all rows.
    flux : ndarray, shape (L,) or (n, L)
    grid : LogGrid
    ivar, mask : ndarray, optional
        Same shape as ``flux``; pixels with ``ivar <= 0`` or ``mask`` True are ignored.
    continuum : float or None
        Width, in ln(wavelength) (0.075 = 22,000 km/s), of the running median taken as the
        continuum and subtracted (None: subtract only the overall median). Removing it
        leaves the lines - what tells the classes apart - in units of the noise, whatever
        the flux calibration, reddening or instrument response; features much wider than
        the window go with it.

    Returns
    -------
    ndarray, float32, shape (grid.n,) or (n, grid.n)
        ``(flux - continuum) / (1.4826 MAD)`` on the grid, 0 where the input has no coverage.
    """
    from scipy.ndimage import median_filter

    wave = np.asarray(wave, dtype=np.float64)
    flux = np.asarray(flux, dtype=np.float64)
    single = flux.ndim == 1
    flux2 = flux[None, :] if single else flux
    if flux2.shape[-1] != wave.shape[-1]:
        raise ValueError(f"preprocess: flux has {flux2.shape[-1]} pixels, wave {wave.shape[-1]}")
    good = np.isfinite(flux2) & np.isfinite(wave)[None, :]
    if ivar is not None:
        good &= np.broadcast_to(np.asarray(ivar) > 0, flux2.shape)
    if mask is not None:
        good &= ~np.broadcast_to(np.asarray(mask, dtype=bool), flux2.shape)
    target = grid.wave
    out = np.zeros((flux2.shape[0], grid.n), dtype=np.float32)
    window = 0
    if continuum:
        # the same width in velocity whatever the grid's sampling; odd, at least 3 pixels
        step = np.log(grid.stop / grid.start) / (grid.n - 1)
        window = max(3, round(float(continuum) / float(step)) // 2 * 2 + 1)
    same_grid = wave.shape == target.shape and np.allclose(wave, target, rtol=1e-9)
    for i in range(flux2.shape[0]):
        ok = good[i]
        if ok.sum() < 2:
            continue  # nothing usable: an all-zero row, the "no information" spectrum
        if same_grid:
            row = np.where(ok, flux2[i], np.nan)
        else:
            w, f = wave[ok], flux2[i, ok]
            row = np.interp(target, w, f, left=np.nan, right=np.nan)
            # gaps wider than a few input pixels (masked stretches) carry no information
            row[(target < w[0]) | (target > w[-1])] = np.nan
        finite = np.isfinite(row)
        if finite.sum() < 2:
            continue
        if window:
            # fill gaps by interpolation so the running median sees no NaN
            idx = np.arange(row.size)
            filled = np.interp(idx, idx[finite], row[finite])
            residual = filled - median_filter(filled, size=window, mode="nearest")
        else:
            residual = row - np.median(row[finite])
        centre = np.median(residual[finite])
        scale = 1.4826 * np.median(np.abs(residual[finite] - centre))
        if not np.isfinite(scale) or scale <= 0:
            scale = np.std(residual[finite]) or 1.0
        row = np.clip((residual - centre) / scale, -_CLIP, _CLIP)
        out[i] = np.where(finite, row, 0.0)
    return out[0] if single else out


@dataclass(frozen=True)
class PoolShard:
    """One shard of a pool: rows ``[offset, offset + rows)`` live in file ``name``."""

    name: str
    rows: int
    offset: int
    sha256: str
    bytes: int

    @property
    def info(self) -> ShardInfo:
        """The entry as :mod:`astrokit.shards` writes and verifies it."""
        return ShardInfo(self.name, self.rows, self.sha256, self.bytes)


@dataclass
class Pool:
    """A pool opened from the store (see the module docstring for the layout).

    Use :meth:`load` to open one. Pools pickle so that Dask tasks can read their own shard;
    :meth:`for_tasks` is the copy to send (its store travels as a
    :class:`~astrokit.workers.StoreSpec`, never with credentials).

    Attributes
    ----------
    url : str
        The pool's directory URL.
    grid : LogGrid
    classes : list of str
        Class names, in the order the model's outputs use.
    shards : list of PoolShard
    meta : dict
        Provenance (builder, seed, skipped files...).
    store : Store
    """

    url: str
    grid: LogGrid
    classes: list[str]
    shards: list[PoolShard]
    meta: dict[str, Any] = field(default_factory=dict)
    store: Store | None = None

    @property
    def total_rows(self) -> int:
        """Number of spectra in the pool."""
        return sum(s.rows for s in self.shards)

    @property
    def has_labels(self) -> bool:
        """Whether the shards carry known labels (simulation pools)."""
        return bool(self.meta.get("has_labels"))

    @property
    def fingerprint(self) -> str:
        """sha256 over the shard checksums: identifies the pool's content for checkpoints."""
        digest = hashlib.sha256()
        for s in self.shards:
            digest.update(s.sha256.encode())
        return digest.hexdigest()[:16]

    @classmethod
    def load(cls, url: str, store: Store | None = None) -> Pool:
        """Open the pool at ``url`` (reads only ``pool.json``)."""
        store, url = resolve(url, store)
        url = url.rstrip("/")
        where = f"{url}/{POOL_MANIFEST}"
        try:
            doc = json.loads(store.read_bytes(where))
        except StoreNotFound as exc:
            raise PoolError(f"{url}: no {POOL_MANIFEST}; not an active-learning pool") from exc
        except json.JSONDecodeError as exc:
            raise PoolError(f"{where}: not JSON ({exc})") from exc
        if not isinstance(doc, dict) or doc.get("format") != POOL_FORMAT:
            got = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
            raise PoolError(f"{where}: format {got!r}, expected {POOL_FORMAT!r}")
        if int(doc.get("version", 0)) > POOL_VERSION:
            raise PoolError(f"{where}: version {doc['version']} is newer than {POOL_VERSION}")
        try:
            shards = [
                PoolShard(**{k: s[k] for k in PoolShard.__annotations__}) for s in doc["shards"]
            ]
            pool = cls(
                url=url,
                grid=LogGrid.from_dict(doc["grid"]),
                classes=[str(c) for c in doc["classes"]],
                shards=shards,
                meta=dict(doc.get("meta") or {}),
                store=store,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise PoolError(f"{where}: malformed pool manifest ({exc})") from exc
        expected = 0
        for s in shards:
            if s.offset != expected:
                raise PoolError(
                    f"{where}: shard {s.name} starts at {s.offset}, expected {expected}"
                )
            expected += s.rows
        if int(doc.get("total_rows", expected)) != expected:
            raise PoolError(f"{where}: total_rows {doc['total_rows']} != sum of shards {expected}")
        return pool

    def to_json(self) -> str:
        """The ``pool.json`` document."""
        return json.dumps(
            {
                "format": POOL_FORMAT,
                "version": POOL_VERSION,
                "grid": self.grid.to_dict(),
                "classes": list(self.classes),
                "total_rows": self.total_rows,
                "meta": self.meta,
                "shards": [asdict(s) for s in self.shards],
            },
            indent=1,
        )

    def _store(self) -> Store:
        from astrokit.workers import open_task_store

        if not isinstance(self.store, Store):
            self.store = open_task_store(self.store) or resolve(self.url)[0]
        return self.store

    def for_tasks(self) -> Pool:
        """A copy to send to Dask tasks: the store as a spec (URL, endpoint; no secrets)."""
        from dataclasses import replace

        from astrokit.workers import task_store

        return replace(self, store=task_store(self.store))

    def shard_url(self, shard: int | PoolShard) -> str:
        """Full URL of a shard (by position or entry)."""
        entry = self.shards[shard] if isinstance(shard, int) else shard
        return f"{self.url}/{entry.name}"

    def read_shard(
        self, shard: int, keys: Iterable[str] = ("flux", "ids")
    ) -> dict[str, np.ndarray]:
        """Read one shard's arrays (only the requested ``keys`` are decoded).

        The bytes are verified against the manifest's sha256 first
        (:func:`astrokit.shards.read_arrays`), so a damaged or replaced shard is an error,
        never silently scored.

        Raises
        ------
        PoolError
            The file is missing, unreadable, fails its checksum, or its rows disagree with the
            manifest.
        """
        entry = self.shards[shard]
        url = self.shard_url(entry)
        keys = tuple(keys)
        try:
            out = read_arrays(url, self._store(), expect=entry.info, keys=keys)
        except StoreNotFound as exc:
            raise PoolError(f"{url}: pool shard missing (listed in {POOL_MANIFEST})") from exc
        except ShardError as exc:
            raise PoolError(f"{url}: not a readable pool shard ({exc})") from exc
        for key in keys:
            if key == "labels" and key not in out:
                out[key] = np.full(entry.rows, "", dtype="<U1")
            elif key not in out:
                raise PoolError(f"{url}: not a readable pool shard (no array {key!r})")
        return out

    def locate(self, indices: Sequence[int] | np.ndarray) -> dict[int, np.ndarray]:
        """Group global ``indices`` by shard: ``{shard position: local rows}``."""
        indices = np.asarray(indices, dtype=np.int64)
        if indices.size and (indices.min() < 0 or indices.max() >= self.total_rows):
            raise PoolError(
                f"{self.url}: index out of range [0, {self.total_rows}): "
                f"{indices.min()}..{indices.max()}"
            )
        offsets = np.array([s.offset for s in self.shards], dtype=np.int64)
        which = np.searchsorted(offsets, indices, side="right") - 1
        return {int(k): indices[which == k] - offsets[k] for k in np.unique(which)}

    def get_rows(
        self, indices: Sequence[int] | np.ndarray, keys: Iterable[str] = ("flux", "ids")
    ) -> dict[str, np.ndarray]:
        """Arrays for the given global indices, in the order given (reads only their shards)."""
        indices = np.asarray(indices, dtype=np.int64)
        keys = tuple(keys)
        result: dict[str, np.ndarray] = {}
        positions = {int(v): i for i, v in enumerate(indices)}
        for shard, rows in self.locate(indices).items():
            arrays = self.read_shard(shard, keys)
            offset = self.shards[shard].offset
            dest = np.array([positions[int(r + offset)] for r in rows], dtype=np.int64)
            for key in keys:
                column = arrays[key][rows]
                if key not in result:
                    shape = (len(indices), *column.shape[1:])
                    dtype = column.dtype
                    if dtype.kind == "U":  # widths differ between shards
                        dtype = np.dtype("<U64")
                    result[key] = np.zeros(shape, dtype=dtype)
                result[key][dest] = column
        if not len(indices):
            return {k: np.empty(0) for k in keys}
        return result


def build_pool(
    out_url: str,
    batches: Iterable[Mapping[str, np.ndarray]],
    *,
    classes: Sequence[str] | None,
    grid: LogGrid = DEFAULT_GRID,
    store: Store | None = None,
    meta: Mapping[str, Any] | None = None,
) -> Pool:
    """Write a pool from batches of preprocessed rows (one shard per batch).

    Parameters
    ----------
    out_url : str
        The pool directory (must be writable).
    batches : iterable of dict
        Each with ``flux`` (n, grid.n) float32, ``ids`` (n,) str and optionally ``labels``
        (n,) str (class names, "" for unknown).
    classes : sequence of str or None
        The class names; every non-empty label must be one of them. None: the sorted set of
        labels found (which must hold at least two).
    """
    store, out_url = resolve(out_url, store)
    out_url = out_url.rstrip("/")
    fixed = classes is not None
    classes = [str(c) for c in classes] if classes is not None else []
    if fixed and (len(set(classes)) != len(classes) or len(classes) < 2):
        raise ValueError(f"build_pool: need at least two distinct classes, got {classes}")
    shards: list[PoolShard] = []
    seen_ids: set[str] = set()
    offset = 0
    any_labels = False
    for i, batch in enumerate(batches):
        flux = np.asarray(batch["flux"], dtype=np.float32)
        ids = np.asarray(batch["ids"]).astype(str)
        if flux.ndim != 2 or flux.shape[1] != grid.n or len(ids) != len(flux):
            raise ValueError(
                f"build_pool: batch {i}: expected flux (n, {grid.n}) and ids (n,), got "
                f"{flux.shape} and {ids.shape}"
            )
        arrays: dict[str, np.ndarray] = {"flux": flux, "ids": ids}
        if batch.get("labels") is not None:
            labels = np.asarray(batch["labels"]).astype(str)
            unknown = sorted(set(labels.tolist()) - set(classes) - {""})
            if unknown and not fixed:
                classes = sorted({*classes, *unknown})
            elif unknown:
                raise ValueError(
                    f"build_pool: batch {i}: labels {unknown} not in classes {classes}"
                )
            arrays["labels"] = labels
            any_labels = True
        duplicate = seen_ids.intersection(ids.tolist())
        if duplicate or len(set(ids.tolist())) != len(ids):
            raise ValueError(f"build_pool: duplicate ids, e.g. {sorted(duplicate)[:3]}")
        seen_ids.update(ids.tolist())
        if not len(flux):
            continue
        name = f"pool-{len(shards):05d}.npz"
        info = write_arrays(f"{out_url}/{name}", arrays, store, rows=len(flux))
        shards.append(PoolShard(info.name, info.rows, offset, info.sha256, info.bytes))
        offset += len(flux)
        log.debug("wrote %s/%s (%d rows)", out_url, name, len(flux))
    if not shards:
        raise ValueError(f"build_pool: no rows to write to {out_url}")
    if len(classes) < 2:
        raise ValueError(
            f"build_pool: need at least two classes, found {classes} (pass classes=...)"
        )
    pool = Pool(
        url=out_url,
        grid=grid,
        classes=classes,
        shards=shards,
        meta={**dict(meta or {}), "has_labels": any_labels},
        store=store,
    )
    # the manifest last: a pool exists only once all its shards do
    store.write_bytes(f"{out_url}/{POOL_MANIFEST}", pool.to_json().encode())
    log.info("pool %s: %d spectra in %d shards", out_url, pool.total_rows, len(shards))
    return pool


def pool_partitions(pool: Pool) -> list[ShardRange]:
    """One partition (:class:`astrokit.partitions.ShardRange`) per shard of ``pool``.

    ``index`` is the shard's position in ``pool.shards`` and ``offset`` the pool index of its
    first row (the planner of :mod:`astrokit.partitions`, applied to a pool's manifest).
    """
    from astrokit.partitions import plan_shard_set
    from astrokit.shards import Manifest

    manifest = Manifest([s.info for s in pool.shards], url=pool.url)
    parts = plan_shard_set(manifest, partition_mb=None)
    if len(parts) != len(pool.shards):  # build_pool never writes an empty shard
        raise PoolError(f"{pool.url}: a pool shard has no rows")
    return parts


def rows_per_partition(grid: LogGrid, partition_mb: float = DEFAULT_PARTITION_MB) -> int:
    """Rows that make a shard of about ``partition_mb`` MB (flux dominates)."""
    return max(1, int(partition_mb * 1e6 // (4 * grid.n + 4 * 64)))


def build_pool_from_synthetic(
    out_url: str,
    n: int,
    *,
    seed: int = 0,
    grid: LogGrid = DEFAULT_GRID,
    rows_per_shard: int | None = None,
    store: Store | None = None,
    with_labels: bool = True,
    **synth_kwargs: Any,
) -> Pool:
    """A pool of ``n`` synthetic spectra (:func:`astrokit.survey.synth_spectra`), with labels.

    Spectra are generated one shard at a time (memory stays bounded) directly on ``grid``;
    each shard's generator seed is derived from ``seed`` and the shard number, so the same
    arguments always give the same pool.
    """
    from astrokit.survey import SPECTRAL_CLASSES, synth_spectra

    if n < 1:
        raise ValueError(f"build_pool_from_synthetic: n must be >= 1, got {n}")
    per_shard = rows_per_shard or rows_per_partition(grid)
    classes = list(SPECTRAL_CLASSES)

    def batches():
        for k, start in enumerate(range(0, n, per_shard)):
            count = min(per_shard, n - start)
            spectra = synth_spectra(
                count,
                np.random.SeedSequence([seed, k]).generate_state(1)[0],
                wave=grid.wave,
                **synth_kwargs,
            )
            flux = preprocess(
                spectra["wave"], spectra["flux"], grid, ivar=spectra["ivar"], mask=spectra["mask"]
            )
            ids = np.array([f"syn{seed}-{start + j:08d}" for j in range(count)])
            batch = {"flux": flux, "ids": ids}
            if with_labels:
                batch["labels"] = np.asarray(spectra["object_class"]).astype(str)
            yield batch

    return build_pool(
        out_url,
        batches(),
        classes=classes,
        grid=grid,
        store=store,
        meta={"builder": "synthetic", "seed": int(seed), "n": int(n)},
    )


def _rows_to_batch(chunk: list[tuple[np.ndarray, str, str]], with_labels: bool) -> dict:
    batch = {"flux": np.stack([r[0] for r in chunk]), "ids": np.array([r[1] for r in chunk])}
    if with_labels:
        batch["labels"] = np.array([r[2] for r in chunk])
    return batch


def build_pool_from_spectra(
    sources: Iterable[str],
    out_url: str,
    *,
    classes: Sequence[str] | None = None,
    labels: Mapping[str, str] | None = None,
    label_from_meta: bool = False,
    grid: LogGrid = DEFAULT_GRID,
    rows_per_shard: int | None = None,
    store: Store | None = None,
) -> tuple[Pool, list[tuple[str, str]]]:
    """A pool from spectrum files of any format :func:`astrokit.formats.read_spectrum` reads.

    Parameters
    ----------
    sources : iterable of str
        Spectrum URLs/paths (each file one spectrum).
    out_url : str
        The pool directory.
    classes : sequence of str, optional
        Class names; default: the sorted labels found (``labels`` / metadata), which must
        then give at least two.
    labels : mapping, optional
        Known labels by source URL or spectrum id.
    label_from_meta : bool
        Use the file's own ``object_class`` (e.g. SDSS/LAMOST ``CLASS``) as the known label.

    Returns
    -------
    (Pool, skipped)
        ``skipped`` lists ``(source, reason)`` for every file that could not be used; the
        others are all in the pool.
    """
    from astrokit.formats import FormatError, read_spectrum

    store, out_url = resolve(out_url, store)
    per_shard = rows_per_shard or rows_per_partition(grid)
    skipped: list[tuple[str, str]] = []
    n_sources = 0
    with_labels = labels is not None or label_from_meta

    def one(source: str) -> tuple[np.ndarray, str, str]:
        spectrum = read_spectrum(source, store=store)
        wave = spectrum.spectral_axis.to_value("Angstrom")
        flux = np.asarray(spectrum.flux.value, dtype=np.float64)
        if flux.ndim != 1:
            raise ValueError(f"expected one 1-D spectrum per file, got shape {flux.shape}")
        ivar = None
        if spectrum.uncertainty is not None:
            ivar = np.asarray(spectrum.uncertainty.array, dtype=np.float64)
        mask = None if spectrum.mask is None else np.asarray(spectrum.mask, dtype=bool)
        row = preprocess(wave, flux, grid, ivar=ivar, mask=mask)
        if not np.any(row):
            raise ValueError(f"no good pixels inside the grid {grid.start:g}-{grid.stop:g} A")
        sid = str(spectrum.meta.get("id") or source)
        label = ""
        if labels is not None:
            label = labels.get(str(source), labels.get(sid, ""))
        elif label_from_meta:
            label = str(spectrum.meta.get("object_class") or "")
        return row, sid, label

    def batches():
        # streamed: one shard's rows in memory at a time, whatever the number of files
        nonlocal n_sources
        counts: dict[str, int] = {}
        chunk: list[tuple[np.ndarray, str, str]] = []
        for source in sources:
            n_sources += 1
            try:
                row, sid, label = one(source)
            except (FormatError, StoreError, ValueError, OSError) as exc:
                log.warning("skipping %s: %s", source, exc)
                skipped.append((str(source), str(exc)))
                continue
            # ids must be unique; a second file with the same id (a re-observation) gets #2
            counts[sid] = counts.get(sid, 0) + 1
            chunk.append((row, sid if counts[sid] == 1 else f"{sid}#{counts[sid]}", label))
            if len(chunk) == per_shard:
                yield _rows_to_batch(chunk, with_labels)
                chunk = []
        if chunk:
            yield _rows_to_batch(chunk, with_labels)

    try:
        pool = build_pool(
            out_url,
            batches(),
            classes=classes,
            grid=grid,
            store=store,
            meta={"builder": "spectra"},
        )
    except ValueError as exc:
        raise PoolError(
            f"build_pool_from_spectra: {exc} ({len(skipped)} of {n_sources} files skipped)"
        ) from exc
    pool.meta.update({"n_sources": n_sources, "skipped": skipped})
    store.write_bytes(f"{pool.url}/{POOL_MANIFEST}", pool.to_json().encode())
    return pool, skipped
