"""``read_cutout``: multi-band galaxy cutouts as a (5, H, W) float32 ugriz array.

Accepted layouts:

* a **cube**: the first image HDU holds (5, H, W); band order from ``BANDS='ugriz'`` or
  ``FILTER1..FILTER5``; with neither, ugriz is assumed (logged at DEBUG);
* **one HDU per band**: five 2-D image HDUs named by ``FILTER`` or ``EXTNAME`` (u, g, r, i, z
  in any order -- they are put in ugriz order by name).

Magnitudes come from ``MAG_U``..``MAG_Z`` in the primary header (NaN where missing), the
redshift from ``Z`` (None when absent or non-finite), the id from ``OBJID`` (else the file
name).

Checks: band count != 5 or image shapes that differ or do not match ``shape=``
(:class:`CutoutShapeError`); unnamed, unknown or duplicated bands (:class:`BandOrderError`);
truncated or non-FITS files (:class:`CorruptFileError`).

**NaN policy**: NaN/inf pixels are counted (``Cutout.nan_count``) and replaced by 0.0 (the
sky level of background-subtracted images), never passed on. A cutout with more than
``max_nan_fraction`` (default 0.25) non-finite pixels is rejected with CorruptFileError,
since imputing that much would feed the model an invented galaxy.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
from astropy.io import fits

from astrokit.formats.errors import BandOrderError, CorruptFileError, CutoutShapeError
from astrokit.formats.fitsio import load_bytes, open_fits

log = logging.getLogger(__name__)

BANDS = ("u", "g", "r", "i", "z")
DEFAULT_MAX_NAN_FRACTION = 0.25


@dataclass
class Cutout:
    """One galaxy cutout.

    Attributes
    ----------
    image : ndarray
        (5, H, W) float32 in ugriz order; non-finite pixels replaced by 0.
    bands : tuple of str
        Always ``("u", "g", "r", "i", "z")``.
    magnitudes : ndarray
        (5,) float32; NaN where the header has none.
    redshift : float or None
        Catalogue redshift when known.
    id : str
        Object id.
    nan_count : int
        How many pixels were non-finite before replacement.
    header : astropy.io.fits.Header
        Primary header.
    """

    image: np.ndarray
    bands: tuple[str, ...]
    magnitudes: np.ndarray
    redshift: float | None
    id: str
    nan_count: int
    header: fits.Header


def _band_name(header: fits.Header, fallback: str = "") -> str:
    for key in ("FILTER", "BAND"):
        if key in header:
            return str(header[key]).strip().lower()
    return str(header.get("EXTNAME", fallback)).strip().lower()


def _cube_bands(header: fits.Header, n: int, name: str) -> list[str]:
    if "BANDS" in header:
        text = str(header["BANDS"]).strip().lower().replace(",", "").replace(" ", "")
        return list(text)
    if all(f"FILTER{i + 1}" in header for i in range(n)):
        return [str(header[f"FILTER{i + 1}"]).strip().lower() for i in range(n)]
    log.debug("%s: cube without BANDS/FILTERn keywords; assuming ugriz order", name)
    return list(BANDS[:n]) if n <= 5 else [f"?{i}" for i in range(n)]


def _order(bands: list[str], name: str) -> list[int]:
    """Indices that put ``bands`` in ugriz order, or a BandOrderError."""
    if len(bands) != 5:
        raise CutoutShapeError(name, f"{len(bands)} bands {bands}; expected 5 (ugriz)")
    if sorted(bands) != sorted(BANDS):
        raise BandOrderError(name, f"bands {bands}; expected each of u, g, r, i, z exactly once")
    return [bands.index(b) for b in BANDS]


def read_cutout(
    source: Any,
    *,
    store: Any = None,
    shape: tuple[int, int] | None = None,
    max_nan_fraction: float = DEFAULT_MAX_NAN_FRACTION,
) -> Cutout:
    """Read a multi-band FITS cutout.

    Parameters
    ----------
    source : str, bytes or file-like
        URL, path or content of the FITS file (gzip accepted).
    store : Store, optional
        Store to read through.
    shape : (int, int), optional
        Required (H, W); default: any, as long as all bands agree.
    max_nan_fraction : float
        Reject the cutout when more than this fraction of pixels is non-finite.

    Returns
    -------
    Cutout

    Raises
    ------
    CutoutShapeError, BandOrderError, CorruptFileError
        See the module docstring; each names the file and what was expected.
    """
    data, name = load_bytes(source, store)
    fast = _simple_cube(data, name)
    if fast is not None:
        cube, h0 = fast
        return _finish(_ordered_cube(cube, h0, name), h0, name, shape, max_nan_fraction)
    with open_fits(data, name) as hdul:
        h0 = hdul[0].header
        images = [h for h in hdul if h.is_image and h.data is not None and h.data.ndim >= 2]
        if not images:
            raise CutoutShapeError(name, "no image data; expected a (5, H, W) cube or 5 band HDUs")
        first = images[0]
        if first.data.ndim == 3:
            if len(images) > 1:
                log.debug("%s: using the cube in HDU 0 and ignoring later images", name)
            cube = np.asarray(first.data, dtype=np.float32)
            cube = _ordered_cube(cube, first.header if "BANDS" in first.header else h0, name)
        elif first.data.ndim == 2:
            bands = [_band_name(h.header, fallback=f"hdu{i}") for i, h in enumerate(images)]
            planes = [np.asarray(h.data) for h in images]
            order = _order(bands, name)
            shapes = {p.shape for p in planes}
            if len(shapes) != 1:
                raise CutoutShapeError(name, f"band images differ in shape: {sorted(shapes)}")
            cube = np.stack([planes[i] for i in order]).astype(np.float32)
        else:
            raise CutoutShapeError(name, f"image has {first.data.ndim} axes; expected 2 or 3")
        return _finish(cube, h0.copy(), name, shape, max_nan_fraction)


def _ordered_cube(cube: np.ndarray, header: fits.Header, name: str) -> np.ndarray:
    bands = _cube_bands(header, cube.shape[0], name)
    if len(bands) != cube.shape[0]:
        raise BandOrderError(name, f"BANDS names {len(bands)} bands, cube has {cube.shape[0]}")
    return cube[_order(bands, name)]


def _simple_cube(data: bytes, name: str) -> tuple[np.ndarray, fits.Header] | None:
    """Fast path for the common file: one primary HDU holding a float32 cube, nothing else.

    Parses the header text and views the data with numpy (several times faster than building
    an HDUList; ingest reads millions of these). Anything else (extensions, scaling, other
    types, truncation) returns None and takes the general astropy path, which also produces
    the precise error for broken files.
    """
    if not data.startswith(b"SIMPLE  ="):
        return None
    end = -1
    for i in range(0, min(len(data), 10 * 2880), 80):
        card = data[i : i + 80]
        if card[:3] == b"END" and card[3:].strip() == b"":
            end = i
            break
    if end < 0:
        return None
    try:
        header = fits.Header.fromstring(data[:end].decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return None
    if (
        header.get("NAXIS") != 3
        or header.get("BITPIX") != -32
        or any(k in header for k in ("BSCALE", "BZERO", "BLANK"))
    ):
        return None
    dims = [int(header.get(f"NAXIS{i}", 0)) for i in (1, 2, 3)]
    count = dims[0] * dims[1] * dims[2]
    start = (end // 2880 + 1) * 2880
    stop = start + 4 * count
    # only when the data unit is complete and nothing follows it (no extensions to consider)
    if count == 0 or stop > len(data) or len(data) - stop >= 2880:
        return None
    cube = np.frombuffer(data, dtype=">f4", count=count, offset=start)
    return cube.reshape(dims[2], dims[1], dims[0]).astype(np.float32), header


def _finish(
    cube: np.ndarray,
    h0: fits.Header,
    name: str,
    shape: tuple[int, int] | None,
    max_nan_fraction: float,
) -> Cutout:
    """Shape check, NaN policy, header values: common to both read paths."""
    if shape is not None and cube.shape[1:] != tuple(shape):
        raise CutoutShapeError(name, f"image shape {cube.shape[1:]}; expected {tuple(shape)}")
    bad = ~np.isfinite(cube)
    nan_count = int(bad.sum())
    if nan_count > max_nan_fraction * cube.size:
        raise CorruptFileError(
            name,
            f"{nan_count} of {cube.size} pixels are NaN/inf "
            f"(more than max_nan_fraction={max_nan_fraction})",
        )
    if nan_count:
        cube[bad] = 0.0
    mags = np.array([float(h0.get(f"MAG_{b.upper()}", np.nan)) for b in BANDS], dtype=np.float32)
    z = h0.get("Z")
    z = float(z) if z is not None and np.isfinite(float(z)) else None
    obj_id = str(h0.get("OBJID", name.rsplit("/", 1)[-1].removesuffix(".gz").removesuffix(".fits")))
    return Cutout(
        image=np.ascontiguousarray(cube),
        bands=BANDS,
        magnitudes=mags,
        redshift=z,
        id=obj_id,
        nan_count=nan_count,
        header=h0,
    )
