"""The worker side of distributed photo-z inference: one task = one partition.

:func:`predict_partition` runs inside a Dask worker. It

1. gets the model from a per-process cache keyed by (checkpoint URL, sha256, device) -- the
   first task on a worker loads it from the store, later tasks reuse it, so the weights travel
   once per worker, never inside every task;
2. reads its partition (a row range of one shard, or a group of FITS cutouts);
3. screens rows with the input policy (:mod:`astrokit.models.runtime`): bad rows are kept in
   the output with ``z_pred = NaN`` and a status, never silently predicted;
4. predicts the rest in device-sized batches with torch threads = the worker's threads (set
   once per worker by :class:`astrokit.workers.TorchThreads`), in
   the precision chosen for this worker (:mod:`astrokit.models.precision`): the first
   partition a worker gets runs the parity guard on a sample of its rows (fp32 against the
   reduced precision) and the outcome is cached per process with the model, so every later
   task of that worker runs at once in the precision that passed. Both run the checkpoint's
   copy prepared for that precision (``Checkpoint.for_inference``: batch norms folded, bf16
   weights cast once), made once per worker process;
5. writes ``pred-NNNNN.parquet`` atomically. A retried task (e.g. after its worker was killed)
   rewrites the same file with the same rows, so a partition is never counted twice.

Every output row carries ``source`` (shard or file name) and ``row`` (index in that source):
the summary checks exactness on these, independently of whether the input ids are unique.
"""

from __future__ import annotations

import io
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from astrokit.errors import UserError
from astrokit.partitions import FileGroup, Partition, ShardRange, as_partition

log = logging.getLogger(__name__)

__all__ = [
    "PRED_COLUMNS",
    "ModelChangedError",
    "PredictOptions",
    "partition_file",
    "predict_partition",
]

#: Columns of every prediction file (and of the final catalogue), in order, with their types
#: (:func:`encode_columns`).
PRED_SCHEMA = (
    ("id", "str"),
    ("z_pred", "f32"),
    ("z_true", "f32"),
    ("status", "str"),
    ("source", "str"),
    ("row", "i64"),
    ("nan_fraction", "f32"),
    ("partition", "i32"),
    ("error", "str"),
)
PRED_COLUMNS = tuple(name for name, _ in PRED_SCHEMA)


@dataclass(frozen=True)
class PredictOptions:
    """How a worker predicts (see :func:`astrokit.inference.infer` for each setting)."""

    batch_size: int | None = None
    device: str | None = None
    max_nan_fraction: float | None = None
    precision: str | None = None
    parity_tolerance: float | None = None
    parity_sample: int | None = None


# (url, sha256, device) -> Checkpoint. Two entries at most: a worker serves one run at a time,
# and a notebook comparing two models should not reload on every task.
_MODEL_CACHE: OrderedDict[tuple[str, str, str], Any] = OrderedDict()
_MODEL_CACHE_SIZE = 2
_CACHE_LOCK = threading.Lock()
_LOADS = {"count": 0}  # number of checkpoint loads in this process (for tests and logs)
# (url, sha256, device, run, requested precision, tolerance, sample) -> (PrecisionChoice,
# ParityReport | None): the parity guard runs once per run in a worker process, on the first
# partition it gets (the data of one run say nothing certain about another's).
_PRECISION_CACHE: dict[tuple, tuple[Any, Any]] = {}
_PRECISION_CACHE_SIZE = 16
_PRECISION_LOCK = threading.Lock()


class ModelChangedError(UserError, RuntimeError):
    """The checkpoint's bytes changed after the run started (overwritten mid-run)."""


def partition_file(index: int) -> str:
    """File name of partition ``index``'s predictions (``pred-00042.parquet``)."""
    return f"pred-{index:05d}.parquet"


def get_model(model_url: str, sha256: str, device: str | None, store: Any = None) -> Any:
    """The cached :class:`~astrokit.models.checkpoint.Checkpoint` for this process."""
    from astrokit.models.checkpoint import load_checkpoint, select_device

    dev = str(select_device(device))
    key = (model_url, sha256, dev)
    with _CACHE_LOCK:
        if key in _MODEL_CACHE:
            _MODEL_CACHE.move_to_end(key)
            return _MODEL_CACHE[key]
        ckpt = load_checkpoint(model_url, device=dev, store=store)
        if sha256 and ckpt.sha256 != sha256:
            raise ModelChangedError(
                f"{model_url}: checkpoint sha256 is now {ckpt.sha256[:12]}..., the run started "
                f"with {sha256[:12]}...; it was overwritten during the run -- start again"
            )
        _LOADS["count"] += 1
        log.info("loaded model %s (%s) on %s", model_url, ckpt.sha256[:12], dev)
        _MODEL_CACHE[key] = ckpt
        while len(_MODEL_CACHE) > _MODEL_CACHE_SIZE:
            _MODEL_CACHE.popitem(last=False)
        return ckpt


def _worker_name() -> str:
    """This worker's address (the process id outside a Dask worker): one parity report each."""
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError, AttributeError):
        import os

        return f"pid-{os.getpid()}"


def precision_for(
    key: tuple,
    ckpt: Any,
    images: np.ndarray,
    mags: np.ndarray,
    z_true: np.ndarray,
    *,
    precision: str | None,
    tolerance: float | None,
    sample: int | None,
    batch_size: int,
) -> tuple[Any, Any, np.ndarray | None]:
    """The precision this process runs ``ckpt``'s model in for one run, decided once per run.

    The first call for a key (model, device and run) resolves ``precision`` for the model's
    device and, when that is a reduced precision, runs the parity guard on the first
    ``sample`` rows given -- those of the first partition this worker gets. Later calls with
    the same key return the cached decision at once.

    Returns
    -------
    (PrecisionChoice, ParityReport or None, ndarray or None)
        The choice, the guard's report, and -- on the call that ran the guard -- the
        predictions of the sample rows in the chosen precision (the guard computed them
        already; the caller predicts only the rows after them).
    """
    from astrokit.models.precision import (
        DEFAULT_PARITY_SAMPLE,
        check_tolerance,
        guard,
        resolve_precision,
    )
    from astrokit.models.runtime import predict_arrays

    n_sample = DEFAULT_PARITY_SAMPLE if sample is None else int(sample)
    if n_sample < 0:
        raise ValueError(f"parity_sample must be >= 0, got {sample}")
    tol = check_tolerance(tolerance)
    cache_key = (*key, str(precision), tol, n_sample)
    with _PRECISION_LOCK:
        if cache_key in _PRECISION_CACHE:
            choice, report = _PRECISION_CACHE[cache_key]
            return choice, report, None
        device = next(ckpt.model.parameters()).device
        choice = resolve_precision(precision, device)
        log.info("precision %s (%s)", choice.precision, choice.reason)
        report = head = None
        if choice.reduced and n_sample > 0:
            rows = slice(0, n_sample)
            outputs: dict[str, np.ndarray] = {}

            def predict(c: Any) -> np.ndarray:
                # The fp32 reference comes from the checkpoint's own model (the prepared fp32
                # copy computes the same map to ~1e-8): a bf16 run never holds a third copy.
                outputs[c.precision] = predict_arrays(
                    ckpt.for_inference(c.dtype) if c.reduced else ckpt.model,
                    images[rows],
                    mags[rows],
                    batch_size=batch_size,
                    precision=c,
                )
                return outputs[c.precision]

            choice, report = guard(choice, predict, tolerance=tol, z_true=z_true[rows])
            head = outputs[choice.precision]
        _PRECISION_CACHE[cache_key] = (choice, report)
        while len(_PRECISION_CACHE) > _PRECISION_CACHE_SIZE:
            _PRECISION_CACHE.pop(next(iter(_PRECISION_CACHE)))
        return choice, report, head


def _read_shard_range(part: ShardRange, store: Any) -> dict[str, Any]:
    from astrokit.shards import ShardError, read_shard
    from astrokit.store import StoreError

    info = part.shard
    start, stop = part.start, part.stop
    n = stop - start
    try:
        arrays = read_shard(part.source_url, store=store, expect=info)
    except (ShardError, StoreError) as exc:
        # the whole source is unreadable: every row is reported, none is lost or invented
        log.error("partition %d: %s", part.index, exc)
        return {
            "images": None,
            "ids": np.array([""] * n, dtype=object),
            "z": np.full(n, np.nan, dtype=np.float32),
            "rows": np.arange(start, stop),
            "sources": np.array([info.name] * n, dtype=object),
            "file_errors": np.array([f"{type(exc).__name__}: {exc}"] * n, dtype=object),
        }
    return {
        "images": arrays["images"][start:stop],
        "mags": arrays["mags"][start:stop],
        "ids": arrays["ids"][start:stop].astype(object),
        "z": arrays["z"][start:stop].astype(np.float32),
        "rows": np.arange(start, stop),
        "sources": np.array([info.name] * n, dtype=object),
        "file_errors": np.array([""] * n, dtype=object),
    }


def _read_fits_group(part: FileGroup, store: Any, max_nan_fraction: float) -> dict[str, Any]:
    from astrokit.formats import read_cutout

    n = part.rows
    images: list[np.ndarray | None] = [None] * n
    mags: list[np.ndarray | None] = [None] * n
    ids, zs, errors = [""] * n, [np.nan] * n, [""] * n
    nan_fraction = np.zeros(n, dtype=np.float32)
    shape = None
    for i, url in enumerate(part.files):
        name = url.rstrip("/").rsplit("/", 1)[-1]
        ids[i] = name
        try:
            # read everything, whatever its NaN count: the policy is applied below, the same
            # way for FITS and shards, so that bad pixels are reported rather than an error
            cut = read_cutout(url, store=store, max_nan_fraction=1.0)
            image = np.asarray(cut.image, dtype=np.float32)
            if shape is not None and image.shape != shape:
                raise ValueError(f"cutout shape {image.shape} differs from {shape}")
        except Exception as exc:  # any unreadable file is one bad row, reported by name
            log.warning("partition %d: bad cutout %s: %s", part.index, url, exc)
            errors[i] = f"{type(exc).__name__}: {exc}"
            continue
        shape = image.shape
        images[i] = image
        mags[i] = np.asarray(cut.magnitudes, dtype=np.float32)
        ids[i] = str(cut.id)
        zs[i] = np.nan if cut.redshift is None else float(cut.redshift)
        nan_fraction[i] = cut.nan_count / image.size
    stacked = mag_arr = None
    if shape is not None:
        stacked = np.zeros((n, *shape), dtype=np.float32)
        mag_arr = np.full((n, shape[0]), np.nan, dtype=np.float32)
        for i in range(n):
            if images[i] is not None:
                stacked[i] = images[i]
                mag_arr[i] = mags[i]
                if nan_fraction[i] > max_nan_fraction:
                    # the reader filled the bad pixels with 0; restore "unusable" for the policy
                    stacked[i] = np.nan
    return {
        "images": stacked,
        "mags": mag_arr,
        "ids": np.array(ids, dtype=object),
        "z": np.array(zs, dtype=np.float32),
        "rows": np.zeros(n, dtype=np.int64),
        "sources": np.array([u.rstrip("/").rsplit("/", 1)[-1] for u in part.files], dtype=object),
        "file_errors": np.array(errors, dtype=object),
        "nan_fraction": nan_fraction,
    }


def read_partition(
    part: Partition | Mapping[str, Any], store: Any = None, max_nan_fraction: float = 1.0
) -> dict[str, Any]:
    """Read a partition's inputs; unreadable sources become rows with an ``error`` message.

    FITS cutouts come back with their reader's NaN fill; those over ``max_nan_fraction`` are
    returned all-NaN so that the input policy reports them, and ``nan_fraction`` holds the
    fraction measured before the fill.
    """
    part = as_partition(part)
    if isinstance(part, ShardRange):
        return _read_shard_range(part, store)
    if isinstance(part, FileGroup):
        return _read_fits_group(part, store, max_nan_fraction)
    raise ValueError(f"unknown partition kind {part.kind!r}; expected 'shard' or 'fits'")


def encode_columns(columns: Mapping[str, Any], schema: Sequence[tuple[str, str]]) -> bytes:
    """Parquet bytes of ``columns`` in the order and types of ``schema``.

    ``schema`` is ``(name, type)`` pairs, type one of ``str``, ``f32``, ``i32``, ``i64`` or
    ``f32[]`` (a list of float32 per row); every prediction file is written through here.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = {
        "str": pa.string(),
        "f32": pa.float32(),
        "i32": pa.int32(),
        "i64": pa.int64(),
        "f32[]": pa.list_(pa.float32()),
    }
    arrays = {}
    for name, kind in schema:
        values = columns[name]
        if kind == "str":
            values = [str(v) for v in values]
        arrays[name] = pa.array(values, types[kind])
    buf = io.BytesIO()
    pq.write_table(pa.table(arrays), buf)
    return buf.getvalue()


def encode_predictions(columns: dict[str, Any]) -> bytes:
    """Parquet bytes of a prediction table with :data:`PRED_COLUMNS`."""
    return encode_columns(columns, PRED_SCHEMA)


def task_stats(
    part: Partition,
    status: np.ndarray,
    times: tuple[float, float, float, float],
    target: str,
    **extra: Any,
) -> dict[str, Any]:
    """What a prediction task returns: rows, ok/bad counts, read/compute/write seconds
    (from ``times`` = start, read, computed, written), the file written, and ``extra``."""
    t0, t1, t2, t3 = times
    n_ok = int((np.asarray(status) == "ok").sum())
    return {
        "index": part.index,
        "rows": len(status),
        "ok": n_ok,
        "bad": len(status) - n_ok,
        "read_s": t1 - t0,
        "compute_s": t2 - t1,
        "write_s": t3 - t2,
        "file": target,
        **extra,
    }


def write_partition_file(out_url: str, index: int, payload: bytes, store: Any = None) -> str:
    """Write partition ``index``'s predictions atomically under ``out_url``; return the URL."""
    from astrokit.store import resolve

    st, target = resolve(f"{out_url.rstrip('/')}/{partition_file(index)}", store)
    st.write_bytes(target, payload)
    return target


def predict_partition(
    part: Partition | Mapping[str, Any],
    *,
    model_url: str,
    model_sha256: str,
    out_url: str,
    store: Any = None,
    options: PredictOptions | None = None,
    run_id: str | None = None,
) -> dict[str, Any]:
    """Predict one partition and write its ``pred-NNNNN.parquet`` atomically.

    Parameters
    ----------
    part : Partition or dict
        A partition of the plan (:mod:`astrokit.partitions`; a ``plan.json`` dict is accepted).
    model_url, model_sha256 : str
        Checkpoint and the digest the run started with (cache key and integrity check).
    out_url : str
        The run's output directory.
    store : astrokit.workers.StoreSpec or Store, optional
        Store to read and write through (default: resolved from URLs and the environment);
        :func:`astrokit.workers.task_store` gives what a task is sent.
    options : PredictOptions, optional
        Batch size, device, input policy and precision (see :func:`astrokit.inference.infer`).
    run_id : str, optional
        Identifies the run: the parity guard runs once per run in each worker process
        (default: ``out_url``).

    Returns
    -------
    dict
        ``index``, ``rows``, ``ok``, ``bad``, ``read_s``, ``compute_s``, ``write_s``,
        ``threads``, ``file``, ``worker``, ``precision`` (the
        :class:`~astrokit.models.precision.PrecisionChoice` as a dict, None when no row was
        predicted) and ``parity`` (this worker's parity report, None without one).
    """
    import torch

    from astrokit.models.runtime import (
        BAD_FILE,
        DEFAULT_MAX_NAN_FRACTION,
        default_batch_size,
        predict_arrays,
        screen_inputs,
    )
    from astrokit.workers import open_task_store

    part = as_partition(part)
    opts = options or PredictOptions()
    store = open_task_store(store)
    choice = parity = None
    t0 = time.perf_counter()
    nan = opts.max_nan_fraction
    policy = DEFAULT_MAX_NAN_FRACTION if nan is None else nan
    ckpt = get_model(model_url, model_sha256, opts.device, store)
    data = read_partition(part, store, policy)
    t1 = time.perf_counter()

    n = len(data["ids"])
    if n != part.rows:
        raise RuntimeError(f"partition {part.index}: read {n} rows, the plan expects {part.rows}")
    z_pred = np.full(n, np.nan, dtype=np.float32)
    status = np.full(n, BAD_FILE, dtype=object)
    nan_fraction = np.full(n, np.nan, dtype=np.float32)
    errors = data["file_errors"].copy()
    readable = errors == ""
    if data["images"] is not None and readable.any():
        idx = np.flatnonzero(readable)
        screened = screen_inputs(data["images"][idx], data["mags"][idx], max_nan_fraction=policy)
        status[idx] = screened.status
        nan_fraction[idx] = screened.nan_fraction
        if "nan_fraction" in data:  # measured by the FITS reader before its fill
            screened.nan_fraction = data["nan_fraction"][idx]
            nan_fraction[idx] = screened.nan_fraction
        ok = screened.ok
        if ok.any():
            dev = next(ckpt.model.parameters()).device
            batch = opts.batch_size or default_batch_size(dev)
            rows_ok = idx[ok]
            images_ok, mags_ok = screened.images[ok], screened.mags[ok]
            choice, parity, head = precision_for(
                (model_url, model_sha256, str(dev), run_id or out_url),
                ckpt,
                images_ok,
                mags_ok,
                data["z"][rows_ok],
                precision=opts.precision,
                tolerance=opts.parity_tolerance,
                sample=opts.parity_sample,
                batch_size=batch,
            )
            # the guard's task already has its sample's predictions in the chosen precision
            done = 0 if head is None else len(head)
            if done:
                z_pred[rows_ok[:done]] = head
            if done < len(rows_ok):
                z_pred[rows_ok[done:]] = predict_arrays(
                    ckpt.for_inference(choice.dtype),
                    images_ok[done:],
                    mags_ok[done:],
                    batch_size=batch,
                    precision=choice,
                )
        for j in np.flatnonzero(~ok):
            errors[idx[j]] = (
                f"{screened.nan_fraction[j]:.1%} non-finite pixels"
                if screened.status[j] == "bad_pixels"
                else "non-finite magnitude"
            )
    t2 = time.perf_counter()

    payload = encode_predictions(
        {
            "id": data["ids"],
            "z_pred": z_pred,
            "z_true": data["z"],
            "status": status,
            "source": data["sources"],
            "row": data["rows"],
            "nan_fraction": nan_fraction,
            "partition": np.full(n, part.index, dtype=np.int32),
            "error": errors,
        }
    )
    target = write_partition_file(out_url, part.index, payload, store)
    return task_stats(
        part,
        status,
        (t0, t1, t2, time.perf_counter()),
        target,
        threads=torch.get_num_threads(),
        worker=_worker_name(),
        precision=None if choice is None else choice.to_dict(),
        parity=None if parity is None else parity.to_dict(),
    )
