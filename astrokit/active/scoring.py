"""Score the pool on the Dask cluster: one task per shard, the model shipped once per worker.

Each iteration of the loop calls :func:`score_pool`. It

1. scatters the current model to every worker once (``broadcast=True``): a worker
   deserialises it once and all of its tasks share that copy — no per-task model shipping;
2. submits one named task per pool shard (``astrokit-al-score-it03-00007-<token>``, so the
   dashboard groups them as ``astrokit-al-score``; the token keeps two loops, or a resumed
   iteration, from ever reusing a stale result). A task reads its shard from the store, runs
   the model, scores the rows with the strategy, drops already-labelled/held-out rows and
   returns only its best ``k`` — a few KB whatever the shard size;
3. merges the per-shard winners into the global top ``k`` (ties by smaller index, as a
   single-process top-k would). With power acquisition (the loop's default) a row is ranked
   by a key, its score's log plus seeded Gumbel noise, and the same merge gives a draw of
   ``k`` rows with probability proportional to the score
   (:mod:`astrokit.active.strategies`).

Nothing of the pool goes through the client: pools larger than the client's memory work.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from astrokit.active.pool import Pool, pool_partitions
from astrokit.active.strategies import check_selection, get_strategy, power_keys, top_k_order
from astrokit.workers import setup_workers

if TYPE_CHECKING:
    import distributed

__all__ = ["ScoreResult", "score_pool", "score_shard", "task_key"]

log = logging.getLogger(__name__)

TASK_PREFIX = "astrokit-al-score"

# MC dropout flips dropout layers into train mode; two threads of one worker sharing the
# scattered model must not interleave that (one would silently score deterministically).
_MC_LOCK = threading.Lock()


@dataclass
class ScoreResult:
    """The outcome of scoring the pool once.

    Attributes
    ----------
    indices, scores : ndarray
        The best ``k`` candidates (global pool indices), best first.
    n_scored : int
        Rows scored (the pool minus excluded rows).
    predicted_counts : ndarray
        How many scored rows the model assigns to each class (argmax) — a cheap view of the
        model's picture of the whole pool.
    seconds : float
        Wall time of the whole scoring step (scatter, tasks, merge).
    n_tasks : int
    precision : dict or None
        What the workers scored in (:mod:`astrokit.models.precision`): ``chosen``,
        ``reasons``, ``fallback`` and the merged ``parity`` report (``max_abs_diff`` is in
        class probability); None for models without a precision setting.
    """

    indices: np.ndarray
    scores: np.ndarray
    n_scored: int
    predicted_counts: np.ndarray
    seconds: float
    n_tasks: int = 0
    task_keys: list[str] = field(default_factory=list)
    precision: dict[str, Any] | None = None


def task_key(iteration: int, shard: int, token: str) -> str:
    """The Dask key of a scoring task: ``astrokit-al-score-it03-00007-<token>``."""
    return f"{TASK_PREFIX}-it{iteration:02d}-{shard:05d}-{token}"


def score_shard(
    pool: Pool,
    shard: int,
    model: Any,
    strategy: str,
    k: int,
    exclude_local: np.ndarray,
    mc_samples: int = 10,
    selection: str = "top",
    beta: float = 1.0,
    noise_seed: tuple[int, ...] = (),
) -> dict[str, Any]:
    """Score one shard and return its best ``k`` rows (runs on a worker).

    Parameters
    ----------
    pool : Pool
    shard : int
        Position of the shard in ``pool.shards``.
    model : ALModel
        The (scattered) model.
    strategy : str
        A strategy name that needs a model (not ``random``).
    k : int
        Candidates to return.
    exclude_local : ndarray of int
        Rows of this shard (local positions) that must not be returned.
    mc_samples : int
        MC-dropout passes for BALD.
    selection, beta : str, float
        ``"top"``: the ``k`` best scores; ``"power"``: ``k`` rows drawn with probability
        ``∝ score**beta`` (:func:`~astrokit.active.strategies.power_keys`).
    noise_seed : tuple of int
        Seeds the power draw's noise; with the shard's position appended, so every shard
        draws independently and the same loop, iteration and shard always draw the same.

    Returns
    -------
    dict
        ``indices`` (global), ``scores``, ``keys`` (what the batch is ranked by: the scores,
        or the power draw's keys), ``n_scored``, ``predicted_counts``.
    """
    # torch threads = the worker's threads: astrokit.workers.TorchThreads, once per worker
    strat = get_strategy(strategy)
    if strat.score is None:
        raise ValueError(f"strategy {strat.name!r} does not score with a model")
    entry = pool.shards[shard]
    flux = pool.read_shard(shard, ("flux",))["flux"]
    keep = np.ones(entry.rows, dtype=bool)
    keep[np.asarray(exclude_local, dtype=np.int64)] = False
    local = np.flatnonzero(keep)
    if local.size == 0:
        return {
            "indices": np.empty(0, np.int64),
            "scores": np.empty(0),
            "keys": np.empty(0),
            "n_scored": 0,
            "predicted_counts": np.zeros(model.n_classes, np.int64),
        }
    x = flux[local]
    choice = parity = None
    if hasattr(model, "settle_precision"):  # decided once per worker for these weights
        choice, parity = model.settle_precision(x)
    if strat.needs_samples:
        with _MC_LOCK:
            samples = model.predict_proba_samples(x, mc_samples)
        probs = samples.mean(axis=0)
        scores = strat.score(samples)
    else:
        probs = model.predict_proba(x)
        scores = strat.score(probs)
    counts = np.bincount(np.argmax(probs, axis=1), minlength=model.n_classes)
    if selection == "power":
        # noise for every row of the shard, then the kept ones: a row's draw does not depend
        # on which other rows are excluded
        rng = np.random.default_rng([*noise_seed, shard])
        keys = power_keys(scores, beta, rng.gumbel(size=entry.rows)[local])
    else:
        keys = np.asarray(scores, dtype=np.float64)
    global_indices = local + entry.offset
    order = top_k_order(keys, global_indices, k)
    return {
        "indices": global_indices[order],
        "scores": np.asarray(scores, dtype=np.float64)[order],
        "keys": keys[order],
        "n_scored": int(local.size),
        "predicted_counts": counts.astype(np.int64),
        "worker": _worker_name(),
        "precision": None if choice is None else choice.to_dict(),
        "parity": None if parity is None else parity.to_dict(),
    }


def _worker_name() -> str:
    try:
        import distributed

        return str(distributed.get_worker().address)
    except (ImportError, ValueError):
        import os

        return f"pid-{os.getpid()}"


def _precision_summary(parts: list[dict[str, Any]]) -> dict[str, Any] | None:
    """What the scoring tasks computed in, why, and the parity guard's merged report."""
    from astrokit.models.precision import merge_reports

    choices = [p["precision"] for p in parts if p.get("precision")]
    if not choices:
        return None
    counts: dict[str, int] = {}
    for c in choices:
        counts[c["precision"]] = counts.get(c["precision"], 0) + 1
    per_worker: dict[str, dict[str, Any]] = {}
    for p in parts:
        if p.get("parity"):
            per_worker.setdefault(p.get("worker", str(len(per_worker))), p["parity"])
    parity = merge_reports(list(per_worker.values()))
    return {
        "requested": choices[0]["requested"],
        "chosen": max(counts, key=counts.get),
        "reasons": list(dict.fromkeys(c["reason"] for c in choices)),
        "tasks_by_precision": counts,
        "fallback": parity is not None and not parity["passed"],
        "parity": parity,
    }


def score_pool(
    client: distributed.Client,
    pool: Pool,
    model: Any,
    strategy: str,
    *,
    k: int,
    exclude: np.ndarray,
    iteration: int,
    token: str,
    mc_samples: int = 10,
    selection: str = "top",
    beta: float = 1.0,
    noise_seed: tuple[int, ...] = (),
) -> ScoreResult:
    """Score every unexcluded row of ``pool`` on the cluster and return the top ``k``.

    Parameters
    ----------
    client : distributed.Client
    pool : Pool
    model : ALModel
        Shipped once per worker (``scatter(broadcast=True)``).
    strategy : str
        Name of a model-based strategy.
    k : int
        Batch size.
    exclude : ndarray of int
        Global indices never to return (labelled, skipped, held-out).
    iteration : int
        Used in the task names.
    token : str
        Distinguishes this loop/iteration's keys from any other's.
    mc_samples : int
        MC-dropout passes for BALD.
    selection, beta, noise_seed
        How the batch is picked (see :func:`score_shard`); the loop seeds the noise with its
        seed and the iteration.
    """
    selection, beta = check_selection(selection, beta)
    noise_seed = (*(int(v) for v in noise_seed), int(iteration))
    start = time.perf_counter()
    exclude = np.unique(np.asarray(exclude, dtype=np.int64))
    digest = hashlib.sha1(f"{token}-{iteration}-{time.time_ns()}".encode()).hexdigest()[:12]
    setup_workers(client)
    [model_future] = client.scatter([model], broadcast=True, hash=False)
    # the pool travels without credentials (its store as a StoreSpec: astrokit.workers)
    pool_future = client.scatter(pool.for_tasks(), broadcast=True, hash=False)
    futures = []
    keys = []
    for part in pool_partitions(pool):
        lo = np.searchsorted(exclude, part.offset)
        hi = np.searchsorted(exclude, part.offset + part.rows)
        key = task_key(iteration, part.index, digest)
        keys.append(key)
        futures.append(
            client.submit(
                score_shard,
                pool_future,
                part.index,
                model_future,
                strategy,
                k,
                exclude[lo:hi] - part.offset,
                mc_samples,
                selection,
                beta,
                noise_seed,
                key=key,
                pure=False,
            )
        )
    try:
        parts = client.gather(futures)
    finally:
        for future in (*futures, model_future, pool_future):
            future.release()
    scores = np.concatenate([p["scores"] for p in parts]) if parts else np.empty(0)
    keys = np.concatenate([p["keys"] for p in parts]) if parts else np.empty(0)
    indices = np.concatenate([p["indices"] for p in parts]) if parts else np.empty(0, np.int64)
    order = top_k_order(keys, indices, k)
    best_scores, best = scores[order], indices[order]
    counts = np.sum([p["predicted_counts"] for p in parts], axis=0)
    seconds = time.perf_counter() - start
    n_scored = int(sum(p["n_scored"] for p in parts))
    precision = _precision_summary(parts)
    log.info(
        "iteration %d: scored %d spectra in %d tasks (%s, %s) in %.2f s",
        iteration,
        n_scored,
        len(futures),
        strategy,
        "n/a" if precision is None else f"{precision['chosen']}: {'; '.join(precision['reasons'])}",
        seconds,
    )
    return ScoreResult(
        best, best_scores, n_scored, counts, seconds, len(futures), keys, precision=precision
    )
