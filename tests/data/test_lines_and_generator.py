"""The one line table (vacuum wavelengths) and the one synthetic-spectrum generator."""

from __future__ import annotations

import numpy as np
import pytest

from astrokit.lines import LineNotFoundError, air_to_vacuum, find_line
from astrokit.synthetic_spectra import SpectrumClass, feature, generate_spectra, line_profiles

HALPHA = "H\N{GREEK SMALL LETTER ALPHA}"


def test_table_is_vacuum_and_lookups_name_what_is_wrong():
    # the air wavelength the survey used to draw (6562.8) converts to the table's vacuum value
    assert air_to_vacuum(6562.8) == pytest.approx(find_line(HALPHA).rest_wavelength, abs=0.01)
    assert find_line("[O III]", near=5007).rest_wavelength == pytest.approx(5008.24)
    with pytest.raises(LineNotFoundError, match=r"names several lines .*pass near="):
        find_line("[O III]")
    with pytest.raises(LineNotFoundError, match=r"no spectral line named 'H-alpha'; known: "):
        find_line("H-alpha")
    with pytest.raises(LineNotFoundError, match="near 6000"):
        find_line("[N II]", near=6000)


def test_profiles_keep_a_narrow_lines_flux_and_sit_at_the_redshifted_line():
    wave = np.geomspace(6000.0, 8000.0, 400)  # ~ 216 km/s pixels
    z = np.array([0.0, 0.1])
    narrow = feature(HALPHA, 1.0, 30.0)  # far narrower than a pixel
    prof = line_profiles(wave, z, [narrow], np.ones((2, 1)))
    centre = find_line(HALPHA).rest_wavelength * (1 + z)
    sigma = centre * 30.0 / 299_792.458
    widths = np.gradient(wave)
    np.testing.assert_allclose((prof * widths).sum(1), np.sqrt(2 * np.pi) * sigma, rtol=0.02)
    assert np.abs(wave[prof.argmax(1)] - centre).max() < widths.max()


def test_generator_draws_the_recipes_classes_and_checks_its_arguments():
    flat = SpectrumClass("flat", (0.0, 0.1), lambda w, z, rng: np.ones((len(z), w.size)))
    lines = SpectrumClass("lines", (0.2, 0.3), flat.continuum, (feature(HALPHA, 2.0, 200.0),))
    wave = np.geomspace(4000.0, 9000.0, 1000)
    rng = np.random.default_rng(0)
    out = generate_spectra(
        500, rng, wave, [flat, lines], [0.5, 0.5],
        line_scale=np.ones(500), continuum_snr=np.full(500, 1e6),
    )  # fmt: skip
    is_line = out["class_index"] == 1
    assert 0.4 < is_line.mean() < 0.6
    assert np.all(out["z"][is_line] >= 0.2) and np.all(out["z"][~is_line] < 0.1)
    np.testing.assert_allclose(out["model"][~is_line], 1.0)
    assert np.all(out["model"][is_line].max(1) > 2.0)  # the line, on a unit continuum
    with pytest.raises(ValueError, match="one per class"):
        generate_spectra(
            5, rng, wave, [flat], [0.5, 0.5], line_scale=np.ones(5), continuum_snr=np.ones(5)
        )
