"""The active-learning loop: query, label, retrain, evaluate, checkpoint — and resume.

One iteration moves through three phases, each persisted before the next starts::

    query  ── score the pool on the Dask cluster, pick the batch ──▶ loop.json (pending)
    label  ── the oracle answers; each label written at once ─────▶ labels/it-NNNNN.json
    train  ── warm-started retraining, held-out evaluation ───────▶ models/it-NNNNN.pt,
                                                                     loop.json (history)

Iteration 0 labels a random *seed set*; later iterations use the strategy. Constructing a loop
on a state URL that already holds one resumes it where it stopped: in the middle of a batch,
only the unanswered queries are asked again; a crash during training retrains; a finished
iteration is never redone. With the same seed, an interrupted and resumed loop makes exactly
the choices an uninterrupted one would.

Human labelling (asynchronous oracle)::

    loop = ActiveLearningLoop(pool_url, state_url, oracle="human", heldout=...)
    widget = LabellingWidget(loop)    # calls loop.step(): scores, stops at "awaiting_labels"
    widget                            # each click -> loop.record_label(...) -> store
                                      # "Next batch" (after the last label) -> loop.step()
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from astrokit.active.checkpoint import CheckpointError, LoopCheckpoint
from astrokit.active.models import as_model
from astrokit.active.oracles import KnownLabelsOracle, OracleError, Query, as_oracle
from astrokit.active.pool import Pool
from astrokit.active.scoring import score_pool
from astrokit.active.strategies import check_selection, get_strategy, random_indices
from astrokit.errors import UserError
from astrokit.store import Store

__all__ = ["ActiveLearningLoop", "IterationRecord", "LoopConfigError", "StepResult"]

log = logging.getLogger(__name__)

#: Phases of an iteration, in order.
PHASES = ("query", "label", "train")


class LoopConfigError(UserError, ValueError):
    """Loop arguments that are invalid or contradict the loop stored at the state URL."""


@dataclass
class IterationRecord:
    """One line of the learning curve (what the per-iteration log holds).

    Attributes
    ----------
    iteration : int
    strategy : str
        ``"seed"`` for iteration 0, else the loop's strategy.
    n_labelled : int
        Labelled spectra the model was trained on after this iteration.
    n_queried, n_skipped : int
        This iteration's batch size and how many of it the oracle skipped.
    accuracy, f1_macro : float or None
        On the held-out set (None without one).
    batch_classes : dict
        Class counts of this iteration's labels (the class balance of the queried batch).
    labelled_classes : dict
        Class counts of the whole labelled set.
    score_seconds, label_seconds, train_seconds, seconds : float
        Wall times of the phases and of the whole iteration.
    score_precision : dict or None
        What the pool was scored in and why, with the parity guard's report
        (:attr:`astrokit.active.scoring.ScoreResult.precision`); None when nothing was scored
        with a model (the seed iteration, random sampling, scikit-learn models).
    """

    iteration: int
    strategy: str
    n_labelled: int
    n_queried: int
    n_skipped: int
    accuracy: float | None
    f1_macro: float | None
    batch_classes: dict[str, int]
    labelled_classes: dict[str, int]
    score_seconds: float = 0.0
    label_seconds: float = 0.0
    train_seconds: float = 0.0
    seconds: float = 0.0
    score_precision: dict[str, Any] | None = None


@dataclass
class StepResult:
    """What :meth:`ActiveLearningLoop.step` did.

    ``status`` is ``"trained"`` (an iteration finished: ``record`` is its log line),
    ``"awaiting_labels"`` (an asynchronous oracle must label ``queries`` first) or
    ``"exhausted"`` (nothing left in the pool to query).
    """

    status: str
    record: IterationRecord | None = None
    queries: list[Query] = field(default_factory=list)


def _macro_f1(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    """Macro-averaged F1 over the classes present in ``y_true`` or ``y_pred``."""
    scores = []
    for c in range(n_classes):
        tp = np.sum((y_pred == c) & (y_true == c))
        fp = np.sum((y_pred == c) & (y_true != c))
        fn = np.sum((y_pred != c) & (y_true == c))
        if tp + fp + fn == 0:
            continue  # class absent from both: no information, not a perfect score
        scores.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores)) if scores else 0.0


class ActiveLearningLoop:
    """An active-learning loop over a pool in the store, with its state checkpointed.

    Parameters
    ----------
    pool : Pool or str
        The unlabelled pool (see :mod:`astrokit.active.pool`) or its URL.
    state_url : str
        Writable directory for the checkpoint. If a loop is already stored there, it is
        resumed (its stored configuration must agree with the arguments given).
    strategy : str
        ``entropy`` (default), ``margin``, ``least_confidence``, ``bald`` or ``random``.
    batch_size : int
        Spectra queried per iteration (default 100).
    seed_size : int
        Random spectra labelled in iteration 0 (default: ``batch_size``).
    oracle : "known", "human", mapping, callable or Oracle
        Who labels; ``"human"`` (or None) makes the loop asynchronous (see module docstring).
    model : torch module, sklearn classifier, ALModel, factory or None
        None: the default :class:`~astrokit.models.spectra_cnn.SpectraCNN`.
    heldout : int, Pool, str or None
        Fixed evaluation set: a number of labelled spectra drawn (once, by ``seed``) from the
        pool and never queried, or a separate labelled pool / its URL. None: no evaluation.
    seed : int
        Seeds the seed set, random queries, held-out draw and model; same seed, same run.
    mc_samples : int
        MC-dropout passes for BALD.
    selection : ``"power"`` or ``"top"``
        How a batch is picked from the scores: ``"power"`` (default) draws it with
        probability proportional to ``score ** beta`` (stochastic power acquisition), ``"top"``
        takes the highest scores (see :mod:`astrokit.active.strategies` for why power is the
        default). Seeded by ``seed`` and the iteration: a resumed loop picks the same batch.
    beta : float
        Exponent of the power draw (default 1).
    client : distributed.Client, optional
        The cluster to score on; default :func:`astrokit.cluster.client_or_local` (the
        user's cluster, or a temporary local one kept until :meth:`close`).
    store : Store, optional
        Store for the pool and the state; default from the URLs / environment.
    """

    def __init__(
        self,
        pool: Pool | str,
        state_url: str,
        *,
        strategy: str = "entropy",
        batch_size: int = 100,
        seed_size: int | None = None,
        oracle: Any = "known",
        model: Any = None,
        heldout: int | Pool | str | None = 1000,
        seed: int = 0,
        mc_samples: int = 10,
        selection: str = "power",
        beta: float = 1.0,
        client: Any = None,
        store: Store | None = None,
    ) -> None:
        self.pool = pool if isinstance(pool, Pool) else Pool.load(pool, store)
        self.checkpoint = LoopCheckpoint(state_url, store)
        self.strategy = get_strategy(strategy)
        if batch_size < 1:
            raise LoopConfigError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = int(batch_size)
        self.seed_size = int(seed_size if seed_size is not None else batch_size)
        if self.seed_size < 1:
            raise LoopConfigError(f"seed_size must be >= 1, got {self.seed_size}")
        self.seed = int(seed)
        self.mc_samples = int(mc_samples)
        try:
            self.selection, self.beta = check_selection(selection, beta)
        except ValueError as exc:
            raise LoopConfigError(str(exc)) from None
        self.classes = list(self.pool.classes)
        self._class_index = {c: i for i, c in enumerate(self.classes)}
        self.oracle = as_oracle(oracle)
        if isinstance(self.oracle, KnownLabelsOracle):
            self.oracle.bind(self.pool)
        self.model = as_model(model, len(self.classes), seed=self.seed)
        self._client = client
        self._client_stack = contextlib.ExitStack()
        self._flux: dict[int, np.ndarray] = {}
        # labelled set: index -> class name; skipped: indices the oracle declined
        self.labels: dict[int, str] = {}
        self.ids: dict[int, str] = {}
        self.skipped: set[int] = set()
        self.history: list[IterationRecord] = []
        self.iteration = 0
        self.phase = "query"
        self._pending: list[Query] = []
        self._batch_records: list[dict[str, Any]] = []
        self._phase_times: dict[str, Any] = {}

        stored = self.checkpoint.load_state()
        if stored is None:
            self.token = secrets.token_hex(6)
            self._rng = np.random.default_rng(self.seed)
            self._heldout_spec = heldout
            self._heldout_indices, self._heldout_pool = self._draw_heldout(heldout)
            self._save_state()
            log.info(
                "new loop %s on %s (%d spectra)",
                self.checkpoint.url,
                self.pool.url,
                self.pool.total_rows,
            )
        else:
            self._restore(stored, heldout)
        self._heldout: tuple[np.ndarray, np.ndarray] | None = None

    # -- construction helpers --------------------------------------------------------------
    @classmethod
    def resume(
        cls, state_url: str, *, store: Store | None = None, **kwargs: Any
    ) -> ActiveLearningLoop:
        """Reopen the loop stored at ``state_url`` with its stored configuration.

        ``kwargs`` supplies what cannot be stored (``oracle``, ``model`` factory, ``client``).
        """
        checkpoint = LoopCheckpoint(state_url, store)
        stored = checkpoint.load_state()
        if stored is None:
            raise CheckpointError(f"{checkpoint.state_url}: no loop stored here")
        config = stored["config"]
        heldout = config["heldout"]
        return cls(
            config["pool_url"],
            state_url,
            strategy=config["strategy"],
            batch_size=config["batch_size"],
            seed_size=config["seed_size"],
            seed=config["seed"],
            mc_samples=config["mc_samples"],
            # loops stored before power acquisition existed picked the top scores
            selection=config.get("selection", "top"),
            beta=config.get("beta", 1.0),
            heldout=heldout["url"] if heldout.get("url") else heldout.get("size"),
            store=store,
            **kwargs,
        )

    def _draw_heldout(self, heldout: int | Pool | str | None) -> tuple[np.ndarray, Pool | None]:
        if heldout is None or heldout == 0:
            return np.empty(0, np.int64), None
        if isinstance(heldout, (Pool, str)):
            held = heldout if isinstance(heldout, Pool) else Pool.load(heldout, self.pool.store)
            if not held.has_labels:
                raise LoopConfigError(f"held-out pool {held.url} has no labels")
            if held.classes != self.classes or held.grid != self.pool.grid:
                raise LoopConfigError(
                    f"held-out pool {held.url} has classes {held.classes} / grid {held.grid}, "
                    f"the pool {self.classes} / {self.pool.grid}"
                )
            return np.empty(0, np.int64), held
        size = int(heldout)
        if not self.pool.has_labels:
            raise LoopConfigError(
                f"heldout={size} draws labelled spectra from the pool, but {self.pool.url} has "
                "no labels; pass a labelled held-out pool URL or heldout=None"
            )
        if size >= self.pool.total_rows:
            raise LoopConfigError(f"heldout={size} >= pool size {self.pool.total_rows}")
        # its own stream: the held-out set must not depend on (or shift) the query RNG
        rng = np.random.default_rng([self.seed, 0x4E1D])
        return np.sort(rng.choice(self.pool.total_rows, size=size, replace=False)), None

    def _config(self) -> dict[str, Any]:
        heldout: dict[str, Any] = {"size": len(self._heldout_indices)}
        if self._heldout_pool is not None:
            heldout = {"url": self._heldout_pool.url, "fingerprint": self._heldout_pool.fingerprint}
        return {
            "pool_url": self.pool.url,
            "pool_fingerprint": self.pool.fingerprint,
            "classes": self.classes,
            "strategy": self.strategy.name,
            "batch_size": self.batch_size,
            "seed_size": self.seed_size,
            "seed": self.seed,
            "mc_samples": self.mc_samples,
            "selection": self.selection,
            "beta": self.beta,
            "heldout": heldout,
        }

    def _save_state(self) -> None:
        self.checkpoint.save_state(
            {
                "config": self._config(),
                "token": self.token,
                "iteration": self.iteration,
                "phase": self.phase,
                "pending": [
                    {"index": q.index, "id": q.id, "score": q.score} for q in self._pending
                ],
                "heldout_indices": self._heldout_indices.tolist(),
                "rng": self._rng.bit_generator.state,
                "history": [asdict(r) for r in self.history],
                "phase_times": self._phase_times,
            }
        )

    def _restore(self, stored: dict[str, Any], heldout: Any) -> None:
        config = stored["config"]
        mine = {
            "pool_fingerprint": self.pool.fingerprint,
            "classes": self.classes,
            "strategy": self.strategy.name,
            "batch_size": self.batch_size,
            "seed_size": self.seed_size,
            "seed": self.seed,
            "selection": self.selection,
            "beta": self.beta,
        }
        stored_config = {"selection": "top", "beta": 1.0, **config}
        clashes = {
            k: (stored_config.get(k), v) for k, v in mine.items() if stored_config.get(k) != v
        }
        if clashes:
            detail = "; ".join(f"{k}: stored {a!r}, given {b!r}" for k, (a, b) in clashes.items())
            raise LoopConfigError(
                f"{self.checkpoint.url} holds a different loop ({detail}); use "
                "ActiveLearningLoop.resume(state_url) or a new state URL"
            )
        self.token = stored["token"]
        self.iteration = int(stored["iteration"])
        self.phase = stored["phase"]
        if self.phase not in PHASES:
            raise CheckpointError(f"{self.checkpoint.state_url}: unknown phase {self.phase!r}")
        self._rng = np.random.default_rng()
        self._rng.bit_generator.state = stored["rng"]
        self._heldout_indices = np.asarray(stored.get("heldout_indices", []), dtype=np.int64)
        held = config["heldout"]
        self._heldout_pool = Pool.load(held["url"], self.pool.store) if held.get("url") else None
        self.history = [IterationRecord(**r) for r in stored.get("history", [])]
        self._phase_times = dict(stored.get("phase_times") or {})
        self._pending = [
            Query(int(p["index"]), str(p["id"]), self.iteration, float(p["score"]))
            for p in stored.get("pending", [])
        ]
        # every label ever given, from the label files (they may be newer than loop.json)
        for it in range(self.iteration + 1):
            for rec in self.checkpoint.load_labels(it):
                self._apply_record(rec)
        self._batch_records = self.checkpoint.load_labels(self.iteration)
        if self.iteration > 0:
            self.model.set_state(self.checkpoint.load_model(self.iteration - 1))
        if self.phase == "label" and not self.pending:
            self.phase = "train"
        log.info(
            "resumed loop %s: iteration %d, phase %s, %d labels, %d pending",
            self.checkpoint.url,
            self.iteration,
            self.phase,
            len(self.labels),
            len(self.pending),
        )

    def _apply_record(self, rec: dict[str, Any]) -> None:
        index = int(rec["index"])
        self.ids[index] = str(rec["id"])
        if rec.get("label") is None:
            self.skipped.add(index)
            self.labels.pop(index, None)
        else:
            self.labels[index] = str(rec["label"])
            self.skipped.discard(index)

    # -- cluster ---------------------------------------------------------------------------
    @property
    def client(self) -> Any:
        """The Dask client used for scoring (created on first use)."""
        if self._client is None:
            from astrokit.cluster import client_or_local

            self._client = self._client_stack.enter_context(client_or_local(None))
        return self._client

    def close(self) -> None:
        """Release a temporary local cluster, if this loop started one."""
        self._client_stack.close()
        self._client = None

    def __enter__(self) -> ActiveLearningLoop:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- labelling API (used by oracles and the widget) ------------------------------------
    @property
    def pending(self) -> list[Query]:
        """Queries of the current batch that have no answer yet, in query order."""
        answered = {int(r["index"]) for r in self._batch_records}
        return [q for q in self._pending if q.index not in answered]

    @property
    def batch(self) -> list[Query]:
        """All queries of the current batch (answered or not)."""
        return list(self._pending)

    @property
    def awaiting_labels(self) -> bool:
        """True when the loop waits for an (asynchronous) oracle to label :attr:`pending`."""
        return self.phase == "label" and bool(self.pending)

    def _find_query(self, key: int | str) -> Query:
        for q in self._pending:
            if q.index == key or q.id == key:
                return q
        raise OracleError(f"{key!r} is not in the current batch of iteration {self.iteration}")

    def record_label(
        self, key: int | str, label: str | None, *, by: str = "oracle"
    ) -> dict[str, Any]:
        """Record the answer for one query of the current batch and persist it at once.

        Parameters
        ----------
        key : int or str
            The query's pool index or id.
        label : str or None
            A class name, or None to skip the spectrum (it will not be asked again).
        by : str
            Who answered (kept in the label file).
        """
        self.record_labels([(key, label)], by=by)
        return self._batch_records[-1]

    def record_labels(
        self, answers: Sequence[tuple[int | str, str | None]], *, by: str = "oracle"
    ) -> None:
        """Record several answers with one write (what instantaneous oracles use)."""
        if self.phase != "label":
            raise OracleError(f"the loop is not waiting for labels (phase {self.phase!r})")
        new = []
        for key, label in answers:
            query = self._find_query(key)
            if label is not None and label not in self._class_index:
                raise OracleError(f"label {label!r} for {query.id} is not one of {self.classes}")
            if any(int(r["index"]) == query.index for r in self._batch_records):
                raise OracleError(f"{query.id} is already labelled in this batch (undo first)")
            new.append(
                {
                    "index": query.index,
                    "id": query.id,
                    "label": label,
                    "iteration": self.iteration,
                    "time": time.time(),
                    "by": by,
                }
            )
        records = [*self._batch_records, *new]
        self.checkpoint.save_labels(self.iteration, records)  # first the store, then memory
        self._batch_records = records
        for rec in new:
            self._apply_record(rec)

    def skip(self, key: int | str, *, by: str = "oracle") -> dict[str, Any]:
        """Skip one query of the current batch (recorded, never asked again)."""
        return self.record_label(key, None, by=by)

    def undo(self) -> dict[str, Any] | None:
        """Withdraw the last answer of the current batch; returns it (None if none).

        Only answers of the batch still being labelled can be undone: earlier batches have
        already been trained on.
        """
        if self.phase != "label" or not self._batch_records:
            return None
        records = self._batch_records[:-1]
        last = self._batch_records[-1]
        self.checkpoint.save_labels(self.iteration, records)
        self._batch_records = records
        index = int(last["index"])
        self.labels.pop(index, None)
        self.skipped.discard(index)
        return last

    # -- the iteration ---------------------------------------------------------------------
    def _excluded(self) -> np.ndarray:
        parts = [
            np.fromiter(self.labels, np.int64, len(self.labels)),
            np.fromiter(self.skipped, np.int64, len(self.skipped)),
            self._heldout_indices,
        ]
        return np.unique(np.concatenate(parts))

    def _query(self) -> list[Query]:
        start = time.perf_counter()
        excluded = self._excluded()
        if excluded.size >= self.pool.total_rows:
            return []
        score_seconds = 0.0
        score_precision = None
        if self.iteration == 0 or not self.strategy.needs_model:
            k = self.seed_size if self.iteration == 0 else self.batch_size
            chosen = random_indices(self._rng, self.pool.total_rows, k, set(excluded.tolist()))
            scores = np.full(len(chosen), np.nan)
        else:
            result = score_pool(
                self.client,
                self.pool,
                self.model,
                self.strategy.name,
                k=self.batch_size,
                exclude=excluded,
                iteration=self.iteration,
                token=self.token,
                mc_samples=self.mc_samples,
                selection=self.selection,
                beta=self.beta,
                noise_seed=(self.seed,),
            )
            chosen, scores = result.indices, result.scores
            score_seconds = result.seconds
            score_precision = result.precision
        rows = self.pool.get_rows(chosen, keys=("flux", "ids"))
        queries = []
        for index, score, flux, sid in zip(chosen, scores, rows["flux"], rows["ids"], strict=True):
            self._flux[int(index)] = flux
            queries.append(Query(int(index), str(sid), self.iteration, float(score), flux))
        self._phase_times = {
            "score_seconds": score_seconds,
            "score_precision": score_precision,
            "query_seconds": time.perf_counter() - start,
            "label_started": time.time(),
        }
        return queries

    def _ask_oracle(self) -> None:
        pending = self.pending
        # queries restored from the state have no flux yet; oracles may want to look
        missing = [q.index for q in pending if q.index not in self._flux]
        if missing:
            rows = self.pool.get_rows(missing, keys=("flux",))
            self._flux.update({i: f for i, f in zip(missing, rows["flux"], strict=True)})
        pending = [Query(q.index, q.id, q.iteration, q.score, self._flux[q.index]) for q in pending]
        if hasattr(self.oracle, "label_batch"):
            answers = self.oracle.label_batch(pending)
            self.record_labels([(q.index, a) for q, a in zip(pending, answers, strict=True)])
            return
        for q in pending:
            self.record_label(q.index, self.oracle.label(q))

    def _training_set(self) -> tuple[np.ndarray, np.ndarray]:
        indices = np.array(sorted(self.labels), dtype=np.int64)
        missing = [int(i) for i in indices if int(i) not in self._flux]
        if missing:
            rows = self.pool.get_rows(missing, keys=("flux",))
            self._flux.update({i: f for i, f in zip(missing, rows["flux"], strict=True)})
        x = np.stack([self._flux[int(i)] for i in indices])
        y = np.array([self._class_index[self.labels[int(i)]] for i in indices], dtype=np.int64)
        return x, y

    def _heldout_data(self) -> tuple[np.ndarray, np.ndarray] | None:
        if self._heldout is None:
            if self._heldout_pool is not None:
                held = self._heldout_pool
                parts = [held.read_shard(i, ("flux", "labels")) for i in range(len(held.shards))]
                flux = np.concatenate([p["flux"] for p in parts])
                labels = np.concatenate([p["labels"] for p in parts])
            elif len(self._heldout_indices):
                rows = self.pool.get_rows(self._heldout_indices, keys=("flux", "labels"))
                flux, labels = rows["flux"], rows["labels"]
            else:
                return None
            y = np.array([self._class_index.get(str(v), -1) for v in labels], dtype=np.int64)
            if (y < 0).any():
                raise LoopConfigError("held-out spectra without a known class label")
            self._heldout = (flux, y)
        return self._heldout

    def evaluate(self) -> dict[str, float] | None:
        """Accuracy and macro-F1 of the current model on the held-out set (None without one)."""
        data = self._heldout_data()
        if data is None:
            return None
        x, y = data
        pred = np.argmax(self.model.predict_proba(x), axis=1)
        return {
            "accuracy": float(np.mean(pred == y)),
            "f1_macro": _macro_f1(y, pred, len(self.classes)),
        }

    def _train(self) -> IterationRecord:
        times = self._phase_times
        label_seconds = max(0.0, time.time() - float(times.get("label_started", time.time())))
        start = time.perf_counter()
        if self.labels:
            x, y = self._training_set()
            self.model.fit(x, y, warm_start=True)
        train_seconds = time.perf_counter() - start
        metrics = self.evaluate() or {}
        batch = Counter(r["label"] for r in self._batch_records if r["label"] is not None)
        labelled = Counter(self.labels.values())
        record = IterationRecord(
            iteration=self.iteration,
            strategy="seed" if self.iteration == 0 else self.strategy.name,
            n_labelled=len(self.labels),
            n_queried=len(self._pending),
            n_skipped=sum(1 for r in self._batch_records if r["label"] is None),
            accuracy=metrics.get("accuracy"),
            f1_macro=metrics.get("f1_macro"),
            batch_classes={c: int(batch.get(c, 0)) for c in self.classes},
            labelled_classes={c: int(labelled.get(c, 0)) for c in self.classes},
            score_seconds=float(times.get("score_seconds", 0.0)),
            label_seconds=label_seconds,
            train_seconds=train_seconds,
            score_precision=times.get("score_precision"),
        )
        record.seconds = (
            float(times.get("query_seconds", 0.0)) + record.label_seconds + train_seconds
        )
        return record

    def step(self) -> StepResult:
        """Advance the loop as far as it can go without waiting.

        Returns after one iteration has been trained (``"trained"``), when an asynchronous
        oracle must label the pending batch first (``"awaiting_labels"``), or when the pool
        has no unlabelled spectra left (``"exhausted"``).
        """
        if self.phase == "query":
            queries = self._query()
            if not queries:
                return StepResult("exhausted")
            self._pending = queries
            self._batch_records = []
            self.phase = "label"
            self._save_state()
        if self.phase == "label":
            if self.pending:
                if getattr(self.oracle, "asynchronous", False):
                    return StepResult("awaiting_labels", queries=self.pending)
                self._ask_oracle()
            self.phase = "train"
        # train: labels are all on the store already; a crash here just retrains
        record = self._train()
        self.checkpoint.save_model(self.iteration, self.model.get_state())
        self.history.append(record)
        self.iteration += 1
        self.phase = "query"
        self._pending = []
        self._batch_records = []
        self._save_state()
        log.info(
            "iteration %d (%s): %d labelled, accuracy %s, batch %s, %.1f s",
            record.iteration,
            record.strategy,
            record.n_labelled,
            "n/a" if record.accuracy is None else f"{record.accuracy:.3f}",
            record.batch_classes,
            record.seconds,
        )
        return StepResult("trained", record=record)

    def run(self, iterations: int) -> list[IterationRecord]:
        """Run until ``iterations`` iterations in total have been trained (counting the seed
        iteration and any done before a resume), the pool is exhausted, or an asynchronous
        oracle has to label. Returns the whole history."""
        while self.iteration < iterations:
            result = self.step()
            if result.status != "trained":
                break
        return self.history

    def __repr__(self) -> str:
        return (
            f"ActiveLearningLoop({self.pool.url!r}, state={self.checkpoint.url!r}, "
            f"strategy={self.strategy.name!r}, iteration={self.iteration}, phase={self.phase!r}, "
            f"labelled={len(self.labels)})"
        )
