"""CutoutViewer: Lupton composite channel mapping, stretch control, catalogue table."""

from __future__ import annotations

import numpy as np
import pytest
from astrokit_widgets import CutoutViewer
from astrokit_widgets.cutout import as_cutout, lupton_rgb


def _blob(amplitudes, size=32, width=3.0, noise=0.02, seed=0):
    y, x = np.mgrid[:size, :size]
    profile = np.exp(-((x - size / 2) ** 2 + (y - size / 2) ** 2) / (2 * width**2))
    image = np.stack([a * profile for a in amplitudes]).astype(np.float32)
    return image + np.random.default_rng(seed).normal(0, noise, image.shape).astype(np.float32)


@pytest.mark.parametrize(
    ("band", "channel"),
    [(3, 0), (2, 1), (1, 2)],  # i -> red, r -> green, g -> blue
)
def test_composite_maps_i_r_g_to_red_green_blue(band, channel):
    amplitudes = [0.0] * 5
    amplitudes[band] = 10.0
    viewer = CutoutViewer(_blob(amplitudes))
    centre = viewer.rgb[14:18, 14:18].reshape(-1, 3).mean(axis=0)
    assert viewer.rgb.shape == (32, 32, 3) and viewer.rgb.dtype == np.uint8
    assert centre.argmax() == channel
    assert centre[channel] > 100  # the automatic stretch makes the core bright
    others = [c for c in range(3) if c != channel]
    assert centre[others].max() < 0.2 * centre[channel]


def test_stretch_slider_changes_the_composite():
    viewer = CutoutViewer(_blob([1, 3, 6, 8, 9]))
    auto = viewer.stretch
    before = viewer.rgb.astype(float).mean()
    viewer._stretch.value = auto * 10  # a larger linear range: a fainter picture
    assert viewer.stretch == pytest.approx(auto * 10)
    assert viewer.rgb.astype(float).mean() < 0.7 * before
    viewer._q.value = 1.0
    again, used = lupton_rgb(viewer.cutout, stretch=viewer.stretch, q=1.0)
    np.testing.assert_array_equal(viewer.rgb, again)
    assert used == pytest.approx(viewer.stretch)


def test_stretch_range_follows_the_image_units():
    viewer = CutoutViewer(_blob([1, 3, 6, 8, 9]) * 1e5)  # e.g. raw counts
    assert viewer._stretch.min < np.log10(viewer.stretch) < viewer._stretch.max
    assert viewer.stretch > 100  # not clamped to a slider range meant for other units


def test_catalogue_values_prediction_and_nan_pixels():
    image = _blob([1, 3, 6, 8, 9])
    image[2, :3, :3] = np.nan
    viewer = CutoutViewer(
        image, magnitudes=[22.1, 21.0, 20.2, 19.8, 19.5], redshift=0.25, id="gal-7", prediction=0.3
    )
    assert viewer.catalogue == {
        "id": "gal-7",
        "z": 0.25,
        "prediction": 0.3,
        "mag_u": pytest.approx(22.1),
        "mag_g": pytest.approx(21.0),
        "mag_r": pytest.approx(20.2),
        "mag_i": pytest.approx(19.8),
        "mag_z": pytest.approx(19.5),
    }
    table = viewer._table.value
    assert "gal-7" in table and "0.2500" in table and "0.3000" in table
    assert "+0.0400" in table  # (0.3 - 0.25) / 1.25
    assert "NaN pixels" in table and "<td>9</td>" in table
    assert np.isfinite(viewer.rgb).all()
    viewer.prediction = None
    assert "prediction" not in viewer._table.value


def test_bad_input_is_refused_with_the_shape():
    with pytest.raises(ValueError, match=r"\(5, H, W\), got \(3, 32, 32\)"):
        as_cutout(np.zeros((3, 32, 32)))
    with pytest.raises(ValueError, match="including g, r, i"):
        as_cutout(np.zeros((5, 8, 8)), bands=("u", "v", "b", "y", "z"))
    with pytest.raises(ValueError, match="5 magnitudes"):
        as_cutout(np.zeros((5, 8, 8)), magnitudes=[1, 2])


def test_export_png():
    viewer = CutoutViewer(_blob([1, 3, 6, 8, 9]))
    assert viewer.export_png()[:4] == b"\x89PNG"


def _panel_titles(viewer):
    return [ax.get_title() for ax in viewer.figure.axes]


def test_panels_composite_and_each_band():
    viewer = CutoutViewer(_blob([1, 3, 6, 8, 9]))
    assert len(viewer.figure.axes) == 6  # the RGB composite, then one panel per band
    assert _panel_titles(viewer) == ["i r g", "u", "g", "r", "i", "z"]
    assert viewer.figure.axes[0].images[0].get_array().shape == (32, 32, 3)
    for ax in viewer.figure.axes[1:]:
        assert ax.images[0].get_array().shape == (32, 32)


@pytest.mark.parametrize("per_band", [False, True], ids=["cube", "hdu-per-band"])
def test_nan_pixels_of_a_fits_file_are_reported(tmp_path, per_band):
    """read_cutout replaces NaNs by 0 and counts them; the viewer shows that count."""
    from astrokit.survey import cutout_fits_bytes

    image = _blob([1, 3, 6, 8, 9])
    image[1, :2, :3] = np.nan  # 6 in g
    image[4, 5, 5] = np.inf  # and one inf in z
    path = tmp_path / "gal-nan.fits"
    path.write_bytes(
        cutout_fits_bytes(image, np.array([22, 21, 20, 19.5, 19.2]), 0.31, "gal-nan",
                          per_band=per_band)
    )  # fmt: skip
    viewer = CutoutViewer(str(path))
    assert viewer.error == "" and viewer.cutout.nan_count == 7
    assert np.isfinite(viewer.cutout.image).all()  # the reader's policy: replaced, not passed on
    table = viewer._table.value
    assert "NaN pixels" in table and "<td>7</td>" in table
    assert "gal-nan" in table and "0.3100" in table
    assert len(viewer.figure.axes) == 6 and _panel_titles(viewer)[1:] == list("ugriz")
    # the same through load() (the browser's path) and after switching to a clean cutout
    clean = tmp_path / "gal-clean.fits"
    clean.write_bytes(cutout_fits_bytes(_blob([1, 3, 6, 8, 9]), np.full(5, 20.0), 0.2, "c"))
    viewer.load(str(clean))
    assert viewer.cutout.nan_count == 0 and "NaN pixels" not in viewer._table.value
    viewer.load(str(path))
    assert "<td>7</td>" in viewer._table.value
