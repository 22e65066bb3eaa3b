"""Distributed photo-z inference: ``astrokit.infer(data_url, model=ckpt, out=url)``.

The client side of the run. It

1. **plans** partitions: a shard set (``manifest.json``, :mod:`astrokit.shards`) is cut into
   row ranges of about ``partition_mb`` MB (one per shard at the default 25 MB); a directory of
   FITS cutouts is grouped into lists of files of about that size. The plan is written to
   ``<out>/plan.json``;
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
import itertools
import json
import logging
import math
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
from astrokit.inference_worker import PRED_COLUMNS, partition_file, predict_partition

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_PARTITION_MB",
    "IncompleteResultError",
    "InferenceError",
    "InferenceResult",
    "infer",
    "plan_partitions",
]

#: Default partition size in MB (10^6 bytes), as in CAI's 25 MB Lambda partitions.
DEFAULT_PARTITION_MB = 25.0
#: Names of FITS cutout files accepted as direct input.
FITS_PATTERNS = ("*.fits", "*.fits.gz", "*.fit", "*.fts")
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


def _is_shard_set(data_url: str, store: Any) -> bool:
    from astrokit.shards import MANIFEST_NAME
    from astrokit.store import resolve

    st, url = resolve(data_url, store)
    return url.endswith("/" + MANIFEST_NAME) or st.exists(f"{url.rstrip('/')}/{MANIFEST_NAME}")


def plan_partitions(
    data_url: str, *, partition_mb: float = DEFAULT_PARTITION_MB, store: Any = None
) -> dict[str, Any]:
    """Cut the input into partitions of about ``partition_mb`` MB (pure apart from listing).

    Returns
    -------
    dict
        ``{"data_url", "kind": "shards"|"fits", "total_rows", "partitions": [...]}``; each
        partition is a JSON-able dict with ``index``, ``kind``, ``rows`` and either
        ``source_url``/``shard``/``start``/``stop`` (shards) or ``files`` (FITS).

    Raises
    ------
    InferenceError
        Nothing to infer on at ``data_url``.
    """
    if partition_mb <= 0:
        raise InferenceError(f"partition_mb must be > 0, got {partition_mb}")
    target = partition_mb * 1e6
    partitions: list[dict[str, Any]] = []
    if _is_shard_set(data_url, store):
        from astrokit.shards import Manifest

        manifest = Manifest.load(data_url, store=store)
        for info in manifest.shards:
            if info.rows == 0:
                continue
            pieces = max(1, math.ceil(info.bytes / target))
            bounds = np.linspace(0, info.rows, min(pieces, info.rows) + 1).round().astype(int)
            for start, stop in itertools.pairwise(bounds):
                partitions.append(
                    {
                        "index": len(partitions),
                        "kind": "shard",
                        "source_url": manifest.shard_url(info),
                        "shard": {
                            "name": info.name,
                            "rows": info.rows,
                            "sha256": info.sha256,
                            "bytes": info.bytes,
                        },
                        "start": int(start),
                        "stop": int(stop),
                        "rows": int(stop - start),
                    }
                )
        kind = "shards"
    else:
        import fnmatch

        from astrokit.store import StoreNotFound, resolve

        st, url = resolve(data_url, store)
        group: list[str] = []
        size = 0
        try:
            entries = list(st.iter_entries(url))
        except StoreNotFound as exc:
            raise InferenceError(f"{data_url}: no such shard set or directory") from exc
        for entry in entries:
            if entry.kind != "file" or not any(
                fnmatch.fnmatchcase(entry.name.lower(), p) for p in FITS_PATTERNS
            ):
                continue
            group.append(entry.url)
            size += entry.size or 0
            if size >= target:
                partitions.append(_fits_partition(len(partitions), group))
                group, size = [], 0
        if group:
            partitions.append(_fits_partition(len(partitions), group))
        kind = "fits"
    if not partitions:
        raise InferenceError(
            f"{data_url}: nothing to infer on (expected a shard set with manifest.json or a "
            f"directory of FITS cutouts matching {', '.join(FITS_PATTERNS)})"
        )
    return {
        "data_url": data_url,
        "kind": kind,
        "total_rows": sum(p["rows"] for p in partitions),
        "partition_mb": partition_mb,
        "partitions": partitions,
    }


def _fits_partition(index: int, files: list[str]) -> dict[str, Any]:
    return {"index": index, "kind": "fits", "files": list(files), "rows": len(files)}


def _split(part: dict[str, Any], pieces: int) -> list[dict[str, Any]]:
    """``part`` cut into up to ``pieces`` near-equal partitions (row ranges or file groups)."""
    pieces = max(1, min(pieces, part["rows"]))
    if pieces == 1:
        return [part]
    if part["kind"] in ("shard", "catalogue"):  # row ranges (catalogue: astrokit.catalogue)
        bounds = np.linspace(part["start"], part["stop"], pieces + 1).round().astype(int)
        return [
            {**part, "start": int(a), "stop": int(b), "rows": int(b - a)}
            for a, b in itertools.pairwise(bounds)
        ]
    bounds = np.linspace(0, len(part["files"]), pieces + 1).round().astype(int)
    return [_fits_partition(0, part["files"][a:b]) for a, b in itertools.pairwise(bounds)]


def balance_partitions(partitions: list[dict[str, Any]], slots: int) -> list[dict[str, Any]]:
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
    if slots <= 1 or not partitions:
        return [dict(p) for p in partitions]
    rest = len(partitions) % slots
    head = partitions[: len(partitions) - rest]
    tail = partitions[len(partitions) - rest :]
    out = [dict(p) for p in head]
    for part in tail:
        out.extend(_split(part, slots))
    for i, part in enumerate(out):
        part["index"] = i
    return out


def _expected_keys(part: dict[str, Any]) -> list[tuple[str, int]]:
    """The (source, row) identities a partition must produce."""
    if part["kind"] == "shard":
        return [(part["shard"]["name"], r) for r in range(part["start"], part["stop"])]
    if part["kind"] == "catalogue":  # a row range of one catalogue file
        return [(part["source"], r) for r in range(part["start"], part["stop"])]
    return [(u.rstrip("/").rsplit("/", 1)[-1], 0) for u in part["files"]]


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
        Store for all reads and writes (default: from the URLs and the environment); it is
        sent to the workers, so explicit ``storage_options`` reach them too.
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
    from astrokit.cluster import client_or_local
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

    plan_url = f"{out_url}/{PLAN_NAME}"
    previous: dict[str, Any] = {}
    if resume and st.exists(plan_url):
        try:
            previous = json.loads(st.read_bytes(plan_url))
        except (ValueError, OSError):
            previous = {}
        if previous.get("fingerprint") != plan["fingerprint"]:
            log.warning(
                "%s holds a run with other data, model or policy; recomputing everything",
                out_url,
            )
            previous = {}

    run_id = uuid.uuid4().hex[:8]
    stats: list[dict[str, Any]] = []
    failures: dict[int, str] = {}
    t_compute = time.perf_counter()
    n_workers = n_threads = 0
    with contextlib.ExitStack() as stack:
        if previous:
            # The same run: keep its partitions (cut for the cluster it ran on), so that every
            # finished file still counts, whatever the size of today's cluster.
            plan["partitions"] = previous["partitions"]
            done = {p["index"] for p in plan["partitions"] if _finished(st, out_url, p)}
            log.info(
                "resuming: %d of %d partitions already finished",
                len(done),
                len(plan["partitions"]),
            )
        else:
            done = set()
        todo = [p for p in plan["partitions"] if p["index"] not in done]
        cl = None
        if todo:
            cl = stack.enter_context(client_or_local(client))
            info = cl.scheduler_info()
            n_workers = len(info.get("workers", {}))
            n_threads = sum(w.get("nthreads", 0) for w in info.get("workers", {}).values())
            if not previous:
                plan["partitions"] = balance_partitions(plan["partitions"], n_threads)
                todo = plan["partitions"]
        parts = plan["partitions"]
        st.write_bytes(plan_url, json.dumps(plan, indent=1).encode())
        if cl is not None:
            log.info(
                "inferring %d partitions (%d rows) on %d workers / %d threads",
                len(todo),
                sum(p["rows"] for p in todo),
                n_workers,
                n_threads,
            )
            futures = cl.map(
                predict_partition,
                todo,
                key=[f"astrokit-infer-{run_id}-{p['index']:05d}" for p in todo],
                model_url=model,
                model_sha256=model_sha,
                out_url=out_url,
                store=store,
                batch_size=batch_size,
                device=device,
                max_nan_fraction=nan_policy,
                precision=precision,
                parity_tolerance=parity_tolerance,
                parity_sample=parity_sample,
                run_id=run_id,
                retries=1,  # a transient store error gets a second chance
                pure=False,
            )
            by_key = {f.key: p for f, p in zip(futures, todo, strict=True)}
            bar = _progress_bar(len(parts), len(done), progress)
            try:
                from distributed import as_completed

                for fut in as_completed(futures):
                    part = by_key[fut.key]
                    try:
                        stats.append(fut.result())
                    except Exception as exc:
                        failures[part["index"]] = f"{type(exc).__name__}: {exc}"
                        log.error("partition %d failed: %s", part["index"], exc)
                    if bar is not None:
                        bar.update(1)
            finally:
                if bar is not None:
                    bar.close()
                for fut in futures:
                    fut.release()
    compute_seconds = time.perf_counter() - t_compute

    result = _summarise(
        st,
        out_url,
        plan,
        stats=stats,
        failures=failures,
        resumed=len(done),
        compute_seconds=compute_seconds,
        wall_seconds=time.perf_counter() - t_start,
        workers=n_workers,
        threads=n_threads,
        store=store,
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
    """Read every partition file, check exactness, write catalogue and summary."""
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
