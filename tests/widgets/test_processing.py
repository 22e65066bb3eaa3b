"""The spectrum viewer's array operations, checked against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
from astrokit_widgets.processing import (
    build_trace,
    from_display_wavelength,
    sigma_from_ivar,
    smooth,
    smoothing_kernel,
    to_display_wavelength,
)

from astrokit.lines import SPECTRAL_LINES, lines_in_range

HALPHA = "H\N{GREEK SMALL LETTER ALPHA}"


def test_sigma_from_ivar_marks_unknown_as_nan():
    sigma = sigma_from_ivar(np.array([4.0, 0.0, -1.0, np.inf, np.nan, 0.25]))
    np.testing.assert_array_equal(np.isnan(sigma), [False, True, True, True, True, False])
    assert sigma[0] == 0.5
    assert sigma[5] == 2.0


def test_box_kernel_is_odd_and_normalised():
    np.testing.assert_allclose(smoothing_kernel("box", 3), [1 / 3] * 3)
    assert smoothing_kernel("box", 4).size == 5  # even widths round up: no half-pixel shift
    g = smoothing_kernel("gaussian", 2.0)
    assert g.size == 17 and abs(g.sum() - 1) < 1e-12 and g.argmax() == 8
    with pytest.raises(ValueError, match="positive"):
        smoothing_kernel("box", 0)
    with pytest.raises(ValueError, match="'none', 'box' or 'gaussian'"):
        smoothing_kernel("median", 3)


def test_box_smoothing_values_and_error_propagation():
    flux = np.array([0.0, 3.0, 6.0, 9.0, 12.0])
    sigma = np.full(5, 3.0)
    bad = np.zeros(5, bool)
    out, err = smooth(flux, sigma, bad, "box", 3)
    # interior: plain 3-point means; edges: renormalised over the 2 pixels that exist
    np.testing.assert_allclose(out, [1.5, 3.0, 6.0, 9.0, 10.5])
    # averaging 3 independent pixels of sigma 3 gives 3/sqrt(3); 2 pixels: 3/sqrt(2)
    np.testing.assert_allclose(
        err, [3 / np.sqrt(2), np.sqrt(3), np.sqrt(3), np.sqrt(3), 3 / np.sqrt(2)]
    )


def test_masked_pixels_do_not_bleed_into_neighbours():
    flux = np.array([1.0, 1.0, 1000.0, 1.0, 1.0])
    bad = np.array([False, False, True, False, False])
    out, _ = smooth(flux, np.ones(5), bad, "box", 3)
    np.testing.assert_allclose(out, 1.0)  # the cosmic ray is ignored, its pixel filled
    all_bad, _ = smooth(flux, np.ones(5), np.ones(5, bool), "gaussian", 1.0)
    assert np.isnan(all_bad).all()


def test_display_wavelength_units_and_rest_frame_round_trip():
    aa = np.array([6564.61, 8000.0])
    np.testing.assert_allclose(
        to_display_wavelength(aa, unit="nm", frame="observed", z=0.5), aa / 10
    )
    rest = to_display_wavelength(aa, unit="µm", frame="rest", z=1.0)
    np.testing.assert_allclose(rest, aa / 2 / 1e4)
    back = from_display_wavelength(rest, unit="µm", frame="rest", z=1.0)
    np.testing.assert_allclose(back, aa)
    with pytest.raises(ValueError, match="unit must be one of"):
        to_display_wavelength(aa, unit="furlong", frame="observed", z=0)
    with pytest.raises(ValueError, match="redshift must be > -1"):
        to_display_wavelength(aa, unit="Å", frame="rest", z=-1.0)


def test_build_trace_hides_masked_pixels_and_crops_in_observed_angstrom():
    wave = np.linspace(4000, 5000, 11)
    flux = np.arange(11.0)
    mask = np.zeros(11, bool)
    mask[3] = True
    shown = build_trace(wave, flux, np.ones(11), mask, show_masked=True)
    hidden = build_trace(wave, flux, np.ones(11), mask, show_masked=False)
    assert shown.y[3] == 3.0 and np.isnan(hidden.y[3])
    cropped = build_trace(
        wave, flux, np.ones(11), mask, crop_aa=(4200, 4600), unit="nm", frame="rest", z=1.0
    )
    np.testing.assert_allclose(cropped.x, wave[2:7] / 2 / 10)
    np.testing.assert_array_equal(cropped.y, flux[2:7])


def test_lines_in_range_moves_with_redshift_only_in_observed_frame():
    halpha = next(line for line in SPECTRAL_LINES if line.name == HALPHA)
    at_0 = dict((line.name, x) for line, x in lines_in_range(6000, 7000, 0.0))
    assert at_0[HALPHA] == pytest.approx(halpha.rest_wavelength)
    at_01 = {line.name: x for line, x in lines_in_range(7000, 7300, 0.1)}
    assert at_01[HALPHA] == pytest.approx(halpha.rest_wavelength * 1.1)
    rest = {line.name: x for line, x in lines_in_range(6000, 7000, 0.1, frame="rest")}
    assert rest[HALPHA] == pytest.approx(halpha.rest_wavelength)
