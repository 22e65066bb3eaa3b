"""Classifier adapters: what the active-learning loop needs from a model, for torch and sklearn.

The loop talks to a model through four operations — :meth:`fit` (warm-started retraining on
the labelled set), :meth:`predict_proba`, :meth:`predict_proba_samples` (stochastic passes for
BALD) and :meth:`get_state` / :meth:`set_state` (bytes for the checkpoint). Two adapters
provide them:

* :class:`TorchClassifier` wraps any ``torch.nn.Module`` mapping a batch of spectra to class
  logits (the default is :class:`astrokit.models.spectra_cnn.SpectraCNN`);
* :class:`SklearnClassifier` wraps any scikit-learn-style estimator with ``fit`` and
  ``predict_proba`` (ensembles with ``estimators_`` also support BALD).

Adapters are picklable: the scoring step ships the current one to every Dask worker once per
iteration.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import math
import pickle
import threading
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import numpy as np

from astrokit.errors import UserError

__all__ = [
    "DEFAULT_SCORING_PRECISION",
    "ALModel",
    "ModelError",
    "SklearnClassifier",
    "TorchClassifier",
    "as_model",
    "default_model",
]

log = logging.getLogger(__name__)


#: Precision of :class:`TorchClassifier` predictions when neither ``precision=`` nor
#: ``$ASTROKIT_PRECISION`` says (see :mod:`astrokit.models.precision`).
DEFAULT_SCORING_PRECISION = "fp32"


class ModelError(UserError, RuntimeError):
    """A model cannot do what the loop asks (e.g. BALD on a model without stochastic passes)."""


@runtime_checkable
class ALModel(Protocol):
    """What the loop needs from a classifier (class labels are integers ``0..n_classes-1``)."""

    n_classes: int

    def fit(self, x: np.ndarray, y: np.ndarray, *, warm_start: bool = True) -> None: ...

    def predict_proba(self, x: np.ndarray) -> np.ndarray: ...

    def predict_proba_samples(self, x: np.ndarray, n_samples: int) -> np.ndarray: ...

    def get_state(self) -> bytes: ...

    def set_state(self, state: bytes) -> None: ...


class TorchClassifier:
    """Adapter for a torch module that maps spectra ``(batch, n_pixels)`` to class logits.

    Parameters
    ----------
    module : torch.nn.Module
        The network. If it has ``embed`` and ``head`` attributes (as ``SpectraCNN``), MC
        dropout reuses one embedding for all ``T`` samples; otherwise it runs ``T`` full
        passes with dropout layers active.
    n_classes : int
        Number of classes (size of the logit vector).
    epochs : int
        Passes over the labelled set per :meth:`fit` (warm-started retraining).
    min_steps : int
        Lower bound on optimiser steps per :meth:`fit`, so tiny seed sets still train.
    batch_size, lr, weight_decay : training hyper-parameters (AdamW).
    schedule : ``"cosine"`` or ``"constant"``
        Learning rate over one :meth:`fit`: cosine decay from ``lr`` to 0 (default), so every
        fit ends on settled weights, or constant.
    shrink, perturb : float
        Shrink-and-perturb before each warm-started fit (Ash & Adams 2020, "On Warm-Starting
        Neural Network Training"): weights ``w <- shrink * w + perturb * N(0, 1)``. With plain
        warm starts the model got *worse* as random labels accumulated (``benchmarks/active.py
        --snr 3 40``: held-out accuracy 0.844 at 500 labels, 0.826 at 1,000); with the
        defaults 0.8 / 0.005 it stays at 0.852-0.854. ``shrink=1, perturb=0`` is a plain
        warm start.
    seed : int
        Seeds shuffling and dropout; each :meth:`fit` call advances it, so a resumed loop
        trains exactly as an uninterrupted one would.
    device : str or None
        ``"cuda"`` when available and None, else ``"cpu"``.
    num_threads : int or None
        torch CPU threads while training/predicting on the client (None: torch's default).
        On a shared or oversubscribed machine 1 avoids OpenMP spin-wait collapse.
    precision : str or None
        What predictions (pool scoring, held-out evaluation) compute in: ``"fp32"``,
        ``"bf16"``, ``"auto"`` (bf16 where the device has it natively) or ``"fp16"`` (CUDA);
        default ``$ASTROKIT_PRECISION``, else :data:`DEFAULT_SCORING_PRECISION`. Resolved
        where the model runs (each Dask worker for its own device). A reduced precision is
        used only after the parity guard (:func:`astrokit.models.precision.guard`) found the
        class probabilities within ``parity_tolerance`` of fp32 on the first rows this
        process predicts with these weights; every :meth:`fit` makes it check again.
        Training itself runs in fp32.
    parity_tolerance : float or None
        Largest accepted ``|p_reduced - p_fp32|`` (default 1e-3).
    """

    def __init__(
        self,
        module: Any,
        n_classes: int,
        *,
        epochs: int = 8,
        min_steps: int = 60,
        batch_size: int = 64,
        lr: float = 6e-3,
        weight_decay: float = 1e-4,
        schedule: str = "cosine",
        shrink: float = 0.8,
        perturb: float = 0.005,
        seed: int = 0,
        device: str | None = None,
        num_threads: int | None = None,
        precision: str | None = None,
        parity_tolerance: float | None = None,
    ) -> None:
        import os

        import torch

        from astrokit.models.precision import PRECISION_ENV, check_precision, check_tolerance

        if n_classes < 2:
            raise ValueError(f"TorchClassifier: n_classes must be >= 2, got {n_classes}")
        self.module = module
        self.n_classes = int(n_classes)
        self.epochs = int(epochs)
        self.min_steps = int(min_steps)
        self.batch_size = int(batch_size)
        self.lr = float(lr)
        self.weight_decay = float(weight_decay)
        if schedule not in ("cosine", "constant"):
            raise ValueError(
                f"TorchClassifier: schedule must be 'cosine' or 'constant', got {schedule!r}"
            )
        if not 0 < shrink <= 1 or perturb < 0:
            raise ValueError(
                "TorchClassifier: need 0 < shrink <= 1 and perturb >= 0, "
                f"got shrink={shrink}, perturb={perturb}"
            )
        self.schedule = schedule
        self.shrink = float(shrink)
        self.perturb = float(perturb)
        self.seed = int(seed)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.num_threads = num_threads
        self.precision = check_precision(
            precision or os.environ.get(PRECISION_ENV) or DEFAULT_SCORING_PRECISION
        )
        self.parity_tolerance = check_tolerance(parity_tolerance)
        # (PrecisionChoice, ParityReport | None) for the current weights in this process
        self._precision: tuple[Any, Any] | None = None
        self._precision_lock = threading.Lock()
        self.n_fits = 0
        # the untrained weights, for fit(warm_start=False)
        self._initial_state = copy.deepcopy(module.state_dict())

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        # workers only predict; keep the shipped payload small
        state["_initial_state"] = None
        # a worker's torch threads are its nthreads (astrokit.workers.TorchThreads)
        state["num_threads"] = None
        # each process decides the precision for its own device (and runs its own guard)
        state["_precision"] = None
        state["_precision_lock"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.__dict__.setdefault("precision", DEFAULT_SCORING_PRECISION)
        self.__dict__.setdefault("parity_tolerance", 1e-3)
        self._precision = None
        self._precision_lock = threading.Lock()

    def settle_precision(self, x_sample: np.ndarray) -> tuple[Any, Any]:
        """Decide once (per process and fitted weights) what predictions compute in.

        Resolves :attr:`precision` for this process's device; a reduced precision then goes
        through the parity guard on the first rows of ``x_sample`` (class probabilities
        against fp32).

        Returns
        -------
        (PrecisionChoice, ParityReport or None)
        """
        from astrokit.models.precision import DEFAULT_PARITY_SAMPLE, guard, resolve_precision

        with self._precision_lock:
            if self._precision is None:
                choice = resolve_precision(self.precision, self.device)
                sample = np.asarray(x_sample[:DEFAULT_PARITY_SAMPLE], dtype=np.float32)
                if choice.reduced and len(sample):
                    self._precision = guard(
                        choice,
                        lambda c: self._predict_proba(sample, c),
                        tolerance=self.parity_tolerance,
                        what="|dp|",
                    )
                else:
                    self._precision = (choice, None)
            return self._precision

    def _threads(self) -> contextlib.AbstractContextManager[None]:
        from astrokit.workers import torch_threads

        return torch_threads(self.num_threads)

    # -- training --------------------------------------------------------------------------
    def _rng_devices(self) -> list[int]:
        import torch

        return [torch.cuda.current_device()] if self.device.startswith("cuda") else []

    def fit(self, x: np.ndarray, y: np.ndarray, *, warm_start: bool = True) -> None:
        """Train on ``(x, y)``; continue from the current weights when ``warm_start``."""
        with self._threads():
            self._fit(x, y, warm_start)

    def _fit(self, x: np.ndarray, y: np.ndarray, warm_start: bool) -> None:
        import torch

        x, y = np.asarray(x, dtype=np.float32), np.asarray(y, dtype=np.int64)
        if len(x) != len(y) or len(x) == 0:
            raise ValueError(
                f"fit: need equal, non-zero numbers of spectra ({len(x)}) and labels ({len(y)})"
            )
        if y.min() < 0 or y.max() >= self.n_classes:
            raise ValueError(
                f"fit: labels must be in [0, {self.n_classes}), got {y.min()}..{y.max()}"
            )
        if not warm_start and self._initial_state is not None:
            self.module.load_state_dict(self._initial_state)
        module = self.module.to(self.device)
        if warm_start and self.n_fits and (self.shrink != 1.0 or self.perturb):
            # seeded like the fit itself: a resumed loop retrains exactly as before
            with torch.no_grad(), torch.random.fork_rng(devices=self._rng_devices()):
                torch.manual_seed(self.seed * 100_003 + self.n_fits + 50_021)
                for param in module.parameters():
                    param.mul_(self.shrink).add_(torch.randn_like(param), alpha=self.perturb)
        module.train()
        steps_per_epoch = math.ceil(len(x) / self.batch_size)
        n_steps = max(self.epochs * steps_per_epoch, self.min_steps)
        xt = torch.from_numpy(x).to(self.device)
        yt = torch.from_numpy(y).to(self.device)
        optimiser = torch.optim.AdamW(
            module.parameters(), lr=self.lr, weight_decay=self.weight_decay
        )
        # Cosine decay to zero over the fit: the weights a fit ends on are a settled point, not
        # wherever constant-rate SGD noise left them (that noise moved held-out accuracy by
        # +-3 points between iterations and hid the strategies' differences).
        scheduler = (
            torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=n_steps)
            if self.schedule == "cosine"
            else None
        )
        loss_fn = torch.nn.CrossEntropyLoss()
        # fork_rng: seed dropout and shuffling without disturbing the caller's global RNG
        with torch.random.fork_rng(devices=self._rng_devices()):
            torch.manual_seed(self.seed * 100_003 + self.n_fits)
            generator = torch.Generator(device="cpu").manual_seed(self.seed + 7919 * self.n_fits)
            step = 0
            while step < n_steps:
                order = torch.randperm(len(x), generator=generator).to(self.device)
                for start in range(0, len(x), self.batch_size):
                    batch = order[start : start + self.batch_size]
                    optimiser.zero_grad(set_to_none=True)
                    loss = loss_fn(module(xt[batch]), yt[batch])
                    loss.backward()
                    optimiser.step()
                    if scheduler is not None:
                        scheduler.step()
                    step += 1
                    if step >= n_steps:
                        break
        module.eval()
        self.n_fits += 1
        self._precision = None  # new weights: the parity guard checks them again
        log.debug("trained %d steps on %d labels (fit #%d)", n_steps, len(x), self.n_fits)

    # -- prediction ------------------------------------------------------------------------
    def _batches(self, x: np.ndarray, size: int = 1024):
        import torch

        x = np.asarray(x, dtype=np.float32)
        for start in range(0, len(x), size):
            yield torch.from_numpy(x[start : start + size]).to(self.device)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities ``(n, n_classes)`` with dropout off, in the settled precision."""
        choice, _ = self.settle_precision(x)
        return self._predict_proba(x, choice)

    def _predict_proba(self, x: np.ndarray, choice: Any) -> np.ndarray:
        import torch

        from astrokit.models.precision import autocast

        module = self.module.to(self.device).eval()
        out = []
        with torch.inference_mode(), self._threads():
            for xb in self._batches(x):
                with autocast(choice):
                    logits = module(xb)
                out.append(torch.softmax(logits.float(), dim=1).cpu().numpy())
        return np.concatenate(out) if out else np.empty((0, self.n_classes), np.float32)

    def predict_proba_samples(self, x: np.ndarray, n_samples: int) -> np.ndarray:
        """``n_samples`` MC-dropout draws of the class probabilities: ``(T, n, n_classes)``."""
        import torch

        from astrokit.models.precision import autocast

        choice, _ = self.settle_precision(x)
        module = self.module.to(self.device).eval()
        dropouts = [
            m for m in module.modules() if isinstance(m, torch.nn.modules.dropout._DropoutNd)
        ]
        if not dropouts:
            raise ModelError(
                f"BALD needs MC dropout, but {type(module).__name__} has no dropout layers"
            )
        split = hasattr(module, "embed") and hasattr(module, "head")
        out = []
        with torch.inference_mode(), torch.random.fork_rng(), self._threads():
            torch.manual_seed(self.seed * 31 + self.n_fits)
            for xb in self._batches(x):
                for m in dropouts:  # only dropout goes stochastic; normalisation stays in eval
                    m.eval()
                with autocast(choice):
                    emb = module.embed(xb) if split else None
                for m in dropouts:
                    m.train()
                with autocast(choice):
                    logits = [
                        module.head(emb) if split else module(xb) for _ in range(int(n_samples))
                    ]
                draws = [torch.softmax(z.float(), dim=1) for z in logits]
                out.append(torch.stack(draws).cpu().numpy())
        for m in dropouts:
            m.eval()
        if not out:
            return np.empty((int(n_samples), 0, self.n_classes), np.float32)
        return np.concatenate(out, axis=1)

    # -- checkpoint ------------------------------------------------------------------------
    def get_state(self) -> bytes:
        """The weights and fit counter as bytes (``torch.save`` of a dict)."""
        import torch

        buffer = io.BytesIO()
        torch.save({"state_dict": self.module.state_dict(), "n_fits": self.n_fits}, buffer)
        return buffer.getvalue()

    def set_state(self, state: bytes) -> None:
        """Restore :meth:`get_state` output (the architecture must match)."""
        import torch

        payload = torch.load(io.BytesIO(state), map_location=self.device, weights_only=True)
        self.module.load_state_dict(payload["state_dict"])
        self.n_fits = int(payload["n_fits"])
        self.module.eval()


class SklearnClassifier:
    """Adapter for a scikit-learn-style classifier (``fit``, ``predict_proba``, ``classes_``).

    Parameters
    ----------
    estimator : object
        Any classifier; refitted on the whole labelled set at each iteration (``warm_start``
        is honoured by estimators that have it, e.g. ``warm_start=True`` forests).
    n_classes : int
        Number of classes; probabilities are expanded to all of them even when a class has
        not been labelled yet.
    """

    def __init__(self, estimator: Any, n_classes: int) -> None:
        if not hasattr(estimator, "fit") or not hasattr(estimator, "predict_proba"):
            raise ModelError(
                f"{type(estimator).__name__} is not a classifier: it needs fit and predict_proba"
            )
        self.estimator = estimator
        self.n_classes = int(n_classes)

    def fit(self, x: np.ndarray, y: np.ndarray, *, warm_start: bool = True) -> None:
        """Fit on ``(x, y)`` (scikit-learn estimators refit from scratch unless configured)."""
        self.estimator.fit(np.asarray(x), np.asarray(y, dtype=np.int64))

    def _expand(self, probs: np.ndarray) -> np.ndarray:
        classes = np.asarray(self.estimator.classes_, dtype=np.int64)
        full = np.zeros((probs.shape[0], self.n_classes), dtype=np.float64)
        full[:, classes] = probs
        return full

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Probabilities over all ``n_classes`` (unseen classes get 0)."""
        return self._expand(self.estimator.predict_proba(np.asarray(x)))

    def predict_proba_samples(self, x: np.ndarray, n_samples: int) -> np.ndarray:
        """Per-member probabilities of an ensemble (``estimators_``), as BALD samples."""
        members = getattr(self.estimator, "estimators_", None)
        if not members:
            raise ModelError(
                f"BALD needs stochastic predictions; {type(self.estimator).__name__} is not an "
                "ensemble with estimators_ — use entropy, margin or least_confidence"
            )
        x = np.asarray(x)
        draws = []
        for member in list(members)[: int(n_samples)]:
            probs = member.predict_proba(x)
            # a forest's trees are fitted on class *indices* of the forest's classes_
            full = np.zeros((len(x), self.n_classes))
            full[:, np.asarray(self.estimator.classes_, dtype=np.int64)] = probs
            draws.append(full)
        return np.stack(draws)

    def get_state(self) -> bytes:
        """The pickled estimator."""
        return pickle.dumps(self.estimator, protocol=pickle.HIGHEST_PROTOCOL)

    def set_state(self, state: bytes) -> None:
        """Restore a pickled estimator (only load checkpoints you wrote yourself)."""
        self.estimator = pickle.loads(state)


def _unfitted_copy(estimator: Any) -> Any:
    """A copy of ``estimator`` for the loop to train, leaving the caller's object untouched.

    scikit-learn's ``clone`` (same parameters, not fitted) when the estimator follows its
    ``get_params`` convention and scikit-learn is installed; otherwise ``copy.deepcopy``.
    The copy matters when one estimator is passed to several loops (strategies, seeds).
    """
    if hasattr(estimator, "get_params"):
        try:
            from sklearn.base import clone
        except ImportError:
            pass
        else:
            return clone(estimator)
    try:
        return copy.deepcopy(estimator)
    except Exception as exc:  # deepcopy raises whatever the object's __reduce__ raises
        raise ModelError(
            f"cannot copy {type(estimator).__name__} for the loop to train "
            f"({type(exc).__name__}: {exc}); pass a factory returning a fresh one"
        ) from exc


def default_model(n_classes: int, *, seed: int = 0, **kwargs: Any) -> TorchClassifier:
    """The default: a :class:`~astrokit.models.spectra_cnn.SpectraCNN` in a TorchClassifier."""
    import torch

    from astrokit.models.spectra_cnn import SpectraCNN

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        module = SpectraCNN(n_classes)
    return TorchClassifier(module, n_classes, seed=seed, **kwargs)


def as_model(model: Any, n_classes: int, *, seed: int = 0) -> ALModel:
    """Turn what the user passed into an adapter.

    ``None`` → the default CNN; a torch module → :class:`TorchClassifier`; an object that
    already implements :class:`ALModel` is returned as is; any other object with ``fit`` and
    ``predict_proba`` → :class:`SklearnClassifier` around an unfitted copy of it
    (``sklearn.base.clone`` when it has ``get_params``, else ``copy.deepcopy``); a
    zero-argument callable (including a class) → called first (a factory).
    """
    if model is None:
        return default_model(n_classes, seed=seed)
    if isinstance(model, (TorchClassifier, SklearnClassifier)):
        return model
    try:
        import torch

        if isinstance(model, torch.nn.Module):
            return TorchClassifier(model, n_classes, seed=seed)
    except ImportError:  # pragma: no cover - the ml extra always has torch
        pass
    # an adapter first: it has fit and predict_proba too, and must not be wrapped again
    if isinstance(model, ALModel) and not isinstance(model, type):
        return model
    # duck typing, as the docs promise: fit + predict_proba suffices (get_params is a
    # scikit-learn convention, not a requirement); a class is a factory, handled below
    if hasattr(model, "fit") and hasattr(model, "predict_proba") and not isinstance(model, type):
        return SklearnClassifier(_unfitted_copy(model), n_classes)
    if isinstance(model, Callable):
        return as_model(model(), n_classes, seed=seed)
    raise ModelError(
        f"cannot use {type(model).__name__} as an active-learning model: pass a torch module, "
        "a scikit-learn classifier, an ALModel adapter, or a factory returning one"
    )
