"""Distributed photo-z inference: ``astrokit.infer(data_url, model=ckpt, out=url)``.

The client side of the run. It

1. **plans** partitions (:mod:`astrokit.partitions`): a shard set (``manifest.json``,
   :mod:`astrokit.shards`) is cut into row ranges of about ``partition_mb`` MB (one per shard
   at the default 25 MB); a directory of FITS cutouts (any of
   :data:`~astrokit.partitions.FITS_SUFFIXES`) is grouped into lists of files of about that
   size. The plan is written to ``<out>/plan.json``;
2. **resumes**: when ``plan.json`` already describes the same data, model and policy, every
   partition whose ``pred-NNNNN.parquet`` exists and holds exactly its rows is skipped;
3. **maps** one named task per remaining partition (``astrokit-infer-<run>-NNNNN``, so the
   Dask dashboard shows what runs) onto the cluster from
   :func:`astrokit.cluster.client_or_local` -- the spawner's, the current one, or a temporary
   local cluster -- with a progress bar (tqdm: a widget in notebooks, text in a shell);
4. **summarises**: reads every prediction file, checks that every input row -- identified by
   (source, row) -- has exactly one prediction (no row missing, none duplicated, none
   unexpected), writes the ``catalog.parquet`` (id, z_pred, z_true, status, ...) and a
   ``summary.json`` with photo-z metrics, bad rows and throughput. A run that is not exact
   raises :class:`IncompleteResultError` after writing the summary, never a quietly short
   catalogue.

Precision (:mod:`astrokit.models.precision`): ``precision="auto"`` (the default) lets each
worker run the model in bf16 where its CPU or GPU computes bf16 natively, after the parity
guard has compared bf16 with fp32 on a sample of the first partition it gets; the summary's
``precision`` entry says what was chosen, why, and what the guard measured.

A worker that dies mid-run loses only its running task; Dask reruns it elsewhere and the rerun
rewrites the same partition file, so the result stays exact.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import posixpath
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from astrokit import env
from astrokit.errors import UserError
from astrokit.inference_worker import (
    PRED_COLUMNS,
    PredictOptions,
    partition_file,
    predict_partition,
)
from astrokit.partitions import FITS_SUFFIXES, Partition, as_partition, balance
from astrokit.shards import DEFAULT_PARTITION_MB

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_PARTITION_MB",
    "IncompleteResultError",
    "InferenceError",
    "InferenceResult",
    "infer",
    "plan_partitions",
]

#: Names of FITS cutout files accepted as direct input (:data:`astrokit.partitions.FITS_SUFFIXES`).
FITS_PATTERNS = tuple(f"*{suffix}" for suffix in FITS_SUFFIXES)
PLAN_NAME = "plan.json"
SUMMARY_NAME = "summary.json"
CATALOG_NAME = "catalog.parquet"
#: Bad rows listed one by one in summary.json (all of them are in the catalogue).
MAX_LISTED_BAD = 100


class InferenceError(UserError, RuntimeError):
    """Inference could not run (no model, no input, unusable output location...)."""


class IncompleteResultError(InferenceError):
    """The run's predictions do not cover every input row exactly once.

    Attributes
    ----------
    result : InferenceResult
        What was written (summary with ``complete: false`` and the problems found).
    """

    def __init__(self, message: str, result: InferenceResult) -> None:
        super().__init__(message)
        self.result = result


@dataclass
class InferenceResult:
    """Outcome of :func:`infer`.

    Attributes
    ----------
    out_url : str
        The run's directory (``plan.json``, ``pred-*.parquet``, ``catalog.parquet``,
        ``summary.json``).
    summary : dict
        The content of ``summary.json``.
    catalog_url, summary_url : str
        Where the catalogue and summary were written.
    """

    out_url: str
    summary: dict[str, Any]
    catalog_url: str
    summary_url: str
    _store: Any = field(default=None, repr=False)

    @property
    def metrics(self) -> dict[str, float] | None:
        """Photo-z metrics over rows with a known redshift (None when there are none)."""
        return self.summary.get("metrics")

    def to_pandas(self) -> Any:
        """The catalogue as a pandas DataFrame."""
        import pandas as pd

        from astrokit.store import resolve

        st, url = resolve(self.catalog_url, self._store)
        return pd.read_parquet(io.BytesIO(st.read_bytes(url)))


# -- planning --------------------------------------------------------------------------------


def plan_partitions(
    data_url: str, *, partition_mb: float = DEFAULT_PARTITION_MB, store: Any = None
) -> dict[str, Any]:
    """Cut the input into partitions of about ``partition_mb`` MB (pure apart from listing).

    The planning itself is :func:`astrokit.partitions.plan_input`; this is its JSON form
    (``plan.json``).

    Returns
    -------
    dict
        ``{"data_url", "kind": "shards"|"fits", "total_rows", "partitions": [...]}``; each
        partition is a JSON-able dict (:meth:`~astrokit.partitions.ShardRange.to_dict`) with
        ``index``, ``kind``, ``rows`` and either ``source_url``/``shard``/``start``/``stop``
        (shards) or ``files`` (FITS).

    Raises
    ------
    InferenceError
        Nothing to infer on at ``data_url``.
    """
    from astrokit.partitions import plan_input
    from astrokit.store import StoreNotFound

    if partition_mb <= 0:
        raise InferenceError(f"partition_mb must be > 0, got {partition_mb}")
    try:
        kind, partitions = plan_input(data_url, partition_mb=partition_mb, store=store)
    except StoreNotFound as exc:
        raise InferenceError(f"{data_url}: no such shard set or directory") from exc
    if not partitions:
        raise InferenceError(
            f"{data_url}: nothing to infer on (expected a shard set with manifest.json or a "
            f"directory of FITS cutouts named {', '.join(FITS_PATTERNS)})"
        )
    return {
        "data_url": data_url,
        "kind": kind,
        "total_rows": sum(p.rows for p in partitions),
        "partition_mb": partition_mb,
        "partitions": [p.to_dict() for p in partitions],
    }


def balance_partitions(partitions: list[Any], slots: int) -> list[Any]:
    """:func:`astrokit.partitions.balance` for plan dicts (typed partitions stay typed)."""
    typed = [as_partition(p) for p in partitions]
    out = balance(typed, slots)
    if partitions and isinstance(partitions[0], dict):
        return [p.to_dict() for p in out]
    return out


def _fits_partition(index: int, files: list[str]) -> dict[str, Any]:
    """The plan dict of a group of FITS files (:class:`astrokit.partitions.FileGroup`)."""
    from astrokit.partitions import FileGroup

    return FileGroup(index, tuple(files)).to_dict()


def _expected_keys(part: dict[str, Any] | Partition) -> list[tuple[str, int]]:
    """The (source, row) identities a partition must produce."""
    return as_partition(part).expected_keys()


def _fingerprint(
    plan: dict[str, Any], model_sha256: str, max_nan_fraction: float, precision: str = "fp32"
) -> str:
    """Identity of a run: the size-based plan (before :func:`balance_partitions`, so it does
    not depend on the cluster), the model, the input policy and the requested precision (a
    run asked for in fp32 does not reuse partitions predicted in bf16, nor the reverse)."""
    doc = {
        "partitions": plan["partitions"],
        "model": model_sha256,
        "max_nan_fraction": max_nan_fraction,
    }
    if precision != "fp32":  # fp32 runs keep the identity they had before precisions existed
        doc["precision"] = precision
    doc = json.dumps(doc, sort_keys=True)
    return hashlib.sha256(doc.encode()).hexdigest()


# -- helpers ---------------------------------------------------------------------------------


def _read_table(st: Any, url: str) -> Any:
    import pyarrow.parquet as pq

    return pq.read_table(io.BytesIO(st.read_bytes(url)))


def _finished(st: Any, out_url: str, part: dict[str, Any]) -> bool:
    """True when the partition's file exists and holds exactly its expected rows."""
    url = f"{out_url}/{partition_file(part['index'])}"
    if not st.exists(url):
        return False
    try:
        table = _read_table(st, url)
    except Exception as exc:  # unreadable leftovers are recomputed, not trusted
        log.warning("%s unreadable (%s); recomputing", url, exc)
        return False
    got = sorted(zip(table["source"].to_pylist(), table["row"].to_pylist(), strict=True))
    return got == sorted(_expected_keys(part))


def _default_out(data_url: str) -> str:
    user = os.environ.get(env.USER_URL)
    if not user:
        raise InferenceError(
            f"no output URL given and {env.USER_URL} is not set; pass out=... "
            "(a directory URL you can write to)"
        )
    name = posixpath.basename(data_url.rstrip("/")) or "data"
    return f"{user.rstrip('/')}/inference/{name}"


def _check_model(model_url: str, store: Any) -> str:
    """Load the checkpoint once on the client: fail fast on a bad one; return its sha256."""
    from astrokit.models.checkpoint import load_checkpoint

    return load_checkpoint(model_url, device="cpu", store=store).sha256


def _progress_bar(total: int, initial: int, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc="astrokit infer", unit="part")


@dataclass
class RunOutcome:
    """What :func:`run_plan` did: task results, failures by partition index, cluster size."""

    stats: list[dict[str, Any]]
    failures: dict[int, str]
    resumed: int
    workers: int
    threads: int
    compute_seconds: float


def _previous_plan(st: Any, plan_url: str, fingerprint: str, resume: bool) -> dict[str, Any]:
    """The plan of an earlier run of the same identity at ``plan_url`` ({} when none)."""
    if not (resume and st.exists(plan_url)):
        return {}
    try:
        previous = json.loads(st.read_bytes(plan_url))
    except (ValueError, OSError):
        return {}
    if previous.get("fingerprint") != fingerprint:
        log.warning(
            "%s holds a run with other data, model or settings; recomputing everything",
            plan_url.rsplit("/", 1)[0],
        )
        return {}
    return previous


def run_plan(
    st: Any,
    out_url: str,
    plan: dict[str, Any],
    task: Any,
    /,
    *,
    client: Any,
    resume: bool,
    key_prefix: str,
    progress: bool,
    what: str = "partition",
    **task_kwargs: Any,
) -> RunOutcome:
    """Run one named task per partition of ``plan`` on the cluster, resuming an earlier run.

    The client side shared by :func:`infer` and
    :func:`astrokit.catalogue_inference.infer_catalogue`:

    * a ``plan.json`` with the same ``fingerprint`` is an earlier run of the same work: its
      partitions (cut for the cluster it ran on) are kept, and every one whose file holds
      exactly its rows is skipped;
    * otherwise the last wave is cut for today's cluster (:func:`astrokit.partitions.balance`);
    * ``plan.json`` is written, then ``task(partition, **task_kwargs, run_id=...)`` is mapped
      as ``<key_prefix>-<run>-NNNNN`` with a progress bar; the workers get their torch threads
      from :class:`astrokit.workers.TorchThreads` and their store through
      :func:`astrokit.workers.task_store` (the caller passes ``store`` in ``task_kwargs``).

    ``plan["partitions"]`` are the JSON dicts; the tasks get typed partitions.
    """
    from astrokit.cluster import client_or_local
    from astrokit.workers import setup_workers, task_store

    if "store" in task_kwargs:
        task_kwargs["store"] = task_store(task_kwargs["store"])
    plan_url = f"{out_url}/{PLAN_NAME}"
    previous = _previous_plan(st, plan_url, plan["fingerprint"], resume)
    run_id = uuid.uuid4().hex[:8]
    stats: list[dict[str, Any]] = []
    failures: dict[int, str] = {}
    n_workers = n_threads = 0
    done: set[int] = set()
    t_compute = time.perf_counter()
    with contextlib.ExitStack() as stack:
        if previous:
            # The same run: keep its partitions (cut for the cluster it ran on), so that every
            # finished file still counts, whatever the size of today's cluster.
            plan["partitions"] = previous["partitions"]
            done = {p["index"] for p in plan["partitions"] if _finished(st, out_url, p)}
            log.info(
                "resuming: %d of %d %ss already finished", len(done), len(plan["partitions"]), what
            )
        todo = [p for p in plan["partitions"] if p["index"] not in done]
        cl = None
        if todo:
            cl = stack.enter_context(client_or_local(client))
            workers = cl.scheduler_info().get("workers", {})
            n_workers = len(workers)
            n_threads = sum(w.get("nthreads", 0) for w in workers.values())
            if not previous:
                plan["partitions"] = balance_partitions(plan["partitions"], n_threads)
                todo = plan["partitions"]
        st.write_bytes(plan_url, json.dumps(plan, indent=1).encode())
        if cl is not None:
            setup_workers(cl)
            log.info(
                "running %d %ss (%d rows) on %d workers / %d threads",
                len(todo), what, sum(p["rows"] for p in todo), n_workers, n_threads,
            )  # fmt: skip
            parts = [as_partition(p) for p in todo]
            futures = cl.map(
                task,
                parts,
                key=[f"{key_prefix}-{run_id}-{p.index:05d}" for p in parts],
                run_id=run_id,
                retries=1,  # a transient store error gets a second chance
                pure=False,
                **task_kwargs,
            )
            by_key = {f.key: p for f, p in zip(futures, parts, strict=True)}
            bar = _progress_bar(len(plan["partitions"]), len(done), progress)
            try:
                from distributed import as_completed

                for fut in as_completed(futures):
                    part = by_key[fut.key]
                    try:
                        stats.append(fut.result())
                    except Exception as exc:
                        failures[part.index] = f"{type(exc).__name__}: {exc}"
                        log.error("%s %d failed: %s", what, part.index, exc)
                    if bar is not None:
                        bar.update(1)
            finally:
                if bar is not None:
                    bar.close()
                for fut in futures:
                    fut.release()
    return RunOutcome(
        stats, failures, len(done), n_workers, n_threads, time.perf_counter() - t_compute
    )


# -- the run ---------------------------------------------------------------------------------


def infer(
    data_url: str,
    *,
    model: str | None = None,
    out: str | None = None,
    client: Any = None,
    store: Any = None,
    partition_mb: float = DEFAULT_PARTITION_MB,
    batch_size: int | None = None,
    device: str | None = None,
    max_nan_fraction: float | None = None,
    precision: str | None = None,
    parity_tolerance: float | None = None,
    parity_sample: int | None = None,
    resume: bool = True,
    progress: bool = True,
) -> InferenceResult:
    """Predict redshifts for every row of a shard set (or FITS cutout directory) on the cluster.

    Parameters
    ----------
    data_url : str
        A shard set (directory with ``manifest.json``) or a directory of FITS cutouts.
    model : str, optional
        Checkpoint URL (default: ``$ASTROKIT_MODEL_URL``, the platform's demo model).
    out : str, optional
        Output directory (default: ``$ASTROKIT_USER_URL/inference/<data name>``).
    client : distributed.Client, optional
        Cluster to run on; default: the current client, else the spawner's cluster from the
        environment, else a temporary local cluster (2 processes x 1 thread).
    store : astrokit.store.Store, optional
        Store for all reads and writes (default: from the URLs and the environment). Workers
        get it as a :class:`~astrokit.workers.StoreSpec` (URL, endpoint, areas) and take
        credentials from their own environment: no key or secret travels in the task graph.
    partition_mb : float
        Target partition size in MB (one task each); default 25.
    batch_size : int, optional
        Samples per forward pass (default: 256 on CPU, 1024 on CUDA).
    device : str, optional
        Device on the workers (default: CUDA when present, else CPU; ``$ASTROKIT_DEVICE``).
    max_nan_fraction : float, optional
        Input policy threshold (default 0.05): rows with more non-finite pixels, or a
        non-finite magnitude, are reported as bad instead of predicted.
    precision : str, optional
        ``"auto"`` (default; ``$ASTROKIT_PRECISION`` overrides it), ``"fp32"``, ``"bf16"`` or
        ``"fp16"`` (CUDA only); see :mod:`astrokit.models.precision`. Each worker decides for
        its own device; a reduced precision is kept only where the parity guard passes.
    parity_tolerance : float, optional
        Largest ``|z_reduced - z_fp32|`` the parity guard accepts (default 1e-3).
    parity_sample : int, optional
        Rows of its first partition each worker predicts in both precisions (default 128;
        0 skips the guard).
    resume : bool
        Skip partitions already finished by an earlier run of the same plan (default True).
    progress : bool
        Show a progress bar (default True).

    Returns
    -------
    InferenceResult

    Raises
    ------
    InferenceError
        No model or output location, nothing to infer on.
    IncompleteResultError
        Some partitions failed or the predictions do not match the input row for row; the
        summary (``complete: false``) is written first and attached as ``exc.result``.
    """
    from astrokit.models.precision import PrecisionError, check_precision, check_tolerance
    from astrokit.models.runtime import DEFAULT_MAX_NAN_FRACTION
    from astrokit.store import resolve

    t_start = time.perf_counter()
    try:  # argument errors before any work: the workers would fail on every partition
        precision = check_precision(precision)
        parity_tolerance = check_tolerance(parity_tolerance)
    except PrecisionError as exc:
        raise InferenceError(str(exc)) from exc
    if precision == "fp16" and device is not None and str(device).startswith("cpu"):
        raise InferenceError("precision 'fp16' runs only on CUDA devices, not on device 'cpu'")
    if parity_sample is not None and parity_sample < 0:
        raise InferenceError(f"parity_sample must be >= 0, got {parity_sample}")
    model = model or os.environ.get(env.MODEL_URL)
    if not model:
        raise InferenceError(f"no model given and {env.MODEL_URL} is not set; pass model=URL")
    out = (out or _default_out(data_url)).rstrip("/")
    nan_policy = DEFAULT_MAX_NAN_FRACTION if max_nan_fraction is None else max_nan_fraction
    st, out_url = resolve(out, store)
    st.makedirs(out_url)

    model_sha = _check_model(model, store)
    plan = plan_partitions(data_url, partition_mb=partition_mb, store=store)
    plan["model_url"] = model
    plan["model_sha256"] = model_sha
    plan["max_nan_fraction"] = nan_policy
    plan["precision"] = precision
    plan["parity_tolerance"] = parity_tolerance
    plan["fingerprint"] = _fingerprint(plan, model_sha, nan_policy, precision)

    options = PredictOptions(
        batch_size=batch_size,
        device=device,
        max_nan_fraction=nan_policy,
        precision=precision,
        parity_tolerance=parity_tolerance,
        parity_sample=parity_sample,
    )
    run = run_plan(
        st,
        out_url,
        plan,
        predict_partition,
        client=client,
        resume=resume,
        key_prefix="astrokit-infer",
        progress=progress,
        model_url=model,
        model_sha256=model_sha,
        out_url=out_url,
        store=store,
        options=options,
    )

    result = _summarise(
        st, out_url, plan, **vars(run), wall_seconds=time.perf_counter() - t_start, store=store
    )
    if not result.summary["complete"]:
        raise IncompleteResultError(
            f"inference at {out_url} is incomplete: {result.summary['problems']}", result
        )
    return result


def _precision_summary(plan: dict[str, Any], stats: list[dict[str, Any]]) -> dict[str, Any]:
    """What the workers computed in, why, and what the parity guard measured.

    ``chosen`` is the precision most partitions of this call ran in (None when nothing was
    computed, e.g. a fully resumed run); ``fallback`` is true when any worker's guard sent it
    back to fp32; ``parity`` merges the workers' reports (one per worker): ``max_abs_dz`` is
    the largest |z_reduced - z_fp32| any of them measured on its sample.
    """
    from astrokit.models.precision import merge_reports

    choices = [s["precision"] for s in stats if s.get("precision")]
    by_precision = Counter(c["precision"] for c in choices)
    reasons = list(dict.fromkeys(c["reason"] for c in choices))
    per_worker: dict[str, dict[str, Any]] = {}
    for s in stats:
        if s.get("parity"):
            per_worker.setdefault(s.get("worker", str(len(per_worker))), s["parity"])
    parity = merge_reports(list(per_worker.values()))
    if parity is not None:
        parity["max_abs_dz"] = parity.pop("max_abs_diff")
    fallback = parity is not None and not parity["passed"]
    chosen = by_precision.most_common(1)[0][0] if by_precision else None
    note = None
    if chosen is not None:
        note = f"{chosen} ({'; '.join(reasons)})"
        if parity is not None:
            note += (
                f"; parity max |dz| {parity['max_abs_dz']:.2e} (tolerance "
                f"{parity['tolerance']:.0e}) on {parity['n']} rows of {parity['workers']} workers"
            )
    return {
        "requested": plan.get("precision", "fp32"),
        "chosen": chosen,
        "reasons": reasons,
        "partitions_by_precision": dict(by_precision),
        "fallback": fallback,
        "parity": parity,
        "note": note,
    }


def _summarise(
    st: Any,
    out_url: str,
    plan: dict[str, Any],
    *,
    stats: list[dict[str, Any]],
    failures: dict[int, str],
    resumed: int,
    compute_seconds: float,
    wall_seconds: float,
    workers: int,
    threads: int,
    store: Any,
) -> InferenceResult:
    """Read every partition file, check exactness, write catalogue and summary.

    The keyword arguments are a :class:`RunOutcome`'s fields (``**vars(outcome)``).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from astrokit.metrics import MetricsError, photoz_metrics

    tables = []
    problems: list[str] = []
    for part in plan["partitions"]:
        url = f"{out_url}/{partition_file(part['index'])}"
        if part["index"] in failures:
            problems.append(f"partition {part['index']} failed: {failures[part['index']]}")
            continue
        try:
            tables.append(_read_table(st, url))
        except Exception as exc:
            problems.append(f"partition {part['index']}: cannot read {url} ({exc})")
    catalog = (
        pa.concat_tables(tables)
        if tables
        else pa.table({c: pa.array([], pa.string()) for c in PRED_COLUMNS})
    )

    # exactness: the multiset of (source, row) must equal the plan's, element for element
    expected = Counter(k for p in plan["partitions"] for k in _expected_keys(p))
    if tables:
        got = Counter(zip(catalog["source"].to_pylist(), catalog["row"].to_pylist(), strict=True))
    else:
        got = Counter()
    missing = sum(max(0, n - got[k]) for k, n in expected.items())
    duplicates = sum(max(0, n - expected[k]) for k, n in got.items() if k in expected)
    unexpected = sum(n for k, n in got.items() if k not in expected)
    if missing:
        problems.append(f"{missing} input rows have no prediction")
    if duplicates:
        problems.append(f"{duplicates} duplicate predictions")
    if unexpected:
        problems.append(f"{unexpected} predictions for rows not in the input")

    n_rows = catalog.num_rows
    status = np.array(catalog["status"].to_pylist(), dtype=object) if n_rows else np.array([])
    ok = status == "ok"
    bad_counts = dict(Counter(status[~ok].tolist())) if n_rows else {}
    ids = catalog["id"].to_pylist() if n_rows else []
    duplicate_ids = sum(c - 1 for c in Counter(i for i in ids if i).values() if c > 1)
    metrics = None
    n_labelled = 0
    if n_rows:
        z_pred = catalog["z_pred"].to_numpy(zero_copy_only=False).astype(np.float64)
        z_true = catalog["z_true"].to_numpy(zero_copy_only=False).astype(np.float64)
        labelled = ok & np.isfinite(z_true)
        n_labelled = int(labelled.sum())
        if n_labelled:
            try:
                metrics = photoz_metrics(z_pred[labelled], z_true[labelled])
            except MetricsError:
                metrics = None
    bad_rows = []
    if n_rows and (~ok).any():
        errors = catalog["error"].to_pylist()
        sources = catalog["source"].to_pylist()
        rows = catalog["row"].to_pylist()
        for i in np.flatnonzero(~ok)[:MAX_LISTED_BAD]:
            bad_rows.append(
                {
                    "id": ids[i],
                    "source": sources[i],
                    "row": rows[i],
                    "status": status[i],
                    "error": errors[i],
                }
            )

    computed_rows = sum(s["rows"] for s in stats)
    compute_task_s = sum(s["compute_s"] for s in stats)
    summary = {
        "complete": not problems,
        "problems": problems,
        "data_url": plan["data_url"],
        "input_kind": plan["kind"],
        "model_url": plan["model_url"],
        "model_sha256": plan["model_sha256"],
        "out_url": out_url,
        "n_rows": int(plan["total_rows"]),
        "n_predictions": int(n_rows),
        "n_ok": int(ok.sum()) if n_rows else 0,
        "n_bad": int((~ok).sum()) if n_rows else 0,
        "bad_by_status": bad_counts,
        "bad_rows": bad_rows,
        "missing": int(missing),
        "duplicates": int(duplicates),
        "unexpected": int(unexpected),
        "duplicate_ids": int(duplicate_ids),
        "n_labelled": n_labelled,
        "metrics": metrics,
        "partitions": len(plan["partitions"]),
        "partitions_resumed": resumed,
        "partitions_computed": len(stats),
        "partitions_failed": sorted(failures),
        "workers": workers,
        "threads": threads,
        "rows_computed": int(computed_rows),
        "compute_seconds": compute_seconds,
        "wall_seconds": wall_seconds,
        "samples_per_second": computed_rows / compute_seconds if compute_seconds > 0 else None,
        "task_compute_seconds": compute_task_s,
        "max_nan_fraction": plan["max_nan_fraction"],
        "precision": _precision_summary(plan, stats),
    }
    catalog_url = f"{out_url}/{CATALOG_NAME}"
    summary_url = f"{out_url}/{SUMMARY_NAME}"
    if n_rows:
        buf = io.BytesIO()
        pq.write_table(catalog.sort_by([("partition", "ascending"), ("row", "ascending")]), buf)
        st.write_bytes(catalog_url, buf.getvalue())
    st.write_bytes(summary_url, json.dumps(summary, indent=1, default=float).encode())
    if summary["precision"]["chosen"] is not None:
        log.info("precision: %s", summary["precision"]["note"])
    if summary["complete"]:
        log.info(
            "inference complete: %d rows (%d ok, %d bad) -> %s; %.1f samples/s",
            n_rows,
            summary["n_ok"],
            summary["n_bad"],
            catalog_url,
            summary["samples_per_second"] or 0.0,
        )
    return InferenceResult(
        out_url=out_url,
        summary=summary,
        catalog_url=catalog_url,
        summary_url=summary_url,
        _store=store,
    )
