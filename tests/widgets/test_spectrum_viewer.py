"""SpectrumViewer driven through its controls, on the real LAMOST LRS spectrum."""

from __future__ import annotations

import copy

import astropy.units as u
import numpy as np
import pytest
from astrokit_widgets import SpectrumViewer
from matplotlib.collections import PolyCollection

from astrokit.lines import SPECTRAL_LINES

HALPHA = "H\N{GREEK SMALL LETTER ALPHA}"
LYALPHA = "Ly\N{GREEK SMALL LETTER ALPHA}"
REST = {line.name: line.rest_wavelength for line in SPECTRAL_LINES}


def _main_line(viewer):
    """The Line2D carrying the spectrum (the first plotted line of the axes)."""
    return viewer.axes.lines[0]


def test_starts_at_catalogue_redshift_with_markers_there(lrs_spectrum):
    viewer = SpectrumViewer(lrs_spectrum)
    z_cat = lrs_spectrum.meta["redshift"]
    assert viewer.z == pytest.approx(z_cat)
    assert viewer._z_text.value == pytest.approx(z_cat)
    markers = dict(viewer.marker_positions)
    assert markers["Hβ"] == pytest.approx(REST["Hβ"] * (1 + z_cat))
    # only lines inside the LAMOST range (3700-9100 Å) are drawn
    assert LYALPHA not in markers
    assert all(3690 < x < 9110 for _, x in viewer.marker_positions)


def test_slider_moves_the_markers(lrs_spectrum):
    viewer = SpectrumViewer(lrs_spectrum)
    before = dict(viewer.marker_positions)["Hβ"]
    viewer._z_slider.value = 0.1  # what dragging the slider does
    assert viewer.z == pytest.approx(0.1)
    assert viewer._z_text.value == pytest.approx(0.1)
    after = dict(viewer.marker_positions)
    assert after["Hβ"] == pytest.approx(REST["Hβ"] * 1.1)
    assert after["Hβ"] != pytest.approx(before)
    # the artists on the axes moved too, not just the bookkeeping
    drawn = sorted(
        line.get_xdata()[0] for line in viewer.axes.lines if line.get_linestyle() == "--"
    )
    np.testing.assert_allclose(drawn, sorted(x for _, x in viewer.marker_positions))
    # H-alpha at z = 0.5 is outside the LAMOST range: its marker disappears
    viewer._z_text.value = 0.5
    assert HALPHA not in dict(viewer.marker_positions)
    viewer.show_lines = False
    assert viewer.marker_positions == []


def test_smoothing_changes_the_plotted_data(lrs_spectrum):
    viewer = SpectrumViewer(lrs_spectrum)
    (label,) = viewer.plotted
    raw = viewer.plotted[label].y.copy()
    np.testing.assert_array_equal(_main_line(viewer).get_ydata(), raw)
    viewer._smoothing.value = "box"
    viewer._width.value = 9
    boxed = viewer.plotted[label].y
    np.testing.assert_array_equal(_main_line(viewer).get_ydata(), boxed)
    assert not np.allclose(boxed, raw)
    # a 9-pixel box averages pixel noise away: the point-to-point scatter drops a lot
    assert np.nanstd(np.diff(boxed)) < 0.5 * np.nanstd(np.diff(raw))
    i = 2000
    np.testing.assert_allclose(boxed[i], raw[i - 4 : i + 5].mean())
    viewer.smoothing = "gaussian"
    assert not np.allclose(viewer.plotted[label].y, boxed)
    viewer.smoothing = "none"
    np.testing.assert_array_equal(viewer.plotted[label].y, raw)


def test_rest_frame_and_units(lrs_spectrum):
    viewer = SpectrumViewer(lrs_spectrum, z=0.2)
    (label,) = viewer.plotted
    observed_x = viewer.plotted[label].x.copy()
    viewer._frame.value = "rest"
    viewer._unit.value = "nm"
    np.testing.assert_allclose(viewer.plotted[label].x, observed_x / 1.2 / 10)
    assert dict(viewer.marker_positions)["Hβ"] == pytest.approx(REST["Hβ"] / 10)
    assert "nm" in viewer.axes.get_xlabel() and "rest" in viewer.axes.get_xlabel()
    # in the rest frame the redshift moves the data, not the markers
    viewer.z = 0.0
    np.testing.assert_allclose(viewer.plotted[label].x, observed_x / 10)
    assert dict(viewer.marker_positions)["Hβ"] == pytest.approx(REST["Hβ"] / 10)


def test_masked_pixels_shown_or_hidden_and_uncertainty_band(lrs_spectrum):
    spectrum = copy.deepcopy(lrs_spectrum)
    mask = np.zeros(spectrum.flux.shape, bool)
    mask[1000:1010] = True  # a flagged stretch, as a bad column would be
    spectrum.mask = mask
    viewer = SpectrumViewer(spectrum)
    (label,) = viewer.plotted
    assert np.isfinite(_main_line(viewer).get_ydata()[1000:1010]).all()
    assert len(viewer.axes.lines[1].get_xdata()) == 10  # the red dots on masked pixels
    viewer._masked.value = False
    assert np.isnan(_main_line(viewer).get_ydata()[1000:1010]).all()
    assert np.isfinite(_main_line(viewer).get_ydata()[990:1000]).all()
    bands = [c for c in viewer.axes.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 1
    viewer._unc.value = False
    assert not [c for c in viewer.axes.collections if isinstance(c, PolyCollection)]
    sigma = viewer.plotted[label].sigma
    ivar = lrs_spectrum.uncertainty.array
    good = (ivar > 0) & ~mask
    np.testing.assert_allclose(sigma[good], 1 / np.sqrt(ivar[good]))
    assert np.isnan(sigma[mask]).all()  # hidden pixels carry no error bar either


def test_crop_typed_in_display_units(lrs_spectrum):
    viewer = SpectrumViewer(lrs_spectrum)
    viewer.unit = "nm"
    viewer._crop_lo.value = 500.0
    viewer._crop_hi.value = 600.0
    assert viewer.crop == pytest.approx((5000.0, 6000.0))
    (label,) = viewer.plotted
    x = viewer.plotted[label].x
    assert x.min() >= 500 and x.max() <= 600 and x.size > 100
    spectrum = viewer.to_spectrum()
    assert spectrum.spectral_axis.unit == u.nm
    assert spectrum.flux.size == x.size
    viewer._crop_lo.value = 700.0  # above the upper bound: refused with a message
    assert "lower bound" in viewer.error and "lower bound" in viewer._error.value
    viewer._crop_reset.click()
    assert viewer.crop == (None, None)
    assert viewer.plotted[label].x.size == lrs_spectrum.flux.size


def test_header_and_metadata_view(lrs_spectrum):
    viewer = SpectrumViewer(lrs_spectrum)
    keys = [card[0] for card in viewer.header_view.cards]
    assert {"CLASS", "Z", "OBSID"} <= set(keys)
    viewer.header_view.filter_text = "subclass"
    assert [c[0] for c in viewer.header_view.cards] == ["SUBCLASS"]
    assert "STAR" in viewer._meta.value and "lamost-lrs" in viewer._meta.value


def test_exports(lrs_spectrum, tmp_path):
    from specutils import Spectrum

    viewer = SpectrumViewer(lrs_spectrum)
    viewer.smoothing = "box"
    png = viewer.export_png(tmp_path / "fig.png")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and (tmp_path / "fig.png").read_bytes() == png
    viewer._export_target.value = str(tmp_path / "out")
    viewer._export_box.children[2].click()  # "Save spectrum"
    assert viewer.error == "" and "out.fits" in viewer.status
    back = Spectrum.read(tmp_path / "out.fits", format="tabular-fits")
    np.testing.assert_allclose(back.flux.value, viewer.plotted[viewer.spectra[0].meta["id"]].y)
    # a failing export is a message in the widget, not a traceback
    blocker = tmp_path / "file"
    blocker.write_text("x")
    viewer._export_target.value = str(blocker / "sub" / "out")
    viewer._export_box.children[1].click()  # "Save PNG"
    assert viewer.error.startswith("Error (NotADirectoryError) while saving")
    assert "out.png" in viewer._error.value and "Traceback" not in viewer.error


def test_several_spectra_get_unique_labels_and_a_legend(lrs_spectrum):
    viewer = SpectrumViewer([lrs_spectrum, lrs_spectrum])
    assert len(viewer.plotted) == 2 and len(set(viewer.plotted)) == 2
    assert viewer.axes.get_legend() is not None
    viewer.clear()
    assert viewer.plotted == {} and viewer.marker_positions == []


def test_two_dimensional_spectrum_is_refused(lrs_spectrum):
    from specutils import Spectrum

    flat = Spectrum(flux=np.ones((2, 5)) * u.Jy, spectral_axis=np.arange(5) * u.AA + 4000 * u.AA)
    with pytest.raises(ValueError, match=r"1-D spectrum.*\(2, 5\)"):
        SpectrumViewer(flat)


def test_separate_arms_are_not_joined_across_the_gap(lamost_files):
    """LAMOST MRS: blue and red arms, read by astrokit.formats, drawn as two pieces."""
    viewer = SpectrumViewer(str(lamost_files["mrs"]))
    (trace,) = viewer.plotted.values()
    drawn_x = _main_line(viewer).get_xdata()
    breaks = np.flatnonzero(np.isnan(drawn_x))
    assert len(breaks) == 1  # one gap between the arms
    before, after = drawn_x[breaks[0] - 1], drawn_x[breaks[0] + 1]
    assert before < 5500 < 6200 < after  # B arm ends ~5400 Å, R arm starts ~6300 Å
    assert np.count_nonzero(~np.isnan(drawn_x)) == trace.x.size  # no pixel lost


def test_export_into_the_store_and_refusal_in_the_shared_area(lrs_spectrum, tmp_path):
    from specutils import Spectrum

    from astrokit.store import open_store

    store = open_store(f"file://{tmp_path}", user_url=f"file://{tmp_path}/users/alice")
    viewer = SpectrumViewer(lrs_spectrum, store=store)
    viewer._export_box.children[2].click()  # default target: the user's exports/ folder
    saved = tmp_path / "users" / "alice" / "exports" / f"{lrs_spectrum.meta['id']}.fits"
    assert viewer.error == "" and saved.exists(), viewer.error
    assert Spectrum.read(saved, format="tabular-fits").flux.size == lrs_spectrum.flux.size
    viewer._export_target.value = store.join("shared", "mine")
    viewer._export_box.children[1].click()
    assert viewer.error.startswith("Read-only area while saving"), viewer.error
    assert not (tmp_path / "shared" / "mine.png").exists()


def test_export_to_a_local_path_in_the_shared_area_is_refused(lrs_spectrum, tmp_path, monkeypatch):
    """A plain path is routed through the store too: shared/ cannot be reached by naming it so."""
    from astrokit.store import open_store

    store = open_store(f"file://{tmp_path}", user_url=f"file://{tmp_path}/users/alice")
    (tmp_path / "shared").mkdir()
    viewer = SpectrumViewer(lrs_spectrum, store=store)
    # Directly, and by climbing out of users/ with a ".." component.
    climbing = "/".join([str(tmp_path), "users", "..", "shared", "mine"])
    for target in (tmp_path / "shared" / "mine", climbing):
        viewer._export_target.value = str(target)
        viewer._export_box.children[1].click()  # "Save PNG"
        assert viewer.error.startswith("Read-only area while saving"), viewer.error
    assert list((tmp_path / "shared").iterdir()) == []
    # relative paths are the notebook's working directory, not the store root
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    viewer._export_target.value = "fig"
    viewer._export_box.children[1].click()
    assert viewer.error == "" and (tmp_path / "work" / "fig.png").read_bytes()[:4] == b"\x89PNG"
    assert [p.name for p in (tmp_path / "work").iterdir()] == ["fig.png"]  # no temporaries

    # without a store, the environment's shared area is refused the same way
    monkeypatch.setenv("ASTROKIT_STORE_URL", f"file://{tmp_path}")
    monkeypatch.setenv("ASTROKIT_SHARED_URL", f"file://{tmp_path}/shared")
    bare = SpectrumViewer(lrs_spectrum)
    with pytest.raises(PermissionError, match="read-only shared area"):
        bare.export_spectrum(tmp_path / "shared" / "spec.fits")
    monkeypatch.delenv("ASTROKIT_STORE_URL")  # the file:// fallback store reads it as well
    with pytest.raises(PermissionError, match="read-only shared area"):
        bare.export_png(tmp_path / "shared" / "fig.png")
    assert list((tmp_path / "shared").iterdir()) == []


@pytest.mark.s3
def test_export_with_an_s3_store(lrs_spectrum, tmp_path, make_bucket, s3_store_options):
    from astrokit.store import open_store

    bucket = make_bucket()
    store = open_store(bucket, storage_options=s3_store_options, user_url=f"{bucket}/users/bo")
    viewer = SpectrumViewer(lrs_spectrum, store=store)
    viewer._export_box.children[2].click()  # default: the user's exports/ prefix on S3
    saved = f"{bucket}/users/bo/exports/{lrs_spectrum.meta['id']}.fits"
    assert viewer.error == "" and store.read_bytes(saved)[:6] == b"SIMPLE", viewer.error
    viewer._export_target.value = store.join("shared", "x")
    viewer._export_box.children[1].click()
    assert viewer.error.startswith("Read-only area while saving"), viewer.error
    assert not store.exists(store.join("shared", "x.png"))
    # a plain path still means the notebook's local disk
    viewer.export_png(tmp_path / "local.png")
    assert (tmp_path / "local.png").read_bytes()[:4] == b"\x89PNG"


def test_desi_target_is_shown_as_the_whole_spectrum(tmp_path):
    """A DESI coadd is plotted over ~3600-9800 A (b, r and z combined), not the blue arm."""
    from helpers.desi import write_desi_coadd

    path = write_desi_coadd(
        tmp_path / "coadd-main-dark-77.fits",
        flux={"b": 1.0, "r": 2.0, "z": 3.0},
        ivar={"b": 1.0, "r": 1.0, "z": 1.0},
        redshifts=[0.3, 0.8],
    )
    viewer = SpectrumViewer(str(path))
    (trace,) = viewer.plotted.values()
    assert trace.x.min() == pytest.approx(3600, abs=1) and trace.x.max() == pytest.approx(9824)
    drawn_x = _main_line(viewer).get_xdata()
    assert not np.isnan(drawn_x).any()  # the arms overlap: one piece, no gap
    lo, hi = viewer.axes.get_xlim()
    assert lo < 3700 and hi > 9700
