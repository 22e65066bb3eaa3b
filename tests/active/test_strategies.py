"""Query strategies on inputs whose answers are known in closed form."""

from __future__ import annotations

import math

import numpy as np
import pytest

from astrokit.active.strategies import (
    UnknownStrategyError,
    bald,
    entropy,
    get_strategy,
    least_confidence,
    margin,
    power_keys,
    random_indices,
    top_k,
    top_k_order,
)


def test_entropy_uniform_is_log_c_and_one_hot_is_zero():
    probs = np.array([[0.25, 0.25, 0.25, 0.25], [1.0, 0.0, 0.0, 0.0], [0.5, 0.5, 0.0, 0.0]])
    np.testing.assert_allclose(entropy(probs), [math.log(4), 0.0, math.log(2)], atol=1e-9)


def test_margin_and_least_confidence_known_values():
    probs = np.array([[0.7, 0.2, 0.1], [0.4, 0.35, 0.25], [1.0, 0.0, 0.0]])
    np.testing.assert_allclose(margin(probs), [0.5, 0.95, 0.0])
    np.testing.assert_allclose(least_confidence(probs), [0.3, 0.6, 0.0])


def test_uncertainty_strategies_rank_the_ambiguous_item_first():
    probs = np.array([[0.98, 0.01, 0.01], [0.34, 0.33, 0.33], [0.6, 0.3, 0.1]])
    for score in (entropy, margin, least_confidence):
        assert list(np.argsort(-score(probs))) == [1, 2, 0], score.__name__


def test_bald_is_zero_when_samples_agree_and_log2_for_confident_disagreement():
    agree = np.repeat(np.array([[[0.5, 0.5], [0.9, 0.1]]]), 8, axis=0)
    np.testing.assert_allclose(bald(agree), [0.0, 0.0], atol=1e-9)
    # half the passes say class 0 with certainty, half class 1: I = H[mean] - mean H = log 2
    split = np.array([[[1.0, 0.0]]] * 4 + [[[0.0, 1.0]]] * 4)
    np.testing.assert_allclose(bald(split), [math.log(2)], atol=1e-9)


def test_bald_separates_model_uncertainty_from_noise():
    # both items have the same mean prediction (0.5, 0.5), hence the same entropy,
    # but only the second comes from disagreeing passes: BALD ranks it first
    noisy = np.full((6, 1, 2), 0.5)
    disagreeing = np.array([[[0.9, 0.1]], [[0.1, 0.9]]] * 3)
    samples = np.concatenate([noisy, disagreeing], axis=1)
    scores = bald(samples)
    assert scores[1] > 0.3 and scores[0] == pytest.approx(0.0, abs=1e-9)
    np.testing.assert_allclose(entropy(samples.mean(axis=0)), [math.log(2)] * 2)


def test_shape_errors_name_the_expected_shape():
    with pytest.raises(ValueError, match="n_samples, n_items, n_classes"):
        bald(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="n_items, n_classes"):
        entropy(np.zeros(3))


def test_get_strategy_names_and_errors():
    assert get_strategy("least-confidence").name == "least_confidence"
    assert get_strategy("BALD").needs_samples
    assert not get_strategy("random").needs_model
    with pytest.raises(UnknownStrategyError, match="entropy, margin"):
        get_strategy("coreset")


def test_top_k_breaks_ties_by_index_and_ranks_nan_last():
    scores = np.array([0.5, 0.9, 0.5, np.nan, 0.9])
    idx = np.array([40, 30, 20, 10, 50])
    best_scores, best = top_k(scores, idx, 4)
    assert best.tolist() == [30, 50, 20, 40]
    np.testing.assert_allclose(best_scores, [0.9, 0.9, 0.5, 0.5])
    # merging per-partition winners gives the global winners
    parts = [top_k(scores[:2], idx[:2], 2), top_k(scores[2:], idx[2:], 2)]
    merged = top_k(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), 2)
    assert merged[1].tolist() == [30, 50]


@pytest.mark.parametrize("n_total", [50, 1_000_000])
def test_random_indices_are_distinct_and_avoid_excluded(n_total):
    rng = np.random.default_rng(3)
    excluded = set(range(0, n_total, 2))
    chosen = random_indices(rng, n_total, 20, excluded)
    assert len(chosen) == len(set(chosen.tolist())) == 20
    assert not excluded.intersection(chosen.tolist())
    assert chosen.min() >= 0 and chosen.max() < n_total


def test_random_indices_when_the_pool_runs_out():
    rng = np.random.default_rng(0)
    chosen = random_indices(rng, 10, 8, {0, 1, 2, 3, 4})
    assert sorted(chosen.tolist()) == [5, 6, 7, 8, 9]
    assert random_indices(rng, 3, 5, {0, 1, 2}).size == 0


def test_power_draw_frequencies_follow_score_to_the_beta():
    # item i is drawn first (k = 1) with probability score_i**beta / sum(score**beta)
    scores = np.array([4.0, 2.0, 1.0, 1.0, 0.0])
    rng = np.random.default_rng(7)
    for beta in (1.0, 2.0):
        firsts = np.bincount(
            [np.argmax(power_keys(scores, beta, rng.gumbel(size=5))) for _ in range(20_000)],
            minlength=5,
        )
        expected = scores**beta / np.sum(scores**beta)
        np.testing.assert_allclose(firsts / 20_000, expected, atol=0.015)
        assert firsts[4] == 0  # a zero score is never drawn while positive ones remain


def test_power_keys_order_zero_and_nan_last_and_large_beta_is_top_k():
    scores = np.array([0.3, np.nan, 0.9, 0.0, 0.5])
    noise = np.random.default_rng(0).gumbel(size=5)
    keys = power_keys(scores, 1.0, noise)
    assert np.isneginf(keys[[1, 3]]).all() and np.isfinite(keys[[0, 2, 4]]).all()
    # as beta grows the draw becomes the deterministic top-k
    order = top_k_order(power_keys(scores, 1e4, noise), np.arange(5), 3)
    assert order.tolist() == [2, 4, 0]
    with pytest.raises(ValueError, match=r"scores \(5,\) and noise \(4,\) differ"):
        power_keys(scores, 1.0, noise[:4])


def test_top_k_order_carries_other_arrays():
    scores = np.array([0.1, 0.7, 0.7, 0.2])
    indices = np.array([10, 30, 20, 40])
    order = top_k_order(scores, indices, 2)
    assert indices[order].tolist() == [20, 30]  # tie broken by the smaller index
    assert top_k(scores, indices, 2)[1].tolist() == [20, 30]
