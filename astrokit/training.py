"""Training and fine-tuning the photo-z model on a shard set.

``train(shards_url, out=ckpt_url)`` loads the shard set (:mod:`astrokit.shards`), screens rows
with the inference input policy (:mod:`astrokit.models.runtime`), splits train/validation
deterministically, trains an :class:`~astrokit.models.astromae.AstroMAE` (or fine-tunes one
from a checkpoint), logs per-epoch loss and photo-z metrics, and writes a checkpoint holding the
weights, the configuration, the validation metrics *and* those of the trivial baseline that
predicts the training set's mean redshift -- so every model says how much better than nothing
it is.

The demo preset (:data:`DEMO_PRESET`, :func:`train_demo_model`) is what ``make run`` uses to
provide a model: the ``small`` configuration, trained in about three minutes on 2 CPU cores.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from astrokit.errors import UserError
from astrokit.metrics import photoz_metrics

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_TRAIN_PRECISION",
    "DEMO_PRESET",
    "TrainResult",
    "TrainingError",
    "load_shard_arrays",
    "train",
]

#: Precision of :func:`train` when neither ``precision=`` nor ``$ASTROKIT_PRECISION`` says.
DEFAULT_TRAIN_PRECISION = "fp32"

#: Settings of the demo model trained by ``astrokit platform prepare`` (``make run``): the
#: ``small`` configuration (~0.88 M parameters, ~20 MFLOP/sample) for 8 epochs over the
#: seeded survey (6,000 galaxies -> 5,400 train / 600 validation), on one torch thread (robust
#: when the machine is shared; see ``threads`` in :func:`train`). Measured on the 2-core
#: development machine at load 5-8: 304 s, validation sigma_MAD 0.038 / MAE 0.046 / outliers
#: 24 % against the predict-the-mean baseline's 0.110 / 0.106 / 66 % (about 20 s per epoch,
#: i.e. under 3 minutes, when the machine is quiet).
DEMO_PRESET: dict[str, Any] = {
    "config": "small",
    "epochs": 8,
    "batch_size": 64,
    "lr": 2e-3,
    "val_fraction": 0.1,
    "seed": 0,
    "threads": 1,
}


class TrainingError(UserError, RuntimeError):
    """Training cannot start or proceed (no usable rows, bad arguments...)."""


@dataclass
class TrainResult:
    """What :func:`train` produced.

    Attributes
    ----------
    url : str
        Checkpoint URL written.
    metrics : dict
        ``{"val": {...}, "baseline_mean": {...}, "train_loss": float, "n_train": int,
        "n_val": int, "n_skipped": int}`` where ``val`` and ``baseline_mean`` are
        :func:`astrokit.metrics.photoz_metrics` dicts on the validation split.
    history : list of dict
        One entry per epoch: ``epoch``, ``train_loss``, ``val_loss``, ``seconds`` and the
        validation metrics.
    config : dict
        The model configuration.
    seconds : float
        Wall time of the whole call.
    sha256 : str
        Digest of the checkpoint file.
    precision : dict
        The :class:`~astrokit.models.precision.PrecisionChoice` the optimiser ran in
        (``requested``, ``precision``, ``device``, ``reason``).
    """

    url: str
    metrics: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    sha256: str = ""
    precision: dict[str, Any] = field(default_factory=dict)


def load_shard_arrays(data_url: str, *, store: Any = None) -> dict[str, np.ndarray]:
    """Read a whole shard set into memory: ``images``, ``mags``, ``z``, ``ids``.

    Training sets are small (thousands of rows, ~20 KB each); inference never does this.
    """
    from astrokit.shards import Manifest, read_shard

    manifest = Manifest.load(data_url, store=store)
    if not manifest.shards:
        raise TrainingError(f"{data_url}: the shard set is empty")
    parts: dict[str, list[np.ndarray]] = {"images": [], "mags": [], "z": [], "ids": []}
    for info in manifest.shards:
        arrays = read_shard(manifest.shard_url(info), store=store, expect=info)
        for key in parts:
            parts[key].append(arrays[key])
    return {key: np.concatenate(chunks) for key, chunks in parts.items()}


def _augment(images: Any, rng: Any) -> Any:
    """Random flips and 90-degree rotations: galaxies have no preferred orientation."""
    import torch

    k = int(rng.integers(4))
    if k:
        images = torch.rot90(images, k, dims=(2, 3))
    if rng.integers(2):
        images = torch.flip(images, dims=(3,))
    return images


def train(
    data_url: str,
    *,
    out: str,
    config: str | dict | None = "small",
    init: str | None = None,
    epochs: int = 10,
    batch_size: int = 64,
    lr: float = 1e-3,
    weight_decay: float = 0.05,
    val_fraction: float = 0.1,
    max_nan_fraction: float | None = None,
    seed: int = 0,
    device: str | None = None,
    threads: int | None = None,
    precision: str | None = None,
    client: Any = None,
    store: Any = None,
) -> TrainResult:
    """Train (or fine-tune) the photo-z model on a shard set and save a checkpoint.

    Parameters
    ----------
    data_url : str
        Shard set directory (``manifest.json`` + ``shard-*.npz``); rows with unknown ``z``
        or bad inputs (see :mod:`astrokit.models.runtime`) are skipped and counted.
    out : str
        Checkpoint URL to write (atomically), e.g. ``s3://bucket/users/me/photoz.pt``.
    config : str or dict, optional
        Model configuration for a fresh model: ``"small"`` (default), ``"astromae"``,
        ``"tiny"`` or a dict. With ``init`` it must match the checkpoint's (or be None).
    init : str, optional
        Checkpoint to fine-tune from; its normalisation is kept.
    epochs, batch_size, lr, weight_decay
        Optimisation: AdamW with a one-cycle schedule, Huber loss on standardised redshift.
    val_fraction : float
        Fraction of usable rows held out for validation (in (0, 0.9]).
    max_nan_fraction : float, optional
        Input policy threshold (default :data:`~astrokit.models.runtime.DEFAULT_MAX_NAN_FRACTION`).
    seed : int
        Seeds the split, initialisation and augmentation.
    device : str, optional
        ``"cpu"``, ``"cuda"``...; default: CUDA when present.
    threads : int, optional
        torch intra-op threads on CPU for this call (default: torch's, one per core). On a
        shared machine 1 can be much faster: a second thread that has to wait for a busy
        core makes every small operation wait with it (measured 10-40x slower per epoch at
        load 8 on 2 cores).
    precision : str, optional
        What the training steps compute in (:mod:`astrokit.models.precision`): ``"fp32"``,
        ``"bf16"`` (autocast forward pass; weights, gradients and optimiser state stay
        fp32), ``"auto"`` (bf16 where the device has it natively) or ``"fp16"`` (CUDA). The
        default is ``$ASTROKIT_PRECISION``, else :data:`DEFAULT_TRAIN_PRECISION`. Validation
        passes run in fp32 whatever the choice, so that the metrics measure the weights and
        runs in different precisions compare. The choice and its reason are logged and kept
        in the checkpoint's ``meta`` and in ``TrainResult.precision``.
    client : distributed.Client, optional
        When given, the training runs as one task on that cluster (keeping the notebook
        server free) and this call waits for it.
    store : astrokit.store.Store, optional
        Store for reading shards and writing the checkpoint (default: from the URLs/env).

    Returns
    -------
    TrainResult

    Raises
    ------
    TrainingError
        Bad arguments, or fewer than 2 usable rows for either split.
    """
    kwargs = {
        "out": out,
        "config": config,
        "init": init,
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "weight_decay": weight_decay,
        "val_fraction": val_fraction,
        "max_nan_fraction": max_nan_fraction,
        "seed": seed,
        "device": device,
        "precision": precision,
    }
    return run_training(
        _train_body,
        data_url,
        client=client,
        key=f"astrokit-train-{seed}-{time.time_ns()}",
        threads=threads,
        store=store,
        **kwargs,
    )


def check_training_args(
    epochs: int, batch_size: int, val_fraction: float, *, patience: int = 1, batch_note: str = ""
) -> None:
    """The checks every training loop makes before reading any data.

    Raises
    ------
    TrainingError
        ``epochs`` or ``patience`` < 1, ``batch_size`` < 2, ``val_fraction`` outside (0, 0.9].
    """
    if epochs < 1:
        raise TrainingError(f"epochs must be >= 1, got {epochs}")
    if patience < 1:
        raise TrainingError(f"patience must be >= 1, got {patience}")
    if batch_size < 2:
        raise TrainingError(f"batch_size must be >= 2{batch_note}, got {batch_size}")
    if not 0.0 < val_fraction <= 0.9:
        raise TrainingError(f"val_fraction must be in (0, 0.9], got {val_fraction}")


def run_training(
    body: Any,
    data_url: str,
    *,
    client: Any,
    key: str,
    threads: int | None,
    store: Any,
    **kwargs: Any,
) -> Any:
    """Run ``body(data_url, store=..., **kwargs)`` here, or as one task ``key`` on ``client``.

    Shared by :func:`train` and :func:`astrokit.catalogue_training.train_catalogue`: the body
    runs with ``threads`` torch threads (:func:`astrokit.workers.torch_threads`; the previous
    count is restored after), and a task gets its store through
    :func:`astrokit.workers.task_store` (no credentials in the task graph).

    Raises
    ------
    TrainingError
        ``threads`` < 1.
    """
    from astrokit.workers import task_store

    if threads is not None and threads < 1:
        raise TrainingError(f"threads must be >= 1, got {threads}")
    if client is not None:
        future = client.submit(
            _training_task,
            body,
            data_url,
            threads=threads,
            store=task_store(store),
            key=key,
            pure=False,
            **kwargs,
        )
        return future.result()
    return _training_task(body, data_url, threads=threads, store=store, **kwargs)


def _training_task(
    body: Any, data_url: str, *, threads: int | None, store: Any, **kwargs: Any
) -> Any:
    from astrokit.workers import open_task_store, torch_threads

    with torch_threads(threads):
        return body(data_url, store=open_task_store(store), **kwargs)


def _train_body(
    data_url: str,
    *,
    out: str,
    config: str | dict | None,
    init: str | None,
    epochs: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    val_fraction: float,
    max_nan_fraction: float | None,
    seed: int,
    device: str | None,
    precision: str | None,
    store: Any,
) -> TrainResult:
    import os

    import torch

    from astrokit.models.astromae import AstroMAE, get_config
    from astrokit.models.checkpoint import load_checkpoint, save_checkpoint, select_device
    from astrokit.models.precision import (
        PRECISION_ENV,
        PrecisionError,
        autocast,
        resolve_precision,
    )
    from astrokit.models.runtime import (
        DEFAULT_MAX_NAN_FRACTION,
        predict_arrays,
        screen_inputs,
    )

    check_training_args(epochs, batch_size, val_fraction, batch_note=" (batch norm)")
    t_start = time.perf_counter()
    dev = select_device(device)
    if precision is None:
        precision = os.environ.get(PRECISION_ENV) or DEFAULT_TRAIN_PRECISION
    try:
        choice = resolve_precision(precision, dev)
    except PrecisionError as exc:
        raise TrainingError(str(exc)) from exc
    log.info("training in %s (%s)", choice.precision, choice.reason)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)

    data = load_shard_arrays(data_url, store=store)
    screened = screen_inputs(
        data["images"],
        data["mags"],
        max_nan_fraction=DEFAULT_MAX_NAN_FRACTION if max_nan_fraction is None else max_nan_fraction,
    )
    usable = screened.ok & np.isfinite(data["z"])
    n_skipped = int((~usable).sum())
    if n_skipped:
        log.warning(
            "%s: skipping %d of %d rows (unknown z or bad inputs)",
            data_url,
            n_skipped,
            len(usable),
        )
    idx = np.flatnonzero(usable)
    rng.shuffle(idx)
    n_val = max(1, round(len(idx) * val_fraction))
    val_idx, train_idx = np.sort(idx[:n_val]), np.sort(idx[n_val:])
    if len(train_idx) < 2 or len(val_idx) < 1:
        raise TrainingError(
            f"{data_url}: only {len(idx)} usable rows; need at least 3 for a train/val split"
        )
    images, mags = screened.images, screened.mags
    z = data["z"].astype(np.float32)

    if init is not None:
        ckpt = load_checkpoint(
            init, config=None if config is None else config, device="cpu", store=store
        )
        model = ckpt.model
        log.info("fine-tuning from %s (%s)", init, ckpt.sha256[:12])
    else:
        model = AstroMAE(get_config(config or "small"))
        model.set_normalization(
            torch.from_numpy(images[train_idx]),
            torch.from_numpy(mags[train_idx]),
            torch.from_numpy(z[train_idx]),
        )
    model.to(dev)

    x_train = torch.from_numpy(images[train_idx])
    m_train = torch.from_numpy(mags[train_idx])
    z_train = torch.from_numpy(z[train_idx])
    steps_per_epoch = math.ceil(len(train_idx) / batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=lr, total_steps=epochs * steps_per_epoch, pct_start=0.15
    )
    z_scale = float(model.z_scale)
    # fp16 gradients underflow without loss scaling; bf16 has fp32's range and needs none
    scaler = torch.amp.GradScaler(dev.type, enabled=choice.precision == "fp16")
    baseline = photoz_metrics(np.full(len(val_idx), float(z[train_idx].mean())), z[val_idx])

    history: list[dict[str, Any]] = []
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        model.train()
        order = torch.from_numpy(rng.permutation(len(train_idx)))
        total, count = 0.0, 0
        for step in range(steps_per_epoch):
            sel = order[step * batch_size : (step + 1) * batch_size]
            if len(sel) < 2:  # batch norm needs two samples
                continue
            xb = _augment(x_train[sel], rng).to(dev)
            with autocast(choice):  # forward only: backward follows the forward's dtypes
                pred = model(xb, m_train[sel].to(dev))
            loss = torch.nn.functional.huber_loss(
                pred.float() / z_scale, z_train[sel].to(dev) / z_scale, delta=1.0
            )
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)  # clip the true gradients
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            total += loss.item() * len(sel)
            count += len(sel)
        z_pred = predict_arrays(model, images[val_idx], mags[val_idx], batch_size=256)
        val_metrics = photoz_metrics(z_pred, z[val_idx])
        val_loss = float(
            torch.nn.functional.huber_loss(
                torch.from_numpy(z_pred) / z_scale, torch.from_numpy(z[val_idx]) / z_scale
            )
        )
        entry = {
            "epoch": epoch,
            "train_loss": total / max(count, 1),
            "val_loss": val_loss,
            "seconds": time.perf_counter() - t0,
            **{f"val_{k}": v for k, v in val_metrics.items() if k != "n"},
        }
        history.append(entry)
        # every photo-z metric the issue asks for, so a run can be judged from its log alone
        log.info(
            "epoch %d/%d  train_loss %.4f  val_loss %.4f  sigma_mad %.4f  bias %+.4f  "
            "outliers %.3f  mse %.5f  mae %.4f  (%.1f s)",
            epoch,
            epochs,
            entry["train_loss"],
            val_loss,
            val_metrics["sigma_mad"],
            val_metrics["bias"],
            val_metrics["outlier_fraction"],
            val_metrics["mse"],
            val_metrics["mae"],
            entry["seconds"],
        )

    metrics = {
        "val": val_metrics,
        "baseline_mean": baseline,
        "train_loss": history[-1]["train_loss"],
        "n_train": len(train_idx),
        "n_val": len(val_idx),
        "n_skipped": n_skipped,
    }
    meta = {
        "data_url": data_url,
        "init": init,
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "seed": seed,
        "precision": choice.to_dict(),
        "history": history,
    }
    model.to("cpu")
    digest = save_checkpoint(model, out, metrics=metrics, meta=meta, store=store)
    seconds = time.perf_counter() - t_start
    log.info(
        "trained in %.0f s: val sigma_mad %.4f vs mean-baseline %.4f; mae %.4f vs %.4f",
        seconds,
        val_metrics["sigma_mad"],
        baseline["sigma_mad"],
        val_metrics["mae"],
        baseline["mae"],
    )
    return TrainResult(
        url=out,
        metrics=metrics,
        history=history,
        config=model.config.to_dict(),
        seconds=seconds,
        sha256=digest,
        precision=choice.to_dict(),
    )


def train_demo_model(
    data_url: str, *, out: str, store: Any = None, **overrides: Any
) -> TrainResult:
    """Train the demo model with :data:`DEMO_PRESET` (used by ``astrokit platform prepare``)."""
    return train(data_url, out=out, store=store, **{**DEMO_PRESET, **overrides})
