"""Small pure helpers: error sentences, secret scrubbing, sizes, filter patterns, sniffing."""

from __future__ import annotations

import fnmatch

from astrokit_widgets._common import human_size, scrub, user_message
from astrokit_widgets.browser import is_fits, looks_like_cutout, name_pattern
from astropy.io import fits

from astrokit.formats import FormatError
from astrokit.store import ReadOnlyAreaError, StoreCredentialsError, StoreNotFound


def test_user_message_headlines():
    assert user_message(StoreNotFound("s3://b/x: no such key"), action="listing s3://b/x") == (
        "Not found while listing s3://b/x: no such key"  # the URL is said once
    )
    assert user_message(ReadOnlyAreaError("shared is read-only"), action="saving").startswith(
        "Read-only area while saving"
    )
    assert user_message(StoreCredentialsError("no keys"), action="x").startswith(
        "No valid credentials"
    )
    assert user_message(ValueError("bad"), action="x") == "Error (ValueError) while x: bad"
    try:
        try:
            raise StoreNotFound("gone")
        except StoreNotFound as inner:
            raise FormatError("f.fits", "cannot read the file") from inner
    except FormatError as wrapped:
        # a reader's wrapper keeps its message, the headline names the real failure
        assert (
            user_message(wrapped, action="y") == "Not found while y: f.fits: cannot read the file"
        )
    assert user_message(FormatError("f.fits", "not FITS"), action="y").startswith("Unreadable file")


def test_scrub_removes_credentials():
    text = "GET https://h/b?X-Amz-Signature=abc123&X-Amz-Credential=AKIA/x secret=hunter2 key"
    out = scrub(text, secrets=("AKIAEXAMPLEKEY", "key"))
    assert "abc123" not in out and "hunter2" not in out and "AKIA/x" not in out
    assert "X-Amz-Signature=***" in out
    assert scrub("id AKIAEXAMPLEKEY", secrets=("AKIAEXAMPLEKEY",)) == "id ***"


def test_human_size():
    assert [human_size(v) for v in (None, 0, 1023, 1536, 5 * 2**20, 3 * 2**40)] == [
        "",
        "0 B",
        "1023 B",
        "1.5 KiB",
        "5.0 MiB",
        "3.0 TiB",
    ]


def test_name_pattern():
    assert name_pattern("  ") is None
    assert name_pattern("*.fits") == "*.fits"
    pattern = name_pattern("Spec-1")
    assert pattern == "*[sS][pP][eE][cC]-1*"
    assert fnmatch.fnmatchcase("lamost-SPEC-12.fits", pattern)
    assert not fnmatch.fnmatchcase("spec-2.fits", pattern)


def test_fits_suffixes_and_cutout_headers():
    assert is_fits("s3://b/a.FITS") and is_fits("x.fits.gz") and not is_fits("x.parquet")
    cube = fits.Header({"NAXIS": 3, "NAXIS1": 32, "NAXIS2": 32, "NAXIS3": 5})
    assert looks_like_cutout(cube)
    per_band = fits.Header({"NAXIS": 0, **{f"MAG_{b}": 20.0 for b in "UGRIZ"}})
    assert looks_like_cutout(per_band)
    spectrum = fits.Header({"NAXIS": 2, "NAXIS1": 3909, "NAXIS2": 5})
    assert not looks_like_cutout(spectrum)
