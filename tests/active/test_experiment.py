"""Learning curves and label efficiency from hand-made iteration logs (known answers)."""

from __future__ import annotations

import math

import pytest

from astrokit.active.experiment import ExperimentResult, label_efficiency, learning_curves
from astrokit.active.loop import IterationRecord


def _history(accuracies, step=10):
    return [
        IterationRecord(
            iteration=i,
            strategy="seed" if i == 0 else "x",
            n_labelled=step * (i + 1),
            n_queried=step,
            n_skipped=0,
            accuracy=a,
            f1_macro=a,
            batch_classes={},
            labelled_classes={},
        )
        for i, a in enumerate(accuracies)
    ]


# the lone None makes a column with no value: numpy warns on its nanmean/nanstd, as expected
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_an_accuracy_of_zero_is_kept_and_none_is_missing():
    result = ExperimentResult(
        {"entropy": [_history([0.0, 0.5, 1.0])], "random": [_history([0.0, None, 0.5])]},
        seeds=[0],
        pool_url="file:///pool",
        batch_size=10,
        seed_size=10,
    )
    curves = learning_curves(result)
    # 0.0 is a measured accuracy (every held-out spectrum wrong), not "no value"
    assert curves["entropy"]["mean"] == [0.0, 0.5, 1.0]
    assert curves["random"]["mean"][0] == 0.0
    assert math.isnan(curves["random"]["mean"][1])  # None: not evaluated
    eff = label_efficiency(result)
    assert eff["target"] == 0.5
    assert eff["strategies"]["entropy"]["labels"] == pytest.approx(20.0)
    assert eff["strategies"]["entropy"]["ratio"] == pytest.approx(20.0 / 30.0, abs=1e-3)


def test_zero_accuracy_seeds_pull_the_mean_down():
    result = ExperimentResult(
        {"random": [_history([0.0, 0.0]), _history([0.4, 0.6])]},
        seeds=[0, 1],
        pool_url="file:///pool",
        batch_size=10,
        seed_size=10,
    )
    # with `x or nan` the zeros became NaN and nanmean reported 0.4 and 0.6
    assert learning_curves(result)["random"]["mean"] == [0.2, 0.3]
