"""Synthetic survey generators and writer."""

from __future__ import annotations

import numpy as np
import pytest

from astrokit.lines import find_line
from astrokit.survey import SPECTRAL_CLASSES, make_survey, synth_galaxies, synth_spectra


def test_galaxies_shapes_determinism_and_ranges():
    a = synth_galaxies(300, seed=5)
    b = synth_galaxies(300, seed=5)
    c = synth_galaxies(300, seed=6)
    assert a["images"].shape == (300, 5, 32, 32) and a["images"].dtype == np.float32
    assert a["mags"].shape == (300, 5) and a["mags"].dtype == np.float32
    assert a["z"].dtype == np.float32 and a["ids"].shape == (300,)
    np.testing.assert_array_equal(a["images"], b["images"])
    assert not np.array_equal(a["z"], c["z"])
    assert np.isfinite(a["images"]).all()
    assert a["z"].min() > 0 and a["z"].max() < 0.66
    assert a["mags_true"][:, 2].min() > 16 and a["mags_true"][:, 2].max() < 22
    assert 0.03 < np.mean(a["hard"] > 0) < 0.2
    assert len(set(a["ids"])) == 300


def test_galaxy_properties_depend_on_redshift():
    g = synth_galaxies(3000, seed=1)
    z = g["z"]
    near, far = z < np.quantile(z, 0.25), z > np.quantile(z, 0.75)
    # distant galaxies are fainter, smaller and redder in g-r (4000 A break moves into r)
    assert g["mags"][far, 2].mean() > g["mags"][near, 2].mean() + 0.5
    assert np.median(g["size_arcsec"][far]) < 0.7 * np.median(g["size_arcsec"][near])
    gr = g["mags_true"][:, 1] - g["mags_true"][:, 2]
    red = g["type"] < 0.3
    assert gr[far & red].mean() > gr[near & red].mean() + 0.2
    # the flux in the images matches the magnitudes (same photometric zero point)
    total_r = g["images"][:, 2].sum((1, 2))
    bright = g["mags_true"][:, 2] < 19
    pred = 10 ** (-0.4 * (g["mags_true"][bright, 2] - 22.5))
    assert np.median(total_r[bright] / pred) == pytest.approx(1.0, abs=0.1)


def test_colour_redshift_relation_is_learnable_not_trivial():
    g = synth_galaxies(6000, seed=2)
    m = g["mags"].astype(np.float64)
    x = np.c_[m[:, :-1] - m[:, 1:], m[:, 2], np.ones(len(m))]
    # even a linear fit on colours beats the constant predictor clearly, but is far from exact
    coef, *_ = np.linalg.lstsq(x[:5000], g["z"][:5000], rcond=None)
    pred = x[5000:] @ coef
    resid = np.std(pred - g["z"][5000:])
    assert resid < 0.75 * np.std(g["z"][5000:])
    assert resid > 0.01


def test_spectra_classes_noise_masks():
    s = synth_spectra(1000, seed=3)
    assert s["wave"].shape == (3000,) and s["wave"].dtype == np.float64
    assert 3690 < s["wave"][0] < 3710 and 8990 < s["wave"][-1] < 9010
    assert s["flux"].shape == s["ivar"].shape == s["mask"].shape == (1000, 3000)
    assert s["flux"].dtype == s["ivar"].dtype == np.float32 and s["mask"].dtype == bool
    assert set(s["object_class"]) == set(SPECTRAL_CLASSES)
    frac = np.mean(s["object_class"] == "emission")
    assert 0.1 < frac < 0.2  # emission-line objects a minority
    assert (s["ivar"][s["mask"]] == 0).all() and s["mask"].any()
    assert 0.05 < s["hard"].mean() < 0.15
    assert np.isfinite(s["flux"]).all()
    # emission spectra have a bright line where H-alpha lands, at its vacuum wavelength (the
    # one the spectrum viewer marks): the brightest pixel is within a pixel (~2.2 A) of it
    k = int(np.flatnonzero((s["object_class"] == "emission") & ~s["hard"] & (s["z"] < 0.3))[0])
    ha = find_line("H\N{GREEK SMALL LETTER ALPHA}").rest_wavelength * (1 + s["z"][k])
    near = np.abs(s["wave"] - ha) < 10
    assert s["flux"][k, near].max() > 2 * np.median(s["flux"][k])
    assert abs(s["wave"][near][np.argmax(s["flux"][k, near])] - ha) < 2.5
    np.testing.assert_array_equal(s["flux"], synth_spectra(1000, seed=3)["flux"])
    custom = synth_spectra(4, seed=1, wave=np.linspace(4000, 8000, 500))
    assert custom["flux"].shape == (4, 500)


def test_make_survey_writes_files_and_catalogues(any_store):
    import pandas as pd

    from astrokit.formats import read_cutout, read_spectrum

    out = any_store.join("users/test/survey")
    summary = make_survey(out, galaxies=12, spectra=5, seed=4, store=any_store, per_band_every=5)
    assert summary.galaxies == 12 and summary.spectra == 5
    with any_store.open(summary.catalog_url) as fh:
        cat = pd.read_parquet(fh)
    with any_store.open(summary.spectra_catalog_url) as fh:
        scat = pd.read_parquet(fh)
    assert len(cat) == 12 and len(scat) == 5
    assert {"id", "file", "z", "mag_u", "mag_z"} <= set(cat.columns)
    assert {"id", "file", "z", "object_class"} <= set(scat.columns)
    for row in cat.itertuples():
        cut = read_cutout(f"{out}/{row.file}", store=any_store)
        assert cut.id == row.id and cut.image.shape == (5, 32, 32)
        assert cut.redshift == pytest.approx(row.z, rel=1e-6)
        assert cut.magnitudes[4] == pytest.approx(row.mag_z, rel=1e-6)
    spec = read_spectrum(f"{out}/{scat.file[0]}", store=any_store)
    assert spec.meta["redshift"] == pytest.approx(scat.z[0], rel=1e-6)
    assert spec.meta["object_class"] == scat.object_class[0]
    # same seed, same survey (files byte-identical)
    again = make_survey(
        any_store.join("users/test/survey2"), galaxies=12, spectra=5, seed=4, store=any_store
    )
    a = any_store.read_bytes(f"{out}/{cat.file[1]}")
    b = any_store.read_bytes(f"{again.url}/{cat.file[1]}")
    assert a == b


def test_fast_cube_encoder_is_valid_fits():
    import io
    import warnings

    from astropy.io import fits

    from astrokit.formats import read_cutout
    from astrokit.survey import cutout_fits_bytes

    g = synth_galaxies(5, seed=8)
    for i in range(5):
        data = cutout_fits_bytes(g["images"][i], g["mags"][i], g["z"][i], f"id'{i}")
        assert len(data) % 2880 == 0
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # any astropy complaint about the header fails
            with fits.open(io.BytesIO(data)) as h:
                h.verify("exception")
                assert h[0].header["OBJID"] == f"id'{i}"
        cut = read_cutout(data)
        np.testing.assert_array_equal(cut.image, g["images"][i])
        np.testing.assert_array_equal(cut.magnitudes, g["mags"][i])
        assert cut.redshift == float(g["z"][i])  # exact round trip through the header
    with pytest.raises(ValueError, match="ASCII"):
        cutout_fits_bytes(g["images"][0], g["mags"][0], 0.1, "é")
