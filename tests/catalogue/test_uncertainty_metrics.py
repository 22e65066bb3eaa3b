"""Known-answer tests for the photo-z metrics: sigma_MAD, coverage, PIT, CRPS, quantiles.

Every expected value is worked out by hand in the comment beside it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from astrokit.metrics import (
    MetricsError,
    crps_gaussian_mixture,
    gaussian_mixture_cdf,
    interval_coverage,
    photoz_metrics,
    pit_histogram,
    uncertainty_metrics,
)


def test_sigma_mad_bias_and_outliers_by_hand():
    # z_true = 1 everywhere, so delta_z = (z_pred - 1) / 2 = [0, .04, -.04, .1, -.1, .3]
    z_pred = np.array([1.0, 1.08, 0.92, 1.2, 0.8, 1.6])
    m = photoz_metrics(z_pred, np.ones(6))
    # median(dz) = (0 + .04) / 2 = .02; |dz - .02| = [.02, .02, .06, .08, .12, .28],
    # whose median is (.06 + .08) / 2 = .07 -> sigma_MAD = 1.4826 * .07
    assert m["delta_z_median"] == pytest.approx(0.02)
    assert m["sigma_mad"] == pytest.approx(1.4826 * 0.07)
    assert m["bias"] == pytest.approx(0.3 / 6)  # mean of dz
    assert m["outlier_fraction"] == pytest.approx(3 / 6)  # .1, -.1, .3 exceed 0.05


def test_coverage_counts_closed_interval_and_skips_nan():
    lo = np.array([0.0, 0.0, 0.0, 0.0, np.nan])
    hi = np.array([1.0, 1.0, 1.0, 1.0, 1.0])
    zt = np.array([0.5, 1.0, 1.5, -0.1, 0.5])  # inside, on the edge, above, below, (nan lo)
    assert interval_coverage(lo, hi, zt) == pytest.approx(2 / 4)
    with pytest.raises(MetricsError, match="z_lo has 5 values but z_hi has 2"):
        interval_coverage(lo, hi[:2], zt)


def test_pit_histogram_of_a_uniform_grid():
    pit = (np.arange(10) + 0.5) / 10  # one value in the middle of each of 10 bins
    h = pit_histogram(pit, bins=10)
    assert h["counts"] == [1] * 10
    assert h["density"] == pytest.approx([1.0] * 10)
    # KS: empirical CDF jumps by 1/10 at (i + .5)/10; the largest gap is half a step
    assert h["ks"] == pytest.approx(0.05)
    assert h["outside_0.01_0.99"] == 0.0
    skewed = pit_histogram([0.005, 0.5, 0.995, 0.5], bins=2)
    assert skewed["counts"] == [1, 3]  # 0.5 falls in the upper half-open bin [0.5, 1]
    assert skewed["outside_0.01_0.99"] == pytest.approx(0.5)
    with pytest.raises(MetricsError, match="PIT values must be in"):
        pit_histogram([0.2, 1.5])


def test_mixture_cdf_by_hand():
    w = np.array([[0.5, 0.5], [1.0, 0.0]])
    mu = np.array([[-1.0, 1.0], [0.0, 5.0]])
    sd = np.ones((2, 2))
    # symmetric mixture at its centre: 0.5; N(0, 1) at 1: Phi(1) = 0.841345
    cdf = gaussian_mixture_cdf(w, mu, sd, np.array([0.0, 1.0]))
    assert cdf == pytest.approx([0.5, 0.8413447460685429])


def test_mixture_cdf_of_float32_weights_stays_a_probability():
    """A softmax in float32 sums to 1 only within ~1e-7; far in the upper tail that put the
    CDF (the PIT of a true redshift) just above 1, and the PIT histogram refused it."""
    logits = np.array([[0.3, -1.2, 2.5, 0.0, 1.1]], dtype=np.float32)
    w32 = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    w = (
        np.repeat(w32, 2000, axis=0)
        * (1 + np.linspace(-2e-7, 2e-7, 2000, dtype=np.float32))[:, None]
    )
    assert (w.astype(np.float64).sum(axis=1) > 1.0).any()  # the control: the sums exceed 1
    mu = np.zeros_like(w)
    sd = np.full_like(w, 0.05)
    cdf = gaussian_mixture_cdf(w, mu, sd, np.full(len(w), 3.0))
    assert cdf.max() <= 1.0 and cdf.min() >= 0.0
    assert cdf == pytest.approx(1.0)
    pit_histogram(cdf)  # accepted


def test_crps_known_answers():
    # N(0, 1) at its mean: 2 phi(0) - 1/sqrt(pi) = (sqrt 2 - 1) / sqrt(pi) = 0.233695
    c = crps_gaussian_mixture([[1.0]], [[0.0]], [[1.0]], [0.0])
    assert c[0] == pytest.approx((math.sqrt(2) - 1) / math.sqrt(math.pi))
    # scale: N(0, s) at 0 is s times that
    c = crps_gaussian_mixture([[1.0]], [[0.0]], [[0.02]], [0.0])
    assert c[0] == pytest.approx(0.02 * (math.sqrt(2) - 1) / math.sqrt(math.pi))
    # a (nearly) point prediction scores |z_pred - z_true|
    c = crps_gaussian_mixture([[1.0]], [[0.3]], [[1e-9]], [0.1])
    assert c[0] == pytest.approx(0.2, abs=1e-8)
    # two equal spikes at -1 and +1, truth 0: E|X - y| = 1, E|X - X'| = 1/2 * 2 = 1,
    # so CRPS = 1 - 1/2 = 0.5
    c = crps_gaussian_mixture([[0.5, 0.5]], [[-1.0, 1.0]], [[1e-9, 1e-9]], [0.0])
    assert c[0] == pytest.approx(0.5, abs=1e-8)
    # unknown truth -> NaN, not a number that could be averaged in
    assert np.isnan(crps_gaussian_mixture([[1.0]], [[0.0]], [[1.0]], [np.nan])[0])


def test_crps_matches_numerical_integral():
    # CRPS = integral (F(x) - 1[x >= y])^2 dx, on a fine grid
    w, mu, sd, y = np.array([[0.3, 0.7]]), np.array([[0.2, 0.5]]), np.array([[0.05, 0.1]]), 0.42
    x = np.linspace(-1.0, 2.0, 300_001)
    f = gaussian_mixture_cdf(w.repeat(1, 0), mu, sd, x[None, :])[0]
    numeric = np.trapezoid((f - (x >= y)) ** 2, x)
    assert crps_gaussian_mixture(w, mu, sd, [y])[0] == pytest.approx(numeric, rel=1e-4)


def test_mixture_quantiles_of_a_gaussian():
    from astrokit.models.photometry import summarise_mixture

    # N(0.3, 0.1): median 0.3, central 68.27 % interval [0.2, 0.4]; z_true 0.4 -> PIT Phi(1)
    s = summarise_mixture(np.array([[1.0]]), np.array([[0.3]]), np.array([[0.1]]), np.array([0.4]))
    assert s["z_pred"][0] == pytest.approx(0.3, abs=1e-9)
    assert s["z_lo"][0] == pytest.approx(0.2, abs=1e-9)
    assert s["z_hi"][0] == pytest.approx(0.4, abs=1e-9)
    assert s["pit"][0] == pytest.approx(0.8413447460685429)


def test_calibrated_gaussians_cover_68_percent_and_have_flat_pit():
    rng = np.random.default_rng(0)
    n = 20_000
    mu, sd = rng.uniform(0.1, 0.6, n), rng.uniform(0.01, 0.05, n)
    z_true = mu + sd * rng.normal(size=n)  # drawn from the predicted distributions
    from astrokit.models.photometry import summarise_mixture

    s = summarise_mixture(np.ones((n, 1)), mu[:, None], sd[:, None], z_true)
    u = uncertainty_metrics(s["z_lo"], s["z_hi"], z_true, pit=s["pit"], crps=s["crps"])
    assert u["coverage_68"] == pytest.approx(0.6827, abs=0.01)
    assert max(abs(d - 1) for d in u["pit"]["density"]) < 0.08
    assert u["pit"]["ks"] < 0.015
    # over-confident (sigma halved): coverage falls well below 0.68, PIT becomes U-shaped
    s2 = summarise_mixture(np.ones((n, 1)), mu[:, None], sd[:, None] / 2, z_true)
    u2 = uncertainty_metrics(s2["z_lo"], s2["z_hi"], z_true, pit=s2["pit"])
    assert u2["coverage_68"] < 0.45
    assert u2["pit"]["density"][0] > 1.5 and u2["pit"]["density"][-1] > 1.5
