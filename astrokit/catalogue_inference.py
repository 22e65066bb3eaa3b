"""Distributed photo-z for catalogues: ``infer_catalogue(url, model=ckpt, out=dir)``.

The catalogue counterpart of :func:`astrokit.inference.infer`, built on the same machinery
and giving the same guarantees:

* the catalogue is cut into row ranges (:func:`astrokit.catalogue.plan_catalogue`; parquet
  row groups), and the last wave is split over the cluster's threads
  (:func:`astrokit.inference.balance_partitions`);
* one named task per range (``astrokit-infer-catalogue-<run>-NNNNN``, mapped by
  :func:`astrokit.inference.run_plan`) runs :func:`predict_catalogue_partition` on the user's
  cluster: the model is loaded once per worker, each range's predictions are written
  atomically to ``pred-NNNNN.parquet``;
* a rerun with the same catalogue, columns and model skips every range whose file holds
  exactly its rows (``resume``); a task whose worker dies is rerun by Dask and rewrites the
  same file;
* the summary (the image path's, :func:`astrokit.inference._summarise`) checks that every
  input row -- (file name, row number) -- has exactly one output row, writes
  ``catalog.parquet`` and ``summary.json``, and raises
  :class:`~astrokit.inference.IncompleteResultError` when it does not.

Every output row has ``id``, ``z_pred`` (median of p(z)), ``z_lo`` / ``z_hi`` (central
68 % interval), ``z_mean``, ``z_true`` (NaN when unknown), ``status`` (``ok``,
``bad_magnitude``, ``bad_error``, ``bad_file``), ``error`` (why a row is bad), ``pit`` and
``crps`` (when ``z_true`` is known) and the mixture itself (``pz_weight``, ``pz_mean``,
``pz_sigma``, one list per row) for users who need the full p(z). Bad rows get NaN
predictions: they are reported, never predicted. The summary adds, over the labelled good rows,
the coverage of the 68 % interval, the PIT histogram and the mean CRPS to the point metrics.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np

from astrokit.catalogue import (
    DEFAULT_PARTITION_ROWS,
    CatalogueError,
    CatalogueSpec,
    plan_catalogue,
    read_spec_arrays,
    screen_photometry,
)
from astrokit.inference import (
    PLAN_NAME,
    IncompleteResultError,
    InferenceError,
    InferenceResult,
    _default_out,
    _summarise,
    run_plan,
)
from astrokit.inference_worker import encode_columns, task_stats, write_partition_file
from astrokit.partitions import CatalogueRange, as_partition

log = logging.getLogger(__name__)

__all__ = ["infer_catalogue", "predict_catalogue_partition", "resolve_spec"]

_MODELS: OrderedDict[tuple[str, str], Any] = OrderedDict()
_MODELS_LOCK = threading.Lock()


def _get_model(model_url: str, sha256: str, store: Any) -> Any:
    """The photometry checkpoint, loaded once per worker process (two kept at most)."""
    from astrokit.inference_worker import ModelChangedError
    from astrokit.models.photometry import load_photometry_checkpoint

    key = (model_url, sha256)
    with _MODELS_LOCK:
        if key in _MODELS:
            _MODELS.move_to_end(key)
            return _MODELS[key]
        ckpt = load_photometry_checkpoint(model_url, store=store)
        if sha256 and ckpt.sha256 != sha256:
            raise ModelChangedError(
                f"{model_url}: checkpoint sha256 is now {ckpt.sha256[:12]}..., the run started "
                f"with {sha256[:12]}...; it was overwritten during the run -- start again"
            )
        _MODELS[key] = ckpt
        while len(_MODELS) > 2:
            _MODELS.popitem(last=False)
        return ckpt


def resolve_spec(
    ckpt_columns: dict[str, Any],
    *,
    bands: str | list[str] | None = None,
    errors: str | list[str] | None = None,
    z_column: str | None = None,
    id_column: str | None = None,
) -> CatalogueSpec:
    """The columns to read: the caller's, defaulting to those the model was trained on.

    ``z_column`` defaults to the training one only when ``bands`` is not given either (a
    catalogue with other column names need not have a redshift); pass ``z_column=""`` to
    ignore a redshift column.

    Raises
    ------
    CatalogueError
        The number of bands differs from the model's.
    """
    trained = CatalogueSpec.from_dict(ckpt_columns) if ckpt_columns.get("bands") else None
    if bands is None and trained is None:
        raise CatalogueError("the checkpoint names no bands; give bands (e.g. 'u,g,r,i,z')")
    spec = CatalogueSpec(
        bands if bands is not None else trained.bands,  # type: ignore[union-attr]
        errors if errors is not None or bands is not None else trained.errors,  # type: ignore[union-attr]
        z_column if z_column is not None or bands is not None else trained.z_column,  # type: ignore[union-attr]
        id_column if id_column is not None or bands is not None else trained.id_column,  # type: ignore[union-attr]
    )
    if trained is not None and len(spec.bands) != len(trained.bands):
        raise CatalogueError(
            f"the model was trained on {len(trained.bands)} bands ({', '.join(trained.bands)}); "
            f"got {len(spec.bands)} ({', '.join(spec.bands)})"
        )
    if trained is not None and bool(spec.errors) != bool(trained.errors):
        want = "with" if trained.errors else "without"
        raise CatalogueError(
            f"the model was trained {want} magnitude errors ({trained.errors}); got "
            f"errors={spec.errors}"
        )
    return spec


def _drop_absent_defaults(
    data_url: str, spec: CatalogueSpec, z_column: str | None, id_column: str | None, store: Any
) -> CatalogueSpec:
    """Forget a redshift / id column taken from the checkpoint that this catalogue lacks.

    Both are optional at inference: a catalogue to predict usually has no redshift. Columns
    the caller named explicitly are kept, so that their absence is an error.
    """
    from astrokit.catalogue import catalogue_columns

    available = catalogue_columns(data_url, store=store)
    drop_z = z_column is None and spec.z_column and spec.z_column not in available
    drop_id = id_column is None and spec.id_column and spec.id_column not in available
    if not (drop_z or drop_id):
        return spec
    if drop_z:
        log.info("%s has no %r column: no redshifts, no metrics", data_url, spec.z_column)
    return CatalogueSpec(
        spec.bands,
        spec.errors,
        None if drop_z else spec.z_column,
        None if drop_id else spec.id_column,
    )


#: Columns of every catalogue prediction file, in order, with their types.
CATALOGUE_SCHEMA = (
    ("id", "str"),
    ("z_pred", "f32"),
    ("z_lo", "f32"),
    ("z_hi", "f32"),
    ("z_mean", "f32"),
    ("z_true", "f32"),
    ("status", "str"),
    ("pit", "f32"),
    ("crps", "f32"),
    ("pz_weight", "f32[]"),
    ("pz_mean", "f32[]"),
    ("pz_sigma", "f32[]"),
    ("source", "str"),
    ("row", "i64"),
    ("partition", "i32"),
    ("error", "str"),
)


def encode_catalogue_predictions(cols: dict[str, Any]) -> bytes:
    """Parquet bytes of one partition's predictions (see the module docstring)."""
    return encode_columns(cols, CATALOGUE_SCHEMA)


def predict_catalogue_partition(
    part: CatalogueRange | Mapping[str, Any],
    *,
    model_url: str,
    model_sha256: str,
    out_url: str,
    spec: dict[str, Any],
    store: Any = None,
    batch_size: int = 8192,
    run_id: str | None = None,
) -> dict[str, Any]:
    """Predict one row range of a catalogue and write its ``pred-NNNNN.parquet`` atomically.

    Returns
    -------
    dict
        ``index``, ``rows``, ``ok``, ``bad``, ``read_s``, ``compute_s``, ``write_s``, ``file``.
    """
    from astrokit.models.photometry import predict_mixture, summarise_mixture
    from astrokit.store import StoreError
    from astrokit.workers import open_task_store

    # torch threads = the worker's threads: astrokit.workers.TorchThreads, once per worker
    part = as_partition(part)
    store = open_task_store(store)
    t0 = time.perf_counter()
    cspec = CatalogueSpec.from_dict(spec)
    ckpt = _get_model(model_url, model_sha256, store)
    n = part.rows
    cols: dict[str, Any] = {
        "id": np.array([""] * n, dtype=object),
        "z_true": np.full(n, np.nan),
        "status": np.full(n, "bad_file", dtype=object),
        "error": np.full(n, "", dtype=object),
        "source": np.array([part.source] * n, dtype=object),
        "row": np.arange(part.start, part.stop, dtype=np.int64),
        "partition": np.full(n, part.index, dtype=np.int32),
        **{c: np.full(n, np.nan) for c in ("z_pred", "z_lo", "z_hi", "z_mean", "pit", "crps")},
    }
    pz = {c: [None] * n for c in ("pz_weight", "pz_mean", "pz_sigma")}
    try:
        data = read_spec_arrays(
            part.source_url, cspec, start=part.start, stop=part.stop, store=store
        )
    except (CatalogueError, StoreError) as exc:
        # the range cannot be read: every row is reported, none is lost or invented
        log.error("partition %d: %s", part.index, exc)
        cols["error"][:] = f"{type(exc).__name__}: {exc}"
        data = None
    t1 = time.perf_counter()
    if data is not None:
        if len(data["ids"]) != n:
            raise RuntimeError(
                f"partition {part.index}: read {len(data['ids'])} rows, the plan expects {n}"
            )
        cols["id"], cols["z_true"] = data["ids"], data["z"]
        cols["status"], cols["error"] = screen_photometry(data["mags"], data["errors"], cspec)
        ok = np.flatnonzero(cols["status"] == "ok")
        if ok.size:
            errs = data["errors"][ok] if data["errors"] is not None else None
            w, m, s = predict_mixture(ckpt.model, data["mags"][ok], errs, batch_size=batch_size)
            summ = summarise_mixture(w, m, s, data["z"][ok])
            for c, v in summ.items():
                cols[c][ok] = v
            for c, v in (("pz_weight", w), ("pz_mean", m), ("pz_sigma", s)):
                for j, i in enumerate(ok):
                    pz[c][i] = v[j].astype(np.float32).tolist()
    t2 = time.perf_counter()
    payload = encode_catalogue_predictions({**cols, **pz})
    target = write_partition_file(out_url, part.index, payload, store)
    return task_stats(part, cols["status"], (t0, t1, t2, time.perf_counter()), target)


def _fingerprint(plan: dict[str, Any], model_sha256: str) -> str:
    doc = json.dumps(
        {"partitions": plan["partitions"], "spec": plan["spec"], "model": model_sha256},
        sort_keys=True,
    )
    return hashlib.sha256(doc.encode()).hexdigest()


def infer_catalogue(
    data_url: str,
    *,
    model: str | None = None,
    out: str | None = None,
    bands: str | list[str] | None = None,
    errors: str | list[str] | None = None,
    z_column: str | None = None,
    id_column: str | None = None,
    client: Any = None,
    store: Any = None,
    partition_rows: int = DEFAULT_PARTITION_ROWS,
    batch_size: int = 8192,
    resume: bool = True,
    progress: bool = True,
) -> InferenceResult:
    """Photo-z with uncertainties for every row of a catalogue, on the cluster.

    Parameters
    ----------
    data_url : str
        Catalogue file (parquet, CSV or FITS binary table).
    model : str, optional
        Photometry checkpoint (``astrokit train CATALOGUE --bands ...``); default
        ``$ASTROKIT_CATALOGUE_MODEL_URL``.
    out : str, optional
        Output directory (default ``$ASTROKIT_USER_URL/inference/<catalogue name>``).
    bands, errors, z_column, id_column
        Columns (see :class:`~astrokit.catalogue.CatalogueSpec`); by default those the model
        was trained on (:func:`resolve_spec`).
    client : distributed.Client, optional
        Cluster (default: current, the spawner's, else a temporary local one).
    store : astrokit.store.Store, optional
        Store for every read and write (workers get it without credentials:
        :func:`astrokit.workers.task_store`).
    partition_rows : int
        Rows per task (parquet: whole row groups of at least this many rows).
    batch_size : int
        Rows per forward pass.
    resume : bool
        Skip ranges already finished by an earlier run of the same plan.
    progress : bool
        Show a progress bar.

    Returns
    -------
    astrokit.inference.InferenceResult
        ``summary["metrics"]`` has the point metrics plus ``coverage_68``, ``crps_mean``,
        ``interval_width_median`` and ``pit`` (histogram) when redshifts are known.

    Raises
    ------
    astrokit.catalogue.MissingColumnError
        A column is not in the file (before any task runs).
    InferenceError
        No model or output location.
    IncompleteResultError
        Some ranges failed or rows do not match the input one for one (summary written).
    """
    import os

    from astrokit.store import resolve

    t_start = time.perf_counter()
    model = model or os.environ.get("ASTROKIT_CATALOGUE_MODEL_URL")
    if not model:
        raise InferenceError(
            "no model given and ASTROKIT_CATALOGUE_MODEL_URL is not set; pass model=URL "
            "(a checkpoint from `astrokit train CATALOGUE --bands ...`)"
        )
    from astrokit.models.photometry import load_photometry_checkpoint

    ckpt = load_photometry_checkpoint(model, store=store)
    spec = resolve_spec(
        ckpt.columns, bands=bands, errors=errors, z_column=z_column, id_column=id_column
    )
    spec = _drop_absent_defaults(data_url, spec, z_column, id_column, store)
    plan = plan_catalogue(data_url, spec, partition_rows=partition_rows, store=store)
    out = (out or _default_out(data_url)).rstrip("/")
    st, out_url = resolve(out, store)
    st.makedirs(out_url)
    plan.update(model_url=model, model_sha256=ckpt.sha256, max_nan_fraction=None)
    plan["fingerprint"] = _fingerprint(plan, ckpt.sha256)

    run = run_plan(
        st,
        out_url,
        plan,
        predict_catalogue_partition,
        client=client,
        resume=resume,
        key_prefix="astrokit-infer-catalogue",
        progress=progress,
        what="range",
        model_url=model,
        model_sha256=ckpt.sha256,
        out_url=out_url,
        spec=spec.to_dict(),
        store=store,
        batch_size=batch_size,
    )
    result = _summarise(
        st, out_url, plan, **vars(run), wall_seconds=time.perf_counter() - t_start, store=store
    )
    _add_uncertainty_summary(st, result)
    if not result.summary["complete"]:
        raise IncompleteResultError(
            f"catalogue inference at {out_url} is incomplete: {result.summary['problems']}",
            result,
        )
    return result


def _add_uncertainty_summary(st: Any, result: InferenceResult) -> None:
    """Add coverage, PIT and CRPS (and the columns used) to the summary; rewrite it."""
    import pyarrow.parquet as pq

    from astrokit.metrics import MetricsError, uncertainty_metrics

    summary = result.summary
    summary["rows_per_second"] = summary.get("samples_per_second")
    plan = json.loads(st.read_bytes(f"{summary['out_url']}/{PLAN_NAME}"))
    summary["columns"] = plan.get("spec")
    if summary.get("metrics") and st.exists(result.catalog_url):
        cols = ["status", "z_lo", "z_hi", "z_true", "pit", "crps"]
        table = pq.read_table(io.BytesIO(st.read_bytes(result.catalog_url)), columns=cols)
        arr = {c: table[c].to_numpy(zero_copy_only=False) for c in cols}
        sel = (arr["status"] == "ok") & np.isfinite(arr["z_true"].astype(np.float64))
        try:
            summary["metrics"].update(
                uncertainty_metrics(
                    arr["z_lo"][sel],
                    arr["z_hi"][sel],
                    arr["z_true"][sel],
                    pit=arr["pit"][sel],
                    crps=arr["crps"][sel],
                )
            )
        except MetricsError as exc:
            log.warning("no uncertainty metrics: %s", exc)
    st.write_bytes(result.summary_url, json.dumps(summary, indent=1, default=float).encode())
