"""Query strategies: which unlabelled spectra are worth a label next.

Every strategy maps a model's class probabilities to one *informativeness* score per item,
higher meaning "ask for this one first", so that selection is the same top-k for all of them:

``entropy``
    Shannon entropy of the predictive distribution, ``-sum_c p_c log p_c``.
``margin``
    ``1 - (p_1 - p_2)`` with ``p_1 >= p_2`` the two largest probabilities (a small margin
    between the two best classes is informative).
``least_confidence``
    ``1 - max_c p_c``.
``bald``
    Bayesian Active Learning by Disagreement (Houlsby et al. 2011; Gal et al. 2017), estimated
    with ``T`` Monte-Carlo dropout passes: the mutual information between the label and the
    weights, ``H[mean_t p_t] - mean_t H[p_t]``.
``random``
    The baseline: uniform sampling without replacement; needs no scores at all.

Scores are computed where the probabilities are, i.e. on the Dask workers, one partition at a
time (see :mod:`astrokit.active.scoring`); :func:`top_k` then merges per-partition winners.

Picking a batch
---------------
``selection="top"`` takes the ``k`` highest scores. With batches of ~100 that picks many
near-duplicates of the same ambiguous case, and with a noisy task it keeps querying objects
no label can settle (at the detection limit). On ``benchmarks/active.py``'s pool top-k
entropy and BALD need 0.52 and 0.68 of random sampling's labels, the power draw 0.49 and 0.55
(``benchmarks/results/active-top.json``, ``active.json``). ``selection="power"`` (the default) is
stochastic power acquisition (Kirsch et al. 2023, "Stochastic Batch Acquisition: A Simple
Baseline for Deep Active Learning"): draw ``k`` items without replacement with probability
proportional to ``score ** beta``. It is done as a top-k, so it merges across partitions like
the deterministic one: :func:`power_keys` adds Gumbel noise to ``beta * log(score)``, and the
``k`` largest keys are exactly such a draw (the Gumbel-top-k trick, Kool et al. 2019).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from astrokit.errors import UserError

__all__ = [
    "SELECTIONS",
    "STRATEGIES",
    "Strategy",
    "UnknownStrategyError",
    "bald",
    "check_selection",
    "entropy",
    "get_strategy",
    "least_confidence",
    "margin",
    "power_keys",
    "random_indices",
    "top_k",
    "top_k_order",
]

# Probabilities are clipped away from 0 before taking logs: p log p -> 0 as p -> 0, and the
# clip keeps a hard 0/1 prediction from producing NaN (0 * -inf).
_EPS = 1e-12


class UnknownStrategyError(UserError, ValueError):
    """A strategy name that is not one of :data:`STRATEGIES`."""


def _check_probs(probs: np.ndarray, ndim: int, name: str) -> np.ndarray:
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != ndim:
        shape = "(n_items, n_classes)" if ndim == 2 else "(n_samples, n_items, n_classes)"
        raise ValueError(f"{name}: expected probabilities of shape {shape}, got {probs.shape}")
    return probs


def _entropy(probs: np.ndarray) -> np.ndarray:
    p = np.clip(probs, _EPS, 1.0)
    return -(probs * np.log(p)).sum(axis=-1)


def entropy(probs: np.ndarray) -> np.ndarray:
    """Predictive entropy of each row of ``probs`` (n_items, n_classes), in nats."""
    return _entropy(_check_probs(probs, 2, "entropy"))


def margin(probs: np.ndarray) -> np.ndarray:
    """``1 - (p_top1 - p_top2)`` for each row of ``probs`` (n_items, n_classes)."""
    probs = _check_probs(probs, 2, "margin")
    if probs.shape[1] < 2:
        return np.zeros(probs.shape[0])
    top2 = np.partition(probs, probs.shape[1] - 2, axis=1)[:, -2:]
    return 1.0 - (top2[:, 1] - top2[:, 0])


def least_confidence(probs: np.ndarray) -> np.ndarray:
    """``1 - max_c p_c`` for each row of ``probs`` (n_items, n_classes)."""
    return 1.0 - _check_probs(probs, 2, "least_confidence").max(axis=1)


def bald(samples: np.ndarray) -> np.ndarray:
    """BALD mutual information from Monte-Carlo samples of the predictive distribution.

    Parameters
    ----------
    samples : ndarray, shape (n_samples, n_items, n_classes)
        Class probabilities from ``n_samples`` stochastic forward passes (MC dropout).

    Returns
    -------
    ndarray, shape (n_items,)
        ``H[mean_t p_t] - mean_t H[p_t]``, >= 0 up to rounding (clipped at 0).
    """
    samples = _check_probs(samples, 3, "bald")
    mean_entropy = _entropy(samples.mean(axis=0))
    expected_entropy = _entropy(samples).mean(axis=0)
    return np.maximum(mean_entropy - expected_entropy, 0.0)


@dataclass(frozen=True)
class Strategy:
    """A named query strategy.

    Attributes
    ----------
    name : str
        Registry name.
    score : callable or None
        Maps probabilities to scores; None for ``random`` (no model pass needed).
    needs_samples : bool
        True when ``score`` takes MC samples (n_samples, n_items, n_classes) rather than a
        single predictive distribution (n_items, n_classes).
    """

    name: str
    score: Callable[[np.ndarray], np.ndarray] | None
    needs_samples: bool = False

    @property
    def needs_model(self) -> bool:
        """Whether the pool must be scored by the model for this strategy."""
        return self.score is not None


STRATEGIES: dict[str, Strategy] = {
    "entropy": Strategy("entropy", entropy),
    "margin": Strategy("margin", margin),
    "least_confidence": Strategy("least_confidence", least_confidence),
    "bald": Strategy("bald", bald, needs_samples=True),
    "random": Strategy("random", None),
}


def get_strategy(name: str | Strategy) -> Strategy:
    """Look a strategy up by name (``-`` and ``_`` are interchangeable, case ignored)."""
    if isinstance(name, Strategy):
        return name
    key = str(name).strip().lower().replace("-", "_")
    try:
        return STRATEGIES[key]
    except KeyError:
        allowed = ", ".join(STRATEGIES)
        raise UnknownStrategyError(
            f"unknown active-learning strategy {name!r}; expected one of: {allowed}"
        ) from None


#: How a batch is picked from the scores (see the module docstring).
SELECTIONS = ("power", "top")


def check_selection(selection: str, beta: float) -> tuple[str, float]:
    """Validate a batch-selection rule; returns ``(selection, beta)`` normalised."""
    if selection not in SELECTIONS:
        raise ValueError(f"selection must be one of {', '.join(SELECTIONS)}; got {selection!r}")
    try:
        beta = float(beta)
    except (TypeError, ValueError):
        raise ValueError(
            f"beta (power-acquisition exponent) must be a number, got {beta!r}"
        ) from None
    if not (np.isfinite(beta) and beta > 0):
        raise ValueError(f"beta (power-acquisition exponent) must be a positive number, got {beta}")
    return selection, beta


def power_keys(scores: np.ndarray, beta: float, gumbel: np.ndarray) -> np.ndarray:
    """Sort keys whose top ``k`` is a draw of ``k`` items with probability ``∝ score**beta``.

    Parameters
    ----------
    scores : ndarray, shape (n,)
        Informativeness scores (>= 0); zero or NaN scores are picked only after every
        positive one (their key is ``-inf``).
    beta : float
        Exponent: large values approach the deterministic top-k, small ones random sampling.
    gumbel : ndarray, shape (n,)
        Standard Gumbel noise, one value per item (the caller seeds it, so a resumed loop
        draws the same batch).
    """
    scores = np.asarray(scores, dtype=np.float64)
    gumbel = np.asarray(gumbel, dtype=np.float64)
    if scores.shape != gumbel.shape:
        raise ValueError(f"power_keys: scores {scores.shape} and noise {gumbel.shape} differ")
    positive = np.nan_to_num(scores, nan=0.0) > 0
    keys = np.full(scores.shape, -np.inf)
    keys[positive] = beta * np.log(scores[positive]) + gumbel[positive]
    return keys


def top_k(scores: np.ndarray, indices: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` highest scores and their indices, ties broken by the smaller index.

    Deterministic tie-breaking matters: a resumed loop must query exactly what the
    interrupted one would have, and per-partition winners must merge to the global winners.

    Parameters
    ----------
    scores : ndarray, shape (n,)
    indices : ndarray of int, shape (n,)
        Global pool indices of the scored items.
    k : int
        How many to keep (fewer if fewer items).

    Returns
    -------
    (scores, indices) : tuple of ndarray
        Sorted by decreasing score, then increasing index.
    """
    scores = np.asarray(scores, dtype=np.float64)
    indices = np.asarray(indices, dtype=np.int64)
    order = top_k_order(scores, indices, k)
    return scores[order], indices[order]


def top_k_order(scores: np.ndarray, indices: np.ndarray, k: int) -> np.ndarray:
    """Positions of :func:`top_k`'s winners in ``scores`` (to carry other per-item arrays)."""
    scores = np.asarray(scores, dtype=np.float64)
    indices = np.asarray(indices, dtype=np.int64)
    if scores.shape != indices.shape:
        raise ValueError(f"top_k: scores {scores.shape} and indices {indices.shape} differ")
    # NaN scores (a degenerate model output) must never be preferred: rank them last.
    safe = np.where(np.isnan(scores), -np.inf, scores)
    return np.lexsort((indices, -safe))[: max(int(k), 0)]


def random_indices(
    rng: np.random.Generator, n_total: int, k: int, excluded: np.ndarray | set[int]
) -> np.ndarray:
    """Draw ``k`` distinct indices in ``[0, n_total)`` that are not in ``excluded``.

    Works for pools of any size: it samples by rejection while most of the pool is free and
    only enumerates the free indices when the pool is nearly exhausted.
    """
    excluded_set = excluded if isinstance(excluded, set) else {int(i) for i in excluded}
    n_free = n_total - len(excluded_set)
    k = min(int(k), max(n_free, 0))
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    if n_free < 4 * k or n_total <= 100_000:
        free = np.setdiff1d(np.arange(n_total, dtype=np.int64), np.fromiter(excluded_set, np.int64))
        return np.sort(rng.choice(free, size=k, replace=False))
    chosen: set[int] = set()
    while len(chosen) < k:
        for i in rng.integers(0, n_total, size=2 * (k - len(chosen))):
            i = int(i)
            if i not in excluded_set and i not in chosen:
                chosen.add(i)
                if len(chosen) == k:
                    break
    return np.array(sorted(chosen), dtype=np.int64)
