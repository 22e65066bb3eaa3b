"""Readers for survey files: spectra (SDSS, BOSS, LAMOST, DESI, plain) and galaxy cutouts.

All readers take a URL/path (read through :mod:`astrokit.store`), bytes or a file-like
object, and raise :class:`FormatError` subclasses that name the file and what was expected.
"""

from __future__ import annotations

from astrokit.formats.cutouts import BANDS, Cutout, read_cutout
from astrokit.formats.errors import (
    BandOrderError,
    CorruptFileError,
    CutoutShapeError,
    FormatError,
    UnknownFormatError,
)
from astrokit.formats.fitsio import read_header
from astrokit.formats.spectra import READERS, read_spectrum, sniff

__all__ = [
    "BANDS",
    "READERS",
    "BandOrderError",
    "CorruptFileError",
    "Cutout",
    "CutoutShapeError",
    "FormatError",
    "UnknownFormatError",
    "read_cutout",
    "read_header",
    "read_spectrum",
    "sniff",
]
