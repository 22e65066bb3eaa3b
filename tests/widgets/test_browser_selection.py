"""Selecting files in the StoreBrowser opens the right viewer, with real survey files.

Real LAMOST (LRS, MRS), SDSS and DESI spectra are copied into a ``file://`` store and into a
bucket on the loopback S3 server; selecting one must read it through ``astrokit.formats`` and
plot it, a 5-band cutout must open the cutout viewer, and anything unreadable must end as a
sentence in the error label.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from astrokit_widgets import StoreBrowser
from astropy.io import fits

SDSS = "SDSSJ220248.31+123656.3.fits"
DESI = "coadd-sv3-dark-26065.fits"


def _write_cutouts(directory: Path) -> None:
    """Two synthetic galaxies in both of ``astrokit.survey``'s layouts (cube, one HDU per band)."""
    from astrokit.survey import cutout_fits_bytes, synth_galaxies

    gal = synth_galaxies(2, seed=3)
    for i, per_band in enumerate((False, True)):
        data = cutout_fits_bytes(
            gal["images"][i], gal["mags"][i], float(gal["z"][i]), str(gal["ids"][i]),
            per_band=per_band,
        )  # fmt: skip
        (directory / f"gal-{i}.fits").write_bytes(data)


def _populate(root: Path, lamost_files, real_spectra_dir) -> None:
    spectra = root / "shared" / "spectra"
    spectra.mkdir(parents=True)
    for path in lamost_files.values():
        shutil.copy(path, spectra / path.name)
    for name in (SDSS, DESI):
        shutil.copy(real_spectra_dir / name, spectra / name)
    (spectra / "corrupt.fits").write_bytes(b"SIMPLE  =  this is not a FITS file" * 10)
    image = root / "shared" / "images"
    image.mkdir()
    fits.PrimaryHDU(np.zeros((8, 8), np.float32)).writeto(image / "flat.fits")
    cutouts = root / "shared" / "cutouts"
    cutouts.mkdir()
    _write_cutouts(cutouts)


@pytest.fixture
def local_browser(tmp_path, lamost_files, real_spectra_dir):
    from astrokit.store import open_store

    root = tmp_path / "store"
    _populate(root, lamost_files, real_spectra_dir)
    return StoreBrowser(store=open_store(f"file://{root}")), f"file://{root}"


@pytest.fixture
def s3_browser(tmp_path, lamost_files, real_spectra_dir, make_bucket, s3_store_options):
    import s3fs

    from astrokit.store import open_store

    bucket = make_bucket()
    _populate(tmp_path / "src", lamost_files, real_spectra_dir)
    fs = s3fs.S3FileSystem(**s3_store_options)
    fs.put(str(tmp_path / "src") + "/", bucket + "/", recursive=True)
    return StoreBrowser(store=open_store(bucket, storage_options=s3_store_options)), bucket


def _check_lamost_lrs(browser, root, lamost_files):
    url = f"{root}/shared/spectra/{lamost_files['lrs'].name}"
    seen = []
    browser.on_select(seen.append)
    kind = browser.select(url)
    assert browser.error == "", browser.error
    assert kind == "spectrum" and browser.selected_kind == "spectrum" and seen == [url]
    viewer = browser.spectrum_viewer
    assert viewer in browser._preview_box.children
    header = fits.getheader(lamost_files["lrs"])
    assert viewer.z == pytest.approx(header["Z"], abs=1e-6)
    (trace,) = viewer.plotted.values()
    assert trace.x.size == fits.getdata(lamost_files["lrs"]).shape[1]
    assert "CLASS" in [c[0] for c in browser.header_view.cards]
    assert browser.last_timings["select_to_shown_s"] > 0


def test_select_real_lamost_spectrum_on_file_store(local_browser, lamost_files):
    browser, root = local_browser
    browser.navigate(f"{root}/shared/spectra")
    assert len(browser.entries) == 5
    _check_lamost_lrs(browser, root, lamost_files)


@pytest.mark.s3
def test_select_real_lamost_spectrum_on_s3(s3_browser, lamost_files):
    browser, root = s3_browser
    _check_lamost_lrs(browser, root, lamost_files)


@pytest.mark.parametrize("name", ["mrs", SDSS, DESI])
def test_other_real_spectra_open_in_the_viewer(local_browser, lamost_files, name):
    browser, root = local_browser
    file_name = lamost_files["mrs"].name if name == "mrs" else name
    # click it in the listing, as a person does
    browser.navigate(f"{root}/shared/spectra")
    browser._listing.value = f"{root}/shared/spectra/{file_name}"
    assert browser.error == "", browser.error
    assert browser.selected_kind == "spectrum"
    (trace,) = browser.spectrum_viewer.plotted.values()
    assert trace.x.size > 1000 and np.isfinite(trace.y).sum() > 1000


def test_selecting_another_spectrum_replaces_the_first(local_browser, lamost_files):
    browser, root = local_browser
    browser.select(f"{root}/shared/spectra/{lamost_files['lrs'].name}")
    browser.select(f"{root}/shared/spectra/{SDSS}")
    assert len(browser.spectrum_viewer.spectra) == 1


@pytest.mark.parametrize("name", ["gal-0.fits", "gal-1.fits"])  # cube, per-band HDUs
def test_cutout_opens_the_cutout_viewer(local_browser, name):
    browser, root = local_browser
    kind = browser.select(f"{root}/shared/cutouts/{name}")
    assert kind == "cutout", browser.error
    viewer = browser.cutout_viewer
    assert viewer in browser._preview_box.children
    assert viewer.rgb.shape == (32, 32, 3)
    header = browser.header_view.header
    assert viewer.catalogue["mag_r"] == pytest.approx(header["MAG_R"], abs=1e-5)
    assert viewer.catalogue["z"] == pytest.approx(header["Z"], abs=1e-6)


def test_unreadable_and_unknown_files(local_browser):
    browser, root = local_browser
    kind = browser.select(f"{root}/shared/spectra/corrupt.fits")
    assert kind == "fits" and browser.error
    assert "corrupt.fits" in browser.error and "Traceback" not in browser._error.value
    kind = browser.select(f"{root}/shared/images/flat.fits")  # a FITS image, not a spectrum
    assert kind == "fits" and browser.error == ""
    assert "Header only" in browser._info.value
    assert [c[0] for c in browser.header_view.cards][:3] == ["SIMPLE", "BITPIX", "NAXIS"]
    browser.select(f"{root}/shared/spectra/missing.fits")
    assert browser.error.startswith("Not found")


@pytest.mark.s3
def test_header_preview_on_s3_reads_little_of_a_large_file(make_bucket, s3_store_options,
                                                            monkeypatch):  # fmt: skip
    """A 20 MB FITS image on S3: the header preview fetches kilobytes, not the object."""
    import io

    import s3fs

    from astrokit.store import open_store

    bucket = make_bucket()
    buf = io.BytesIO()
    fits.PrimaryHDU(np.zeros((2000, 2500), np.float32)).writeto(buf)
    s3fs.S3FileSystem(**s3_store_options).pipe(f"{bucket}/big.fits", buf.getvalue())
    store = open_store(bucket, storage_options=s3_store_options)
    fetched = []  # (start, end) of every ranged GET made through the opened files
    real_open = store.fs.open

    def spy(*args, **kwargs):
        handle = real_open(*args, **kwargs)
        real_fetch = handle.cache.fetcher

        def counting_fetch(start, end):
            fetched.append((start, end))
            return real_fetch(start, end)

        handle.cache.fetcher = counting_fetch
        return handle

    # the filesystem instance is cached and shared by stores with the same options: undo after
    monkeypatch.setattr(store.fs, "open", spy)
    browser = StoreBrowser(store=store, preview=True)
    assert browser.select(f"{bucket}/big.fits") == "fits"  # an image: header only
    assert browser.header_view.header["NAXIS1"] == 2500
    total = sum(end - start for start, end in fetched)
    assert 0 < total <= 256 * 1024 < len(buf.getvalue()) // 50


def test_header_preview_reads_only_the_header_blocks(tmp_path):
    """astropy's lazy reader: HDU 1's header of a 20 MB file costs a few blocks, data skipped."""
    import gzip
    import io

    from astrokit_widgets import FitsHeaderView

    from astrokit.formats import CorruptFileError, FormatError

    path = tmp_path / "big.fits"
    image = fits.PrimaryHDU(np.zeros((2000, 2500), np.float32))
    fits.HDUList([image, fits.ImageHDU(np.zeros(10, np.float32), name="SECOND")]).writeto(path)

    class Counting(io.FileIO):
        total = 0

        def read(self, n=-1):
            out = super().read(n)
            Counting.total += len(out)
            return out

        def readinto(self, buffer):
            got = super().readinto(buffer)
            Counting.total += got or 0
            return got

    view = FitsHeaderView()
    with Counting(path) as handle:
        header = view.load(handle, hdu=1)
    assert header["EXTNAME"] == "SECOND" and view.error == ""
    assert 0 < Counting.total <= 4 * 2880 < path.stat().st_size // 1000
    # a gzip file is read as a stream, the header all the same
    gz = tmp_path / "big.fits.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    assert view.load(str(gz), hdu=1)["EXTNAME"] == "SECOND"
    # and what is not there is said with the file's name
    assert view.load(str(path), hdu=3) is None
    assert "HDU 3 requested, but the file has 2 HDU(s)" in view.error and "big.fits" in view.error
    junk = tmp_path / "junk.fits"
    junk.write_bytes(b"not FITS at all " * 400)
    from astrokit_widgets.header import read_header_cheaply

    with pytest.raises(CorruptFileError, match=r"junk\.fits: not a readable FITS header"):
        read_header_cheaply(str(junk))
    with pytest.raises(FormatError, match=r"gone\.fits: cannot read the file"):
        read_header_cheaply(str(tmp_path / "gone.fits"))
