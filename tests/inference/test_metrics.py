"""Photo-z metrics against values worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from astrokit.metrics import MetricsError, delta_z, photoz_metrics


def test_metrics_literal_values():
    z_true = np.array([0.0, 1.0, 0.5, 0.25])
    z_pred = np.array([0.01, 1.2, 0.5, 0.25])
    # delta_z = [0.01, 0.1, 0, 0]
    np.testing.assert_allclose(delta_z(z_pred, z_true), [0.01, 0.1, 0.0, 0.0])
    m = photoz_metrics(z_pred, z_true)
    assert m["n"] == 4
    assert m["bias"] == pytest.approx(0.11 / 4)
    assert m["outlier_fraction"] == pytest.approx(0.25)  # only 0.1 > 0.05
    assert m["mse"] == pytest.approx((0.01**2 + 0.2**2) / 4)
    assert m["mae"] == pytest.approx(0.21 / 4)
    # median dz = 0.005; |dz - med| = [0.005, 0.095, 0.005, 0.005] -> median 0.005
    assert m["delta_z_median"] == pytest.approx(0.005)
    assert m["sigma_mad"] == pytest.approx(1.4826 * 0.005)


def test_non_finite_rows_are_excluded_not_counted():
    m = photoz_metrics([0.1, np.nan, 0.3], [0.1, 0.2, np.inf])
    assert m["n"] == 1 and m["mae"] == 0.0


def test_metric_errors():
    with pytest.raises(MetricsError, match="3 values but z_true has 2"):
        photoz_metrics([1, 2, 3], [1, 2])
    with pytest.raises(MetricsError, match="no row has both"):
        photoz_metrics([np.nan], [0.1])
