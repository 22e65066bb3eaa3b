"""Simulated-oracle experiments: strategies against random sampling, over several seeds.

:func:`simulate` runs one :class:`~astrokit.active.ActiveLearningLoop` per (strategy, seed)
with known labels as the oracle — the same seed set, held-out set and initial model for every
strategy of a seed, so that only the strategy differs. Each loop checkpoints under
``<state_root>/<strategy>-seed<k>``: an interrupted experiment resumes where it stopped.

:func:`learning_curves` averages the per-iteration logs (mean ± std over seeds),
:func:`label_efficiency` answers "how many labels does the strategy need to reach the accuracy
random sampling reaches at its last iteration", and :func:`plot_learning_curves` draws it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from astrokit.active.loop import ActiveLearningLoop, IterationRecord
from astrokit.active.pool import Pool
from astrokit.active.strategies import get_strategy

__all__ = [
    "ExperimentResult",
    "label_efficiency",
    "labels_to_reach",
    "learning_curves",
    "plot_learning_curves",
    "simulate",
]

log = logging.getLogger(__name__)


@dataclass
class ExperimentResult:
    """Per-iteration logs of every (strategy, seed) loop of an experiment.

    Attributes
    ----------
    histories : dict
        ``{strategy: [history of seed 0, history of seed 1, ...]}``; each history a list of
        :class:`~astrokit.active.IterationRecord`.
    seeds : list of int
    pool_url : str
    batch_size, seed_size : int
    seconds : float
        Wall time of :func:`simulate`.
    """

    histories: dict[str, list[list[IterationRecord]]]
    seeds: list[int]
    pool_url: str
    batch_size: int
    seed_size: int
    seconds: float = 0.0
    config: dict[str, Any] = field(default_factory=dict)

    def to_dict(self, metric: str = "accuracy", baseline: str = "random") -> dict[str, Any]:
        """JSON-ready summary: config, curves, label efficiency and the raw logs."""
        return {
            "pool_url": self.pool_url,
            "seeds": self.seeds,
            "batch_size": self.batch_size,
            "seed_size": self.seed_size,
            "seconds": round(self.seconds, 2),
            **self.config,
            "curves": learning_curves(self, metric),
            "label_efficiency": (
                label_efficiency(self, metric, baseline) if baseline in self.histories else None
            ),
            "histories": {
                s: [[asdict(r) for r in h] for h in runs] for s, runs in self.histories.items()
            },
        }


def simulate(
    pool: Pool | str,
    state_root: str,
    *,
    strategies: Sequence[str] = ("entropy",),
    baseline: str | None = "random",
    seeds: Sequence[int] = (0, 1, 2),
    iterations: int = 10,
    batch_size: int = 100,
    seed_size: int | None = None,
    heldout: int | Pool | str | None = 1000,
    model_factory: Callable[[int, int], Any] | None = None,
    mc_samples: int = 10,
    selection: str = "power",
    beta: float = 1.0,
    client: Any = None,
    store: Any = None,
) -> ExperimentResult:
    """Run each strategy (and the baseline) for each seed with the pool's known labels.

    Parameters
    ----------
    pool : Pool or str
        A pool with known labels.
    state_root : str
        Writable directory; each loop checkpoints in ``<state_root>/<strategy>-seed<k>``.
    strategies : sequence of str
        Strategies to compare (e.g. ``("entropy", "bald")``).
    baseline : str or None
        Also run this one (default ``"random"``) unless already listed.
    seeds : sequence of int
    iterations : int
        Iterations per loop, the random seed iteration included.
    batch_size, seed_size, heldout, mc_samples, selection, beta
        As for :class:`~astrokit.active.ActiveLearningLoop`.
    model_factory : callable ``(n_classes, seed) -> model``, optional
        Default: the SpectraCNN.
    client : distributed.Client, optional
        Default: :func:`astrokit.cluster.client_or_local`.
    """
    from astrokit.cluster import client_or_local

    names = [get_strategy(s).name for s in strategies]
    if baseline is not None and get_strategy(baseline).name not in names:
        names.append(get_strategy(baseline).name)
    pool = pool if isinstance(pool, Pool) else Pool.load(pool, store)
    start = time.perf_counter()
    histories: dict[str, list[list[IterationRecord]]] = {name: [] for name in names}
    with client_or_local(client) as cl:
        for seed in seeds:
            for name in names:
                model = model_factory(len(pool.classes), seed) if model_factory else None
                loop = ActiveLearningLoop(
                    pool,
                    f"{state_root.rstrip('/')}/{name}-seed{seed}",
                    strategy=name,
                    batch_size=batch_size,
                    seed_size=seed_size,
                    oracle="known",
                    model=model,
                    heldout=heldout,
                    seed=seed,
                    mc_samples=mc_samples,
                    selection=selection,
                    beta=beta,
                    client=cl,
                    store=store,
                )
                histories[name].append(list(loop.run(iterations)))
                last = loop.history[-1] if loop.history else None
                log.info(
                    "%s seed %d: %d labels, accuracy %s",
                    name,
                    seed,
                    last.n_labelled if last else 0,
                    f"{last.accuracy:.3f}" if last and last.accuracy is not None else "n/a",
                )
    return ExperimentResult(
        histories,
        list(seeds),
        pool.url,
        batch_size,
        seed_size if seed_size is not None else batch_size,
        time.perf_counter() - start,
        {"strategies": names, "iterations": iterations, "selection": selection, "beta": beta},
    )


def _metric_or_nan(record: IterationRecord, metric: str) -> float:
    value = getattr(record, metric)
    return np.nan if value is None else float(value)


def learning_curves(result: ExperimentResult, metric: str = "accuracy") -> dict[str, Any]:
    """Mean and std over seeds of ``metric`` against the number of labels, per strategy.

    Seeds are aligned by iteration (the label counts agree unless the oracle skipped);
    ``n_labelled`` is their mean. Iterations missing in some seeds are left out.
    """
    curves = {}
    for name, runs in result.histories.items():
        runs = [r for r in runs if r]
        if not runs:
            continue
        length = min(len(r) for r in runs)
        # None (not evaluated) becomes NaN; an accuracy of 0.0 is a real value and stays
        values = np.array(
            [[_metric_or_nan(rec, metric) for rec in r[:length]] for r in runs], dtype=float
        )
        labels = np.array([[rec.n_labelled for rec in r[:length]] for r in runs], dtype=float)
        curves[name] = {
            "n_labelled": labels.mean(axis=0).round(1).tolist(),
            "mean": np.nanmean(values, axis=0).round(4).tolist(),
            "std": np.nanstd(values, axis=0).round(4).tolist(),
            "n_seeds": len(runs),
        }
    return curves


def labels_to_reach(
    n_labelled: Sequence[float], values: Sequence[float], target: float
) -> float | None:
    """Labels at which a learning curve first reaches ``target`` (linear interpolation).

    Returns None when it never does.
    """
    n = np.asarray(n_labelled, dtype=float)
    v = np.asarray(values, dtype=float)
    for i in range(len(v)):
        if v[i] >= target:
            if i == 0 or not np.isfinite(v[i - 1]):
                return float(n[i])
            # between the previous point (below target) and this one
            frac = (target - v[i - 1]) / (v[i] - v[i - 1])
            return float(n[i - 1] + frac * (n[i] - n[i - 1]))
    return None


def label_efficiency(
    result: ExperimentResult, metric: str = "accuracy", baseline: str = "random"
) -> dict[str, Any]:
    """Labels each strategy needs to reach the baseline's final mean ``metric``.

    The target is the baseline's mean (over seeds) at its last iteration. For every strategy
    the result has ``labels`` (first crossing of its mean curve, interpolated; None if never),
    ``ratio`` = labels / the baseline's labels at its last iteration (the headline number:
    below 1 means fewer labels than random), and ``ratio_vs_first_crossing`` = labels / the
    labels at which the baseline's own mean curve first reaches the target (stricter when the
    baseline's curve is noisy and touches the target early).
    """
    curves = learning_curves(result, metric)
    if baseline not in curves:
        raise ValueError(f"label_efficiency: no {baseline!r} runs in this experiment")
    base = curves[baseline]
    target = base["mean"][-1]
    base_labels = base["n_labelled"][-1]
    base_first = labels_to_reach(base["n_labelled"], base["mean"], target)
    out: dict[str, Any] = {
        "metric": metric,
        "target": target,
        "baseline": baseline,
        "baseline_labels": base_labels,
        "baseline_first_crossing": base_first,
        "strategies": {},
    }
    for name, curve in curves.items():
        if name == baseline:
            continue
        needed = labels_to_reach(curve["n_labelled"], curve["mean"], target)
        out["strategies"][name] = {
            "labels": None if needed is None else round(needed, 1),
            "ratio": None if needed is None else round(needed / base_labels, 3),
            "ratio_vs_first_crossing": (
                None if needed is None or not base_first else round(needed / base_first, 3)
            ),
            "final_mean": curve["mean"][-1],
        }
    return out


def plot_learning_curves(
    result: ExperimentResult, metric: str = "accuracy", *, ax: Any = None
) -> Any:
    """Learning curves (mean ± std over seeds) of every strategy; returns the Figure."""
    from matplotlib.figure import Figure

    if ax is None:
        fig = Figure(figsize=(6.5, 4.2), layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    for name, curve in learning_curves(result, metric).items():
        n = np.asarray(curve["n_labelled"])
        mean, std = np.asarray(curve["mean"]), np.asarray(curve["std"])
        style = "--" if name == "random" else "-"
        (line,) = ax.plot(
            n, mean, style, marker="o", ms=3, label=f"{name} ({curve['n_seeds']} seeds)"
        )
        ax.fill_between(n, mean - std, mean + std, color=line.get_color(), alpha=0.2)
    if "random" in result.histories:
        eff = label_efficiency(result, metric)
        ax.axhline(eff["target"], color="grey", lw=0.8, ls=":", label="random's final")
    ax.set_xlabel("labelled spectra")
    ax.set_ylabel(f"held-out {metric.replace('_', ' ')}")
    ax.set_title(f"Active learning vs random (batch {result.batch_size})")
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    return fig
