"""Model checkpoints: one file per model, configuration beside the weights, written atomically.

A checkpoint is ``torch.save`` of a plain dict::

    {"format_version": 1, "model": "astromae", "config": {...AstroMAEConfig...},
     "state_dict": {...tensors...}, "metrics": {...}, "meta": {...}}

It holds only tensors and JSON-like values, so loading uses ``torch.load(weights_only=True)``
and never runs pickled code from the store. Loading rebuilds the model from the stored
configuration (or from the one the caller insists on) and compares every key *and* shape
before touching the weights, so a checkpoint that does not fit fails with the name of the
first layer that differs instead of torch's wall of text (or, worse, a silent partial load).
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import os
from dataclasses import dataclass, field
from typing import Any

import torch

from astrokit.errors import CheckpointError
from astrokit.models.astromae import AstroMAE, AstroMAEConfig, ConfigError, get_config

log = logging.getLogger(__name__)

__all__ = [
    "FORMAT_VERSION",
    "Checkpoint",
    "CheckpointError",
    "CheckpointFormatError",
    "CheckpointMismatchError",
    "load_checkpoint",
    "save_checkpoint",
    "select_device",
]

FORMAT_VERSION = 1
#: Environment variable that overrides automatic device selection (``cpu``, ``cuda:1``...).
DEVICE_ENV = "ASTROKIT_DEVICE"


class CheckpointFormatError(CheckpointError):
    """The file is not an AstroKit checkpoint (or a newer format than this code reads)."""


class CheckpointMismatchError(CheckpointError):
    """The weights do not fit the configuration; the message names the first differing layer."""


@dataclass
class Checkpoint:
    """A loaded checkpoint.

    Attributes
    ----------
    model : AstroMAE
        The model in eval mode on the requested device.
    config : AstroMAEConfig
        Its configuration.
    metrics : dict
        Metrics recorded at save time (validation metrics, baseline, history...).
    meta : dict
        Free-form provenance (training data URL, epochs, seed...).
    sha256 : str
        Digest of the checkpoint file's bytes: identifies the weights (used as a cache key).
    url : str
        Where it was loaded from.
    """

    model: AstroMAE
    config: AstroMAEConfig
    metrics: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    sha256: str = ""
    url: str = ""
    #: Prepared copies of ``model`` by dtype (:meth:`for_inference`).
    _prepared: dict[torch.dtype, torch.nn.Module] = field(
        default_factory=dict, repr=False, compare=False
    )

    def for_inference(self, dtype: torch.dtype = torch.float32) -> torch.nn.Module:
        """The model prepared to predict at ``dtype``, made once per dtype and kept.

        A model class with a ``for_inference(dtype)`` method (:class:`AstroMAE`) gets a frozen
        copy with its inference-only preparations (folded batch norms, reduced-precision
        weights); any other model is returned as it is. Callers that hold a checkpoint for many
        batches (the inference workers) use this instead of :attr:`model`.
        """
        if dtype not in self._prepared:
            prepare = getattr(self.model, "for_inference", None)
            self._prepared[dtype] = self.model if prepare is None else prepare(dtype)
        return self._prepared[dtype]


def select_device(device: str | torch.device | None = None) -> torch.device:
    """The device to run on: explicit choice, else ``$ASTROKIT_DEVICE``, else CUDA if present.

    Raises
    ------
    CheckpointError
        When CUDA is requested but not available (named, rather than failing deep in torch).
    """
    choice = device if device is not None else os.environ.get(DEVICE_ENV) or None
    if choice is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(choice)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise CheckpointError(f"device {str(choice)!r} requested but CUDA is not available here")
    return dev


def _jsonable(value: Any) -> Any:
    """Metrics as plain floats/ints/strings (weights_only loading accepts nothing else)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, bool | int | str) or value is None:
        return value
    if hasattr(value, "item"):  # numpy / torch scalars
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return str(value)


def model_bytes(
    kind: str,
    model: torch.nn.Module,
    *,
    format_version: int,
    metrics: dict,
    meta: dict,
    **extra: Any,
) -> bytes:
    """Checkpoint bytes of any AstroKit model: its kind, configuration, ``extra`` entries,
    weights (on CPU) and the metrics and metadata stored beside them (``torch.save``)."""
    payload = {
        "format_version": format_version,
        "model": kind,
        "config": model.config.to_dict(),
        **extra,
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "metrics": metrics,
        "meta": meta,
    }
    buf = io.BytesIO()
    torch.save(payload, buf)
    return buf.getvalue()


def store_checkpoint(data: bytes, url: str, store: Any = None, *, what: str = "checkpoint") -> str:
    """Write checkpoint bytes atomically to ``url`` (parents made); return their sha256."""
    from astrokit.store import resolve

    st, full = resolve(url, store)
    st.makedirs(full.rstrip("/").rsplit("/", 1)[0])
    st.write_bytes(full, data)
    digest = hashlib.sha256(data).hexdigest()
    log.info("saved %s %s (%.1f MB, sha256 %s)", what, full, len(data) / 1e6, digest[:12])
    return digest


def checkpoint_bytes(
    model: AstroMAE, *, metrics: dict | None = None, meta: dict | None = None
) -> bytes:
    """Serialise ``model`` (weights on CPU) with its configuration into checkpoint bytes."""
    return model_bytes(
        "astromae",
        model,
        format_version=FORMAT_VERSION,
        metrics=_jsonable(metrics or {}),
        meta=_jsonable(meta or {}),
    )


def save_checkpoint(
    model: AstroMAE,
    url: str,
    *,
    metrics: dict | None = None,
    meta: dict | None = None,
    store: Any = None,
) -> str:
    """Write a checkpoint atomically to ``url`` (any store URL or local path).

    Parameters
    ----------
    model : AstroMAE
        The model to save.
    url : str
        Destination, e.g. ``s3://bucket/users/me/photoz.pt`` or ``file:///.../model.pt``.
    metrics, meta : dict, optional
        Stored beside the weights (JSON-like values only).
    store : astrokit.store.Store, optional
        Store to write through; default: resolved from the URL and the environment.

    Returns
    -------
    str
        The sha256 of the written bytes.
    """
    return store_checkpoint(checkpoint_bytes(model, metrics=metrics, meta=meta), url, store)


def _check_state(
    state: dict[str, torch.Tensor], model: torch.nn.Module, where: str, config_name: str
) -> None:
    expected = model.state_dict()
    for key, tensor in expected.items():
        if key not in state:
            raise CheckpointMismatchError(
                f"{where}: layer {key!r} (shape {tuple(tensor.shape)}) expected by {config_name} "
                "is missing from the checkpoint"
            )
        got = state[key]
        if not isinstance(got, torch.Tensor) or got.shape != tensor.shape:
            shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
            raise CheckpointMismatchError(
                f"{where}: layer {key!r} has shape {shape} in the checkpoint but {config_name} "
                f"expects {tuple(tensor.shape)}"
            )
    extra = [k for k in state if k not in expected]
    if extra:
        raise CheckpointMismatchError(
            f"{where}: layer {extra[0]!r} in the checkpoint does not exist in {config_name}"
            + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else "")
        )


def read_payload(data: bytes, where: str = "checkpoint") -> Any:
    """``torch.load`` of checkpoint bytes (weights only, on CPU), any model kind.

    Raises
    ------
    CheckpointFormatError
        The bytes are not a readable torch checkpoint.
    """
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises assorted pickle/zip errors for non-checkpoints
        raise CheckpointFormatError(
            f"{where}: not a readable torch checkpoint ({type(exc).__name__}: {exc})"
        ) from exc


def check_format_version(payload: dict, where: str, latest: int) -> None:
    """Refuse a payload written by a newer AstroKit (format_version above ``latest``)."""
    version = payload.get("format_version")
    if not isinstance(version, int) or version > latest:
        raise CheckpointFormatError(
            f"{where}: checkpoint format_version {version!r}; this AstroKit reads <= {latest}"
        )


def parse_checkpoint(
    data: bytes,
    *,
    where: str = "checkpoint",
    config: str | AstroMAEConfig | dict | None = None,
    device: str | torch.device | None = None,
) -> Checkpoint:
    """Build the model from checkpoint bytes (see :func:`load_checkpoint`)."""
    payload = read_payload(data, where)
    if not isinstance(payload, dict) or "state_dict" not in payload or "config" not in payload:
        raise CheckpointFormatError(
            f"{where}: not an AstroKit checkpoint (expected a dict with 'config' and "
            "'state_dict'; a bare state dict needs its configuration beside it)"
        )
    check_format_version(payload, where, FORMAT_VERSION)
    try:
        stored = get_config(payload["config"])
    except ConfigError as exc:
        # name the file: the bare ConfigError does not say which checkpoint holds the config
        raise CheckpointFormatError(f"{where}: stored configuration is invalid: {exc}") from exc
    if config is None:
        cfg, name = stored, "its stored configuration"
    else:
        cfg = get_config(config)
        name = f"config {config!r}" if isinstance(config, str) else "the given configuration"
    model = AstroMAE(cfg)
    _check_state(payload["state_dict"], model, where, name)
    model.load_state_dict(payload["state_dict"])
    model.eval()
    model.to(select_device(device))
    return Checkpoint(
        model=model,
        config=cfg,
        metrics=dict(payload.get("metrics") or {}),
        meta=dict(payload.get("meta") or {}),
        sha256=hashlib.sha256(data).hexdigest(),
        url=where,
    )


def load_checkpoint(
    url: str,
    *,
    config: str | AstroMAEConfig | dict | None = None,
    device: str | torch.device | None = None,
    store: Any = None,
) -> Checkpoint:
    """Load a checkpoint written by :func:`save_checkpoint`.

    Parameters
    ----------
    url : str
        Checkpoint URL or local path.
    config : str, AstroMAEConfig or dict, optional
        Insist on this configuration; by default the one stored in the file is used.
    device : str or torch.device, optional
        Where to put the model (default: :func:`select_device`).
    store : astrokit.store.Store, optional
        Store to read through; default: resolved from the URL and the environment.

    Raises
    ------
    CheckpointFormatError
        Not a checkpoint, a newer format, or a stored configuration this code cannot build.
    astrokit.models.astromae.ConfigError
        ``config`` (the one insisted on) is not a valid configuration.
    CheckpointMismatchError
        A layer is missing, extra or of another shape; the message names it.
    astrokit.store.StoreNotFound
        No file at ``url``.
    """
    from astrokit.store import resolve

    st, full = resolve(url, store)
    data = st.read_bytes(full)
    return parse_checkpoint(data, where=full, config=config, device=device)
