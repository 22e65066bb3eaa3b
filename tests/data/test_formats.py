"""Readers on real LAMOST/SDSS/BOSS/DESI files and on broken inputs."""

from __future__ import annotations

import io
import shutil

import numpy as np
import pytest
from astropy import units as u
from astropy.io import fits
from astropy.nddata import InverseVariance

from astrokit.formats import (
    BandOrderError,
    CorruptFileError,
    CutoutShapeError,
    FormatError,
    UnknownFormatError,
    read_cutout,
    read_header,
    read_spectrum,
)
from astrokit.survey import cutout_fits_bytes, spectrum_fits_bytes, synth_galaxies, synth_spectra


def _check_spectrum(spec):
    assert spec.spectral_axis.unit == u.AA
    assert np.all(np.diff(spec.spectral_axis.value) > 0)
    assert spec.mask.dtype == bool and spec.mask.shape == spec.flux.shape
    assert np.isfinite(spec.flux.value).all()
    for key in ("redshift", "object_class", "format", "source", "header", "id"):
        assert key in spec.meta


def test_lamost_lrs_real(lamost_files):
    spec = read_spectrum(lamost_files["lrs"])
    _check_spectrum(spec)
    assert spec.meta["format"] == "lamost-lrs"
    assert spec.meta["redshift"] == pytest.approx(-0.00017162)
    assert spec.meta["object_class"] == "STAR"
    assert len(spec.flux) == 3909
    assert 3690 < spec.spectral_axis[0].value < 3710
    assert isinstance(spec.uncertainty, InverseVariance)
    # LRS row 1 is the inverse variance: the uncertainty equals it where unmasked
    with fits.open(lamost_files["lrs"]) as h:
        ivar = h[0].data[1]
    good = ~spec.mask
    np.testing.assert_allclose(spec.uncertainty.array[good], ivar[good], rtol=1e-6)


def test_lamost_mrs_real_bands(lamost_files):
    both = read_spectrum(lamost_files["mrs"])
    blue = read_spectrum(lamost_files["mrs"], band="B")
    red = read_spectrum(lamost_files["mrs"], band="R")
    _check_spectrum(both)
    assert both.meta["format"] == "lamost-mrs"
    assert len(both.flux) == len(blue.flux) + len(red.flux) == 4151 + 3726
    assert blue.spectral_axis.max() < red.spectral_axis.min()
    # MRS has HELIO_RV, not Z: redshift = rv / c
    assert both.meta["redshift"] == pytest.approx(-10.97296 / 299792.458)
    with pytest.raises(FormatError, match="COADD_X"):
        read_spectrum(lamost_files["mrs"], band="X")


def test_sdss_and_desi_real(real_spectra_dir):
    plate = real_spectra_dir / "spPlate-4055-55359-0020.fits"
    s1 = read_spectrum(plate)
    s20 = read_spectrum(plate, fiber=20)
    _check_spectrum(s20)
    assert s20.meta["format"] == "sdss-spplate" and s20.meta["fiber"] == 20
    assert s1.meta["redshift"] is None and s1.uncertainty is None  # flux-only file
    with fits.open(plate) as h:
        np.testing.assert_allclose(s20.flux.value, h[0].data[19], rtol=1e-6)
        c0, c1 = h[0].header["COEFF0"], h[0].header["COEFF1"]
    assert s20.spectral_axis[0].value == pytest.approx(10**c0)
    assert s20.spectral_axis[10].value == pytest.approx(10 ** (c0 + 10 * c1))
    with pytest.raises(FormatError, match=r"fiber=21 out of range: spPlate has fibers 1\.\.20"):
        read_spectrum(plate, fiber=21)

    one = read_spectrum(real_spectra_dir / "SDSSJ220248.31+123656.3.fits")
    _check_spectrum(one)
    assert one.meta["format"] == "sdss-1d" and isinstance(one.uncertainty, InverseVariance)

    desi = real_spectra_dir / "coadd-sv3-dark-26065.fits"
    d = read_spectrum(desi, band="z", index=4)
    _check_spectrum(d)
    assert d.meta["format"] == "desi-coadd" and d.meta["band"] == "z"
    with fits.open(desi) as h:
        np.testing.assert_allclose(d.flux.value, h["Z_FLUX"].data[4], rtol=1e-6)
        assert d.meta["id"] == str(h["FIBERMAP"].data["TARGETID"][4])
    with pytest.raises(FormatError, match="index=5 out of range"):
        read_spectrum(desi, index=5)


def test_sdss_spec_layout_from_real_plate(real_spectra_dir, tmp_path):
    """A spec-*.fits (COADD + SPECOBJ) built from a real BOSS fiber: redshift from SPECOBJ.Z."""
    with fits.open(real_spectra_dir / "spPlate-4055-55359-0020.fits") as h:
        flux = h[0].data[3].astype(np.float32)
        loglam = h[0].header["COEFF0"] + h[0].header["COEFF1"] * np.arange(flux.size)
    ivar = np.full_like(flux, 4.0)
    ivar[100:110] = 0
    and_mask = np.zeros(flux.size, np.int32)
    and_mask[200] = 1 << 23
    coadd = fits.BinTableHDU.from_columns(
        [
            fits.Column("flux", "E", array=flux),
            fits.Column("loglam", "E", array=loglam.astype(np.float32)),
            fits.Column("ivar", "E", array=ivar),
            fits.Column("and_mask", "J", array=and_mask),
        ],
        name="COADD",
    )
    specobj = fits.BinTableHDU.from_columns(
        [fits.Column("Z", "E", array=[0.4321]), fits.Column("CLASS", "6A", array=["GALAXY"])],
        name="SPECOBJ",
    )
    path = tmp_path / "spec-4055-55359-0004.fits"
    fits.HDUList([fits.PrimaryHDU(), coadd, specobj]).writeto(path)
    spec = read_spectrum(path)
    _check_spectrum(spec)
    assert spec.meta["format"] == "sdss-spec"
    assert spec.meta["redshift"] == pytest.approx(0.4321, rel=1e-6)
    assert spec.meta["object_class"] == "GALAXY"
    assert spec.mask[100:110].all() and spec.mask[200] and not spec.mask[300]


def _spy(monkeypatch, module: str, loader: str) -> list:
    """Count the calls of one of specutils' loaders (the readers import it when they run)."""
    import importlib

    mod = importlib.import_module(module)
    real = getattr(mod, loader)
    calls = []

    def spy(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(mod, loader, spy)
    return calls


def test_spplate_complete_through_specutils_loader(real_spectra_dir, tmp_path, monkeypatch):
    """A spPlate with the data model's extensions: specutils' spPlate loader reads the fiber;
    the fiber pick, catalogue redshift, masks and the COEFF0/COEFF1 axis are ours."""
    from helpers.sdss import write_spplate

    real = real_spectra_dir / "spPlate-4055-55359-0020.fits"
    calls = _spy(monkeypatch, "specutils.io.default_loaders.sdss", "spPlate_loader")
    layout = dict(
        bad_ivar={7: slice(100, 110)},
        andmask={7: [200]},
        ormask={7: [300]},
        redshifts={7: (0.4321, "GALAXY"), 9: (1.25, "QSO")},
    )
    path = write_spplate(tmp_path / "spPlate-4055-55359.fits", real, **layout)
    spec = read_spectrum(path, fiber=7)
    _check_spectrum(spec)
    assert len(calls) == 1
    assert spec.meta["format"] == "sdss-spplate" and spec.meta["fiber"] == 7
    assert spec.meta["id"] == "4055-55359-0007"
    assert spec.meta["redshift"] == pytest.approx(0.4321, rel=1e-6)
    assert spec.meta["object_class"] == "GALAXY"
    assert spec.meta["plugmap"]["FIBERID"] == 7 and spec.meta["plugmap"]["OBJTYPE"] == "GALAXY"
    assert spec.flux.unit == u.Unit("1e-17 erg / (s cm2 Angstrom)")
    assert isinstance(spec.uncertainty, InverseVariance)
    with fits.open(real) as h:
        np.testing.assert_allclose(spec.flux.value, h[0].data[6], rtol=1e-6)
        c0, c1 = h[0].header["COEFF0"], h[0].header["COEFF1"]
    # the data model's axis, 10**(COEFF0 + COEFF1 * i) from pixel 0
    assert spec.spectral_axis[0].value == pytest.approx(10**c0)
    assert spec.spectral_axis[-1].value == pytest.approx(10 ** (c0 + c1 * (spec.flux.size - 1)))
    good = ~spec.mask
    np.testing.assert_array_equal(spec.uncertainty.array[good], 7.0)
    assert spec.mask[100:110].all() and spec.uncertainty.array[100:110].max() == 0
    assert spec.mask[200] and not spec.mask[300]  # AND mask flags a pixel, OR mask does not
    other = read_spectrum(path, fiber=8)
    assert other.meta["redshift"] is None and other.meta["object_class"] is None
    assert not other.mask[200] and other.uncertainty.array[good].max() == 8.0
    with pytest.raises(FormatError, match=r"fiber=21 out of range: spPlate has fibers 1\.\.20"):
        read_spectrum(path, fiber=21)

    # the same file without EXTNAMEs: the extensions by their data-model positions
    unnamed = write_spplate(tmp_path / "unnamed.fits", real, named=False, **layout)
    same = read_spectrum(unnamed, fiber=7)
    np.testing.assert_array_equal(same.flux.value, spec.flux.value)
    np.testing.assert_array_equal(same.uncertainty.array, spec.uncertainty.array)
    np.testing.assert_array_equal(same.mask, spec.mask)
    assert same.meta["redshift"] == spec.meta["redshift"]

    # the flux-only real file is read without the loader (nothing for it to read)
    calls.clear()
    assert read_spectrum(real, fiber=7).uncertainty is None and not calls


def test_spplate_missing_or_broken_extensions(real_spectra_dir, tmp_path):
    from helpers.sdss import write_spplate

    real = real_spectra_dir / "spPlate-4055-55359-0020.fits"
    no_plug = write_spplate(tmp_path / "spPlate-noplug.fits", real, drop=["PLUGMAP", "SKY"])
    with pytest.raises(
        CorruptFileError,
        match=r"spPlate-noplug\.fits: spPlate has IVAR but lacks PLUGMAP \(HDU 5\)",
    ):
        read_spectrum(no_plug)
    bare = write_spplate(
        tmp_path / "bare.fits", real, named=False, drop=["ANDMASK", "ORMASK", "WAVEDISP", "PLUGMAP"]
    )  # IVAR then SKY (at ANDMASK's position): ANDMASK is recognised by position, PLUGMAP missing
    with pytest.raises(CorruptFileError, match=r"bare\.fits: .*lacks PLUGMAP \(HDU 5\)"):
        read_spectrum(bare)
    path = write_spplate(tmp_path / "spPlate-badivar.fits", real)
    with fits.open(path) as h:
        h["IVAR"].data = h["IVAR"].data[:, :100]
        h.writeto(tmp_path / "badivar.fits")
    with pytest.raises(CorruptFileError, match=r"badivar\.fits: spPlate IVAR shape \(20, 100\)"):
        read_spectrum(tmp_path / "badivar.fits")
    with fits.open(path) as h:
        del h[0].header["COEFF1"]
        h.writeto(tmp_path / "nocoeff.fits")
    with pytest.raises(CorruptFileError, match=r"nocoeff\.fits: spPlate header lacks \['COEFF1'\]"):
        read_spectrum(tmp_path / "nocoeff.fits", format="sdss-spplate")


def _table_file(path, columns, header=None):
    fits.HDUList(
        [fits.PrimaryHDU(header=header), fits.BinTableHDU.from_columns(columns, name="SPEC")]
    ).writeto(path)
    return path


def test_table_through_tabular_fits_loader(tmp_path, monkeypatch):
    """Tables go through specutils' tabular-fits loader with our column mapping and units."""
    calls = _spy(monkeypatch, "specutils.io.default_loaders.tabular_fits", "tabular_fits_loader")
    s = synth_spectra(1, seed=3)
    data = spectrum_fits_bytes(
        s["wave"], s["flux"][0], s["ivar"][0], s["mask"][0], z=None, object_class=None, obj_id="t"
    )
    spec = read_spectrum(data)
    assert len(calls) == 1 and spec.meta["format"] == "table"
    np.testing.assert_allclose(spec.spectral_axis.value, s["wave"])
    np.testing.assert_allclose(spec.flux.value, s["flux"][0], rtol=1e-6)
    good = s["ivar"][0] > 0
    np.testing.assert_allclose(spec.uncertainty.array[good], s["ivar"][0][good], rtol=1e-6)

    # nm wavelengths, rows out of order, ERROR column, the flux unit from BUNIT (SDSS spelling)
    hdr = fits.Header({"BUNIT": "1E-17 erg/cm^2/s/Ang", "Z": 0.1, "OBJID": "nm"})
    nm = _table_file(
        tmp_path / "nm.fits",
        [
            fits.Column("WAVE", "D", unit="nm", array=[400.2, 400.0, 400.1, 400.3]),
            fits.Column("FLUX", "E", array=[3.0, 1.0, 2.0, 4.0]),
            fits.Column("ERROR", "E", array=[0.5, 0.5, 0.0, 0.25]),
            fits.Column("MASK", "B", array=[0, 0, 0, 1]),
        ],
        hdr,
    )
    t = read_spectrum(nm)
    _check_spectrum(t)
    assert len(calls) == 2 and t.meta["id"] == "nm" and t.meta["redshift"] == 0.1
    np.testing.assert_allclose(t.spectral_axis.value, [4000, 4001, 4002, 4003])
    np.testing.assert_allclose(t.flux.value, [1, 2, 3, 4])
    np.testing.assert_allclose(t.uncertainty.array, [4, 0, 4, 16])
    assert t.mask.tolist() == [False, True, False, True]  # zero error; MASK set
    assert t.flux.unit == u.Unit("1e-17 erg / (s cm2 Angstrom)")

    # one row of arrays with log10 wavelengths
    loglam = np.log10(4000 + np.arange(5.0))
    one = _table_file(
        tmp_path / "onerow.fits",
        [
            fits.Column("LOGLAM", "5D", array=loglam[None]),
            fits.Column("FLUX", "5E", unit="Jy", array=np.ones((1, 5))),
            fits.Column("IVAR", "5E", array=np.full((1, 5), 2.0)),
        ],
    )
    o = read_spectrum(one)
    _check_spectrum(o)
    np.testing.assert_allclose(o.spectral_axis.value, 4000 + np.arange(5.0))
    assert o.flux.unit == u.Jy and o.uncertainty.array.tolist() == [2.0] * 5


def test_table_bad_inputs(tmp_path):
    flux = fits.Column("FLUX", "E", array=[1.0, 2.0, 3.0])
    jy = _table_file(
        tmp_path / "jy.fits", [fits.Column("WAVE", "D", unit="Jy", array=[1, 2, 3]), flux]
    )
    with pytest.raises(CorruptFileError, match=r"jy\.fits: wavelength column 'WAVE' has unit 'Jy'"):
        read_spectrum(jy)
    dup = _table_file(tmp_path / "dup.fits", [fits.Column("WAVE", "D", array=[1, 2, 2]), flux])
    with pytest.raises(CorruptFileError, match=r"dup\.fits: wavelengths \(WAVE\) are not strictly"):
        read_spectrum(dup)
    nan = _table_file(
        tmp_path / "nan.fits",
        [fits.Column("WAVE", "D", array=[1, 2, 3]), fits.Column("FLUX", "E", array=[np.nan] * 3)],
    )
    with pytest.raises(CorruptFileError, match=r"nan\.fits: flux has no finite values"):
        read_spectrum(nan)
    ragged = _table_file(
        tmp_path / "ragged.fits",
        [fits.Column("WAVE", "3D", array=[[1, 2, 3]]), fits.Column("FLUX", "2E", array=[[1, 2]])],
    )
    with pytest.raises(CorruptFileError, match=r"ragged\.fits: table columns differ in length"):
        read_spectrum(ragged)
    noflux = _table_file(tmp_path / "noflux.fits", [fits.Column("WAVE", "D", array=[1, 2, 3])])
    with pytest.raises(
        FormatError, match=r"noflux\.fits: no binary table with wavelength and FLUX"
    ):
        read_spectrum(noflux, format="table")


def test_store_and_s3_paths(any_store, lamost_files):
    url = any_store.join("users/test/lamost.fits.gz")
    any_store.write_bytes(url, lamost_files["lrs"].read_bytes())
    spec = read_spectrum(url, store=any_store)
    assert spec.meta["object_class"] == "STAR" and spec.meta["source"] == url
    hdr = read_header(url, store=any_store)
    assert hdr["CLASS"] == "STAR"


def test_read_header_reads_only_needed_bytes(real_spectra_dir):
    path = real_spectra_dir / "coadd-sv3-dark-26065.fits"

    class Counting(io.FileIO):
        read_total = 0

        def read(self, n=-1):
            out = super().read(n)
            Counting.read_total += len(out)
            return out

    with Counting(path) as fh:
        hdr = read_header(fh, hdu=4)
    assert hdr["EXTNAME"] == "B_FLUX"
    assert Counting.read_total < path.stat().st_size / 4


def test_truncated_corrupt_unknown(tmp_path, lamost_files, real_spectra_dir):
    raw = (real_spectra_dir / "spPlate-4055-55359-0020.fits").read_bytes()
    cut = tmp_path / "cut.fits"
    cut.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CorruptFileError, match=r"cut\.fits: truncated"):
        read_spectrum(cut)
    gz = tmp_path / "cut.fits.gz"
    gz.write_bytes(lamost_files["lrs"].read_bytes()[:5000])
    with pytest.raises(CorruptFileError, match="gzip"):
        read_spectrum(gz)
    junk = tmp_path / "junk.fits"
    junk.write_bytes(b"\x00\x01 definitely not a spectrum" * 10)
    with pytest.raises(UnknownFormatError, match=r"junk\.fits"):
        read_spectrum(junk)
    odd = tmp_path / "image2d.fits"
    fits.PrimaryHDU(np.zeros((3, 3, 3), np.float32)).writeto(odd)
    with pytest.raises(UnknownFormatError, match="not a recognised spectrum layout"):
        read_spectrum(odd)
    with pytest.raises(FormatError, match="no such file"):
        read_spectrum(tmp_path / "missing.fits")


def test_synthetic_table_and_text(tmp_path):
    s = synth_spectra(2, seed=1)
    data = spectrum_fits_bytes(
        s["wave"], s["flux"][0], s["ivar"][0], s["mask"][0],
        z=float(s["z"][0]), object_class=str(s["object_class"][0]), obj_id="x1",
    )  # fmt: skip
    spec = read_spectrum(data)
    _check_spectrum(spec)
    assert spec.meta["format"] == "table" and spec.meta["id"] == "x1"
    assert spec.flux.unit == u.Unit("1e-17 erg / (s cm2 Angstrom)")
    np.testing.assert_array_equal(spec.mask, s["mask"][0] | (s["ivar"][0] <= 0))
    csv = tmp_path / "spec.csv"
    csv.write_text("wavelength,flux,error\n4000,1.0,0.1\n4001,2.0,0.1\n4002,1.5,0\n")
    t = read_spectrum(csv)
    assert t.meta["format"] == "text" and t.mask.tolist() == [False, False, True]
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(UnknownFormatError, match="'wavelength' and 'flux'"):
        read_spectrum(bad)


# --- cutouts ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def gal():
    return synth_galaxies(3, seed=11)


def test_cutout_cube_and_per_band(gal, tmp_path):
    for per_band in (False, True):
        data = cutout_fits_bytes(
            gal["images"][0], gal["mags"][0], gal["z"][0], "g0", per_band=per_band
        )
        c = read_cutout(data)
        assert c.image.shape == (5, 32, 32) and c.image.dtype == np.float32
        np.testing.assert_array_equal(c.image, gal["images"][0])
        np.testing.assert_allclose(c.magnitudes, gal["mags"][0])
        assert c.redshift == pytest.approx(float(gal["z"][0])) and c.id == "g0"
        assert c.bands == ("u", "g", "r", "i", "z") and c.nan_count == 0


def test_cutout_band_reordering_and_errors(gal, tmp_path):
    img = gal["images"][1]
    # per-band HDUs in the order z, i, r, g, u: reordered by name
    hdus = [fits.PrimaryHDU()]
    for b in reversed(range(5)):
        h = fits.ImageHDU(img[b])
        h.header["FILTER"] = "ugriz"[b]
        hdus.append(h)
    buf = io.BytesIO()
    fits.HDUList(hdus).writeto(buf)
    np.testing.assert_array_equal(read_cutout(buf.getvalue()).image, img)
    assert read_cutout(buf.getvalue()).redshift is None

    def cube(data, bands=None):
        hdu = fits.PrimaryHDU(data)
        if bands:
            hdu.header["BANDS"] = bands
        b = io.BytesIO()
        hdu.writeto(b)
        return b.getvalue()

    with pytest.raises(CutoutShapeError, match=r"4 bands .* expected 5"):
        read_cutout(cube(img[:4], "ugri"))
    with pytest.raises(BandOrderError, match="exactly once"):
        read_cutout(cube(img, "uggiz"))
    with pytest.raises(CutoutShapeError, match=r"expected \(64, 64\)"):
        read_cutout(cube(img, "ugriz"), shape=(64, 64))
    with pytest.raises(CutoutShapeError, match="no image data"):
        read_cutout(cube(None))
    full = cube(img, "ugriz")
    with pytest.raises(CorruptFileError, match="truncated"):
        read_cutout(full[: len(full) - 4000])


def test_cutout_nan_policy(gal):
    img = gal["images"][2].copy()
    img[2, 5:7, 5:9] = np.nan
    img[0, 0, 0] = np.inf
    c = read_cutout(cutout_fits_bytes(img, gal["mags"][2], None, "n"))
    assert c.nan_count == 9
    assert np.isfinite(c.image).all() and c.image[2, 5, 5] == 0.0
    img[:, :20] = np.nan
    with pytest.raises(CorruptFileError, match="NaN/inf"):
        read_cutout(cutout_fits_bytes(img, gal["mags"][2], None, "n"))


def test_cutout_from_store(any_store, gal, tmp_path):
    url = any_store.join("users/test/c.fits")
    any_store.write_bytes(url, cutout_fits_bytes(gal["images"][0], gal["mags"][0], 0.1, "c"))
    assert read_cutout(url, store=any_store).id == "c"
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_lamost_lrs_table_layout_and_plain_1d(lamost_files, tmp_path):
    """The DR8+ LRS layout (one-row table in HDU 1) from the real DR6 data; plain 1-D FITS."""
    with fits.open(lamost_files["lrs"]) as h:
        hdr = h[0].header.copy()
        rows = h[0].data
    n = rows.shape[1]
    table = fits.BinTableHDU.from_columns(
        [
            fits.Column("FLUX", f"{n}E", array=rows[0][None]),
            fits.Column("IVAR", f"{n}E", array=rows[1][None]),
            fits.Column("WAVELENGTH", f"{n}D", array=rows[2][None].astype(np.float64)),
            fits.Column("ANDMASK", f"{n}E", array=rows[3][None]),
            fits.Column("ORMASK", f"{n}E", array=rows[4][None]),
        ],
        name="COADD",
    )
    for key in ("NAXIS1", "NAXIS2"):
        hdr.remove(key, ignore_missing=True)
    hdr["NAXIS"] = 0
    path = tmp_path / "spec-dr8-layout.fits"
    fits.HDUList([fits.PrimaryHDU(header=hdr), table]).writeto(path)
    new = read_spectrum(path)
    old = read_spectrum(lamost_files["lrs"])
    assert new.meta["format"] == "lamost-lrs"
    assert new.meta["redshift"] == old.meta["redshift"]
    np.testing.assert_allclose(new.flux.value, old.flux.value, rtol=1e-6)
    np.testing.assert_array_equal(new.mask, old.mask)

    flux = np.linspace(1, 2, 50).astype(np.float32)
    hdu = fits.PrimaryHDU(flux)
    hdu.header.update(CRVAL1=3.6, CDELT1=1e-3, CRPIX1=1, **{"DC-FLAG": 1}, Z=0.05)
    hdu.header["BUNIT"] = "erg / (s cm2 Angstrom)"
    plain = tmp_path / "plain.fits"
    hdu.writeto(plain)
    p = read_spectrum(plain)
    assert p.meta["format"] == "fits-1d" and p.meta["redshift"] == 0.05
    assert p.spectral_axis[0].value == pytest.approx(10**3.6)
    assert p.flux.unit == u.Unit("erg / (s cm2 Angstrom)") and p.uncertainty is None
    # a linear axis in nm goes through specutils' wcs1d-fits loader; SDSS's unit string kept
    hdu = fits.PrimaryHDU(flux)
    hdu.header.update(CRVAL1=400.0, CDELT1=0.2, CRPIX1=1, CUNIT1="nm", OBJECT="lin")
    hdu.header["BUNIT"] = "1E-17 erg/cm^2/s/Ang"
    linear = tmp_path / "linear.fits"
    hdu.writeto(linear)
    lin = read_spectrum(linear)
    assert lin.meta["format"] == "fits-1d" and lin.meta["id"] == "lin"
    np.testing.assert_allclose(lin.spectral_axis.to_value(u.AA)[:3], [4000, 4002, 4004])
    assert lin.flux.unit == u.Unit("1e-17 erg / (s cm2 Angstrom)")


def test_cutout_fast_path_matches_astropy_path(gal):
    from astrokit.formats.cutouts import _simple_cube

    data = cutout_fits_bytes(gal["images"][1], gal["mags"][1], gal["z"][1], "f1")
    assert _simple_cube(data, "f1") is not None  # the survey's files take the fast path
    # the same cube with a trailing extension takes astropy's path; results must agree
    with fits.open(io.BytesIO(data)) as h:
        buf = io.BytesIO()
        fits.HDUList([h[0], fits.ImageHDU(np.zeros((2, 2), np.float32))]).writeto(buf)
    slow = buf.getvalue()
    assert _simple_cube(slow, "s") is None
    a, b = read_cutout(data), read_cutout(slow)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.magnitudes, b.magnitudes)
    assert (a.redshift, a.id) == (b.redshift, b.id)
    assert _simple_cube(data[:-3000], "t") is None  # truncated: general path reports it


def test_desi_arms_combined_into_one_spectrum(tmp_path, real_spectra_dir):
    """DESI: b, r and z on one axis, overlaps inverse-variance averaged; one arm on request."""
    from helpers.desi import arm_wave, write_desi_coadd

    path = write_desi_coadd(
        tmp_path / "coadd-main-dark-1234.fits",
        flux={"b": 1.0, "r": 3.0, "z": 5.0},
        ivar={"b": 1.0, "r": 3.0, "z": 1.0},
        masked={"r": [5780.0]},
        redshifts=[0.5, 1.25],
    )
    spec = read_spectrum(path, index=1)  # target 1: fluxes b 2, r 4, z 6
    _check_spectrum(spec)
    assert spec.meta["format"] == "desi-coadd" and spec.meta["band"] == "brz"
    assert spec.meta["redshift"] == pytest.approx(1.25)
    wave = spec.spectral_axis.to_value(u.AA)
    assert wave[0] == pytest.approx(3600) and wave[-1] == pytest.approx(9824)
    assert wave.size == round((9824 - 3600) / 0.8) + 1  # one pixel per grid point, no repeats

    def at(lam):
        i = int(np.argmin(np.abs(wave - lam)))
        return spec.flux.value[i], spec.uncertainty.array[i], spec.mask[i]

    assert at(4000) == pytest.approx((2.0, 1.0, False))  # b alone
    assert at(5760) == pytest.approx((3.5, 4.0, False))  # b/r overlap: (2*1 + 4*3) / 4
    assert at(5780) == pytest.approx((2.0, 1.0, False))  # r flagged there: b alone
    assert at(7600) == pytest.approx((4.5, 4.0, False))  # r/z overlap: (4*3 + 6*1) / 4
    assert at(9000) == pytest.approx((6.0, 1.0, False))  # z alone

    blue = read_spectrum(path, band="b")
    assert blue.meta["band"] == "b" and blue.spectral_axis.size == arm_wave("b").size
    assert blue.spectral_axis.max().value == pytest.approx(5800)
    red_z = read_spectrum(path, band="zr")
    assert red_z.meta["band"] == "rz" and red_z.spectral_axis.min().value == pytest.approx(5760)
    with pytest.raises(FormatError, match=r"coadd-main-dark-1234\.fits: band='q'.*arms"):
        read_spectrum(path, band="q")

    # the real DESI file: the whole spectrum, each arm's pixels kept where arms do not overlap
    real = real_spectra_dir / "coadd-sv3-dark-26065.fits"
    whole = read_spectrum(real, index=4)
    _check_spectrum(whole)
    assert 3590 < whole.spectral_axis.min().value < 3610
    assert 9810 < whole.spectral_axis.max().value < 9830
    z_arm = read_spectrum(real, band="z", index=4)
    only_z = whole.spectral_axis.value > 7625
    good = ~whole.mask[only_z]
    np.testing.assert_allclose(
        whole.flux.value[only_z][good],
        z_arm.flux.value[z_arm.spectral_axis.value > 7625][good],
        rtol=1e-6,
    )
