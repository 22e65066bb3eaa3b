"""The input policy: few NaNs are filled and predicted, many NaNs or bad magnitudes reported."""

from __future__ import annotations

import numpy as np
import pytest

from astrokit.models.runtime import screen_inputs


def test_policy():
    rng = np.random.default_rng(0)
    images = rng.random((4, 5, 32, 32), dtype=np.float32)
    mags = np.full((4, 5), 21.0, dtype=np.float32)
    images[1, 2, :3, :10] = np.nan  # 30 of 5120 pixels: 0.6 %, tolerated
    images[2, :, :8, :] = np.inf  # 25 %: too many
    mags[3, 4] = np.nan
    s = screen_inputs(images, mags)
    assert s.status.tolist() == ["ok", "ok", "bad_pixels", "bad_mags"]
    assert s.nan_fraction[1] == pytest.approx(30 / 5120)
    assert np.isfinite(s.images[1]).all()
    # the fill is the band's own median, not zero
    assert s.images[1, 2, 0, 0] == pytest.approx(np.median(images[1, 2][np.isfinite(images[1, 2])]))
    # the caller's arrays are not modified
    assert np.isnan(images[1, 2, 0, 0])
    strict = screen_inputs(images, mags, max_nan_fraction=0.0)
    assert strict.status[1] == "bad_pixels"
    with pytest.raises(ValueError, match="max_nan_fraction must be in"):
        screen_inputs(images, mags, max_nan_fraction=2)
