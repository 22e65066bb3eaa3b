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
   single-process top-k would).

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

from astrokit.active.pool import Pool
from astrokit.active.strategies import get_strategy, top_k

if TYPE_CHECKING:
    import distributed

__all__ = ["ScoreResult", "score_pool", "score_shard", "task_key"]

log = logging.getLogger(__name__)

TASK_PREFIX = "astrokit-al-score"

# MC dropout flips dropout layers into train mode; two threads of one worker sharing the
# scattered model must not interleave that (one would silently score deterministically).
_MC_LOCK = threading.Lock()
_THREADS_SET = False


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
    """

    indices: np.ndarray
    scores: np.ndarray
    n_scored: int
    predicted_counts: np.ndarray
    seconds: float
    n_tasks: int = 0
    task_keys: list[str] = field(default_factory=list)


def task_key(iteration: int, shard: int, token: str) -> str:
    """The Dask key of a scoring task: ``astrokit-al-score-it03-00007-<token>``."""
    return f"{TASK_PREFIX}-it{iteration:02d}-{shard:05d}-{token}"


def _use_worker_threads() -> None:
    """Let torch use as many threads as the worker has (not the machine's core count)."""
    global _THREADS_SET
    if _THREADS_SET:
        return
    try:
        import distributed
        import torch

        nthreads = distributed.get_worker().state.nthreads
        torch.set_num_threads(max(1, int(nthreads)))
    except (ImportError, ValueError):  # not on a worker (direct call): leave torch alone
        pass
    _THREADS_SET = True


def score_shard(
    pool: Pool,
    shard: int,
    model: Any,
    strategy: str,
    k: int,
    exclude_local: np.ndarray,
    mc_samples: int = 10,
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

    Returns
    -------
    dict
        ``indices`` (global), ``scores``, ``n_scored``, ``predicted_counts``.
    """
    _use_worker_threads()
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
            "n_scored": 0,
            "predicted_counts": np.zeros(model.n_classes, np.int64),
        }
    x = flux[local]
    if strat.needs_samples:
        with _MC_LOCK:
            samples = model.predict_proba_samples(x, mc_samples)
        probs = samples.mean(axis=0)
        scores = strat.score(samples)
    else:
        probs = model.predict_proba(x)
        scores = strat.score(probs)
    counts = np.bincount(np.argmax(probs, axis=1), minlength=model.n_classes)
    best_scores, best = top_k(scores, local + entry.offset, k)
    return {
        "indices": best,
        "scores": best_scores,
        "n_scored": int(local.size),
        "predicted_counts": counts.astype(np.int64),
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
    """
    start = time.perf_counter()
    exclude = np.unique(np.asarray(exclude, dtype=np.int64))
    digest = hashlib.sha1(f"{token}-{iteration}-{time.time_ns()}".encode()).hexdigest()[:12]
    [model_future] = client.scatter([model], broadcast=True, hash=False)
    pool_future = client.scatter(pool, broadcast=True, hash=False)
    futures = []
    keys = []
    for i, entry in enumerate(pool.shards):
        lo = np.searchsorted(exclude, entry.offset)
        hi = np.searchsorted(exclude, entry.offset + entry.rows)
        key = task_key(iteration, i, digest)
        keys.append(key)
        futures.append(
            client.submit(
                score_shard,
                pool_future,
                i,
                model_future,
                strategy,
                k,
                exclude[lo:hi] - entry.offset,
                mc_samples,
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
    indices = np.concatenate([p["indices"] for p in parts]) if parts else np.empty(0, np.int64)
    best_scores, best = top_k(scores, indices, k)
    counts = np.sum([p["predicted_counts"] for p in parts], axis=0)
    seconds = time.perf_counter() - start
    n_scored = int(sum(p["n_scored"] for p in parts))
    log.info(
        "iteration %d: scored %d spectra in %d tasks (%s) in %.2f s",
        iteration,
        n_scored,
        len(futures),
        strategy,
        seconds,
    )
    return ScoreResult(best, best_scores, n_scored, counts, seconds, len(futures), keys)
