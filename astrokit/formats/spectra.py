"""``read_spectrum``: one entry point that sniffs the format and returns a specutils Spectrum.

Supported layouts (``meta["format"]``):

==================  ============================================================================
``lamost-lrs``      LAMOST LRS: 5-row primary image (flux, ivar, wavelength, andmask, ormask),
                    CLASS/Z in the header; also the DR8+ layout (one-row table in HDU 1 with
                    FLUX, IVAR, WAVELENGTH, ANDMASK... columns)
``lamost-mrs``      LAMOST MRS: ``COADD_B``/``COADD_R`` tables (LOGLAM); ``band="B"|"R"`` picks
                    one arm, default both arms joined (they do not overlap). No Z keyword:
                    redshift = HELIO_RV / c.
``sdss-spec``       SDSS/BOSS ``spec-*.fits`` through specutils' ``SDSS-III/IV spec`` loader:
                    ``COADD`` table (loglam, flux, ivar, and_mask); the redshift and class from
                    ``SPECOBJ``/``SPALL`` (Z, CLASS), which specutils does not read
``sdss-spplate``    SDSS/BOSS ``spPlate``: 2-D primary image (fibers x pixels), wavelength from
                    COEFF0/COEFF1; ``fiber=`` is the **1-based** fiber number (the FIBERID
                    convention of SDSS catalogues), default 1. With the data model's IVAR,
                    ANDMASK and PLUGMAP extensions through specutils' ``SDSS spPlate`` loader
                    (the fiber's PLUGMAP row in ``meta["plugmap"]``); a flux-only file (no
                    IVAR) is read here. Redshift/class from a catalogue table in the file
                    (``SPZBEST``/``ZBEST``/``SPALL``/``SPECOBJ``/PLUGMAP with Z), else None.
``sdss-1d``         single SDSS spectrum as image HDUs (flux, ivar, loglam[, flags]) with
                    COEFF0/COEFF1 (e.g. linetools' test file)
``desi-coadd``      DESI ``coadd-*``/``spectra-*.fits`` through specutils' own loader; by default
                    the whole spectrum (~3600-9824 A): the b, r and z arms on one axis, overlaps
                    inverse-variance averaged (DESI's ``coadd_cameras``); ``band="b"|"r"|"z"``
                    (or e.g. ``"rz"``) picks arms; ``index=`` the 0-based target row (default 0)
``table``           any FITS binary table with a wavelength column (WAVELENGTH/WAVE/LAMBDA/
                    LOGLAM) and FLUX (+ IVAR/ERROR, MASK), through specutils' ``tabular-fits``
                    loader with the column mapping these names give; AstroKit's synthetic
                    spectra
``fits-1d``         plain 1-D primary image with CRVAL1/CDELT1 (or CD1_1): linear through
                    specutils' ``wcs1d-fits`` loader, log10 (``DC-FLAG = 1``) read here
``text``            ASCII/CSV/ECSV tables with wavelength and flux columns
==================  ============================================================================

The returned :class:`specutils.Spectrum` has its spectral axis in Angstrom, flux with a unit,
``uncertainty`` as :class:`~astropy.nddata.InverseVariance` (None only for flux-only
formats), a boolean ``mask`` (True = bad: flagged, zero inverse variance or non-finite), and
``meta`` with ``redshift`` (float or None), ``object_class``, ``format``, ``source``,
``header`` and ``id``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
from astropy import units as u
from astropy.io import fits

from astrokit.formats.errors import CorruptFileError, FormatError, UnknownFormatError
from astrokit.formats.fitsio import is_fits, load_bytes, open_fits

log = logging.getLogger(__name__)

SDSS_FLUX_UNIT = u.Unit("1e-17 erg / (s cm2 Angstrom)")
C_KMS = 299792.458
_WAVE_COLUMNS = ("WAVELENGTH", "WAVE", "LAMBDA", "LOGLAM", "LOGLAMBDA")


def _hdu_names(hdul: fits.HDUList) -> list[str]:
    return [h.name.upper() for h in hdul]


def sniff(hdul: fits.HDUList) -> str | None:
    """Name of the spectrum format of an opened file, from headers only (None: unknown)."""
    names = _hdu_names(hdul)
    h0 = hdul[0].header
    tele = str(h0.get("TELESCOP", "")).upper()
    if tele == "LAMOST":
        if "COADD_B" in names or "COADD_R" in names:
            return "lamost-mrs"
        if h0.get("NAXIS") == 2 and 3 <= int(h0.get("NAXIS2", 0)) <= 5:
            return "lamost-lrs"
        if len(hdul) > 1 and isinstance(hdul[1], fits.BinTableHDU):
            cols = {c.upper() for c in hdul[1].columns.names}
            if {"FLUX", "WAVELENGTH"} <= cols:
                return "lamost-lrs"
    if "FIBERMAP" in names and any(f"{b}_FLUX" in names for b in "BRZ"):
        return "desi-coadd"
    if "COADD" in names and isinstance(hdul[names.index("COADD")], fits.BinTableHDU):
        return "sdss-spec"
    has_coeff = "COEFF0" in h0 and "COEFF1" in h0
    if has_coeff and h0.get("NAXIS") == 2 and int(h0.get("NAXIS2", 0)) > 1:
        return "sdss-spplate"
    if has_coeff and h0.get("NAXIS") == 1 and len(hdul) >= 2:
        return "sdss-1d"
    for h in hdul[1:]:
        if isinstance(h, fits.BinTableHDU):
            cols = {c.upper() for c in h.columns.names}
            if "FLUX" in cols and cols & set(_WAVE_COLUMNS):
                return "table"
    if h0.get("NAXIS") == 1 and "CRVAL1" in h0 and ("CDELT1" in h0 or "CD1_1" in h0):
        return "fits-1d"
    return None


def _mask_from(ivar: np.ndarray | None, flux: np.ndarray, *flags: np.ndarray | None) -> np.ndarray:
    mask = ~np.isfinite(flux)
    if ivar is not None:
        mask |= ~np.isfinite(ivar) | (ivar <= 0)
    for f in flags:
        if f is not None:
            mask |= np.asarray(f) != 0
    return mask


def _make(
    wave: np.ndarray,
    flux: np.ndarray,
    ivar: np.ndarray | None,
    mask: np.ndarray,
    flux_unit: u.UnitBase,
    meta: dict[str, Any],
    name: str,
):
    from astropy.nddata import InverseVariance
    from specutils import Spectrum

    wave = np.asarray(wave, dtype=np.float64)
    flux = np.asarray(flux, dtype=np.float64)
    if wave.shape != flux.shape or wave.ndim != 1 or len(wave) < 2:
        raise CorruptFileError(
            name, f"wavelength shape {wave.shape} does not match flux shape {flux.shape}"
        )
    order = np.argsort(wave, kind="stable")
    if not np.all(np.diff(wave[order]) > 0):
        raise CorruptFileError(name, "wavelengths are not strictly increasing")
    if np.any(order != np.arange(len(order))):
        wave, flux, mask = wave[order], flux[order], mask[order]
        ivar = None if ivar is None else ivar[order]
    if not np.isfinite(flux).any():
        raise CorruptFileError(name, "flux has no finite values")
    flux = np.where(np.isfinite(flux), flux, 0.0)  # masked anyway; keep arithmetic NaN-free
    unc = None
    if ivar is not None:
        ivar = np.where(np.isfinite(ivar) & (ivar > 0), ivar, 0.0)
        unc = InverseVariance(ivar * flux_unit**-2)
    return Spectrum(
        spectral_axis=wave * u.AA,
        flux=flux * flux_unit,
        uncertainty=unc,
        mask=np.asarray(mask, dtype=bool),
        meta=meta,
    )


def _meta(fmt: str, name: str, header: fits.Header, *, z=None, cls=None, obj_id=None) -> dict:
    z = None if z is None or not np.isfinite(float(z)) else float(z)
    cls = None if cls is None or str(cls).strip() == "" else str(cls).strip()
    return {
        "redshift": z,
        "object_class": cls,
        "format": fmt,
        "source": name,
        "header": header,
        "id": str(obj_id) if obj_id is not None else name.rsplit("/", 1)[-1],
    }


def _unit_from(text: Any, default: u.UnitBase, name: str) -> u.UnitBase:
    if not text:
        return default
    import warnings

    fixed = str(text).replace("Angstrom", "Ang").replace("Ang", "Angstrom")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SDSS's "1E-17 erg/cm^2/s/Ang" has many slashes
            return u.Unit(fixed, parse_strict="raise")
    except ValueError:
        log.debug("%s: unparseable flux unit %r, using %s", name, text, default)
        return default


# --- the readers ------------------------------------------------------------------------------
def _lamost_lrs(hdul, name, **_):
    h0 = hdul[0].header
    if h0.get("NAXIS") == 2:
        data = np.asarray(hdul[0].data, dtype=np.float64)
        if data.shape[0] < 3:
            raise CorruptFileError(name, f"LAMOST LRS image has {data.shape[0]} rows, expected 5")
        flux, ivar, wave = data[0], data[1], data[2]
        andmask = data[3] if data.shape[0] > 3 else None
    else:
        row = hdul[1].data[0]
        cols = {c.upper(): c for c in hdul[1].columns.names}
        flux = np.asarray(row[cols["FLUX"]], dtype=np.float64)
        wave = np.asarray(row[cols["WAVELENGTH"]], dtype=np.float64)
        ivar = np.asarray(row[cols["IVAR"]], dtype=np.float64) if "IVAR" in cols else None
        andmask = np.asarray(row[cols["ANDMASK"]]) if "ANDMASK" in cols else None
    mask = _mask_from(ivar, flux, andmask)
    meta = _meta(
        "lamost-lrs",
        name,
        h0,
        z=h0.get("Z"),
        cls=h0.get("CLASS"),
        obj_id=h0.get("OBSID", h0.get("OBJNAME")),
    )
    meta["subclass"] = h0.get("SUBCLASS")
    meta["note"] = "LAMOST fluxes are relatively calibrated"
    return _make(wave, flux, ivar, mask, SDSS_FLUX_UNIT, meta, name)


def _lamost_mrs(hdul, name, band: str | None = None, **_):
    h0 = hdul[0].header
    names = _hdu_names(hdul)
    arms = ["B", "R"] if band is None else [band.upper()]
    parts = []
    for arm in arms:
        ext = f"COADD_{arm}"
        if ext not in names:
            raise FormatError(name, f"LAMOST MRS file has no {ext} extension (band={band!r})")
        t = hdul[ext].data
        flux = np.asarray(t["FLUX"], dtype=np.float64).ravel()
        ivar = np.asarray(t["IVAR"], dtype=np.float64).ravel()
        wave = 10 ** np.asarray(t["LOGLAM"], dtype=np.float64).ravel()
        andmask = np.asarray(t["ANDMASK"]).ravel() if "ANDMASK" in t.columns.names else None
        parts.append((wave, flux, ivar, _mask_from(ivar, flux, andmask)))
    wave, flux, ivar, mask = (np.concatenate([p[i] for p in parts]) for i in range(4))
    rv = h0.get("HELIO_RV")
    z = float(rv) / C_KMS if rv is not None else None  # MRS headers carry an RV, not a Z
    meta = _meta(
        "lamost-mrs",
        name,
        h0,
        z=z,
        cls=h0.get("CLASS", h0.get("OBJTYPE")),
        obj_id=h0.get("OBSID", h0.get("OBJNAME")),
    )
    meta["band"] = "".join(arms)
    return _make(wave, flux, ivar, mask, u.dimensionless_unscaled, meta, name)


_SDSS_SPEC_COLUMNS = ("flux", "loglam", "ivar", "and_mask")


def _sdss_spec(hdul, name, **_):
    """specutils' ``SDSS-III/IV spec`` loader, plus the catalogue redshift and bad-ivar mask."""
    from specutils.io.default_loaders.sdss import spec_loader

    coadd = hdul["COADD"]
    have = {c.lower() for c in coadd.columns.names}
    missing = [c for c in _SDSS_SPEC_COLUMNS if c not in have]
    if missing:
        raise CorruptFileError(
            name, f"SDSS spec COADD table lacks {missing}; expected columns {_SDSS_SPEC_COLUMNS}"
        )
    h0 = hdul[0].header.copy()
    # SDSS writes "1E-17 erg/cm^2/s/Ang", which astropy may refuse: hand specutils a clean unit
    h0["BUNIT"] = _unit_from(h0.get("BUNIT"), SDSS_FLUX_UNIT, name).to_string()
    # specutils reads the spectrum from HDU 1: hand it the COADD table there
    spec = spec_loader(fits.HDUList([fits.PrimaryHDU(header=h0), coadd]))
    flux = spec.flux.value
    ivar = spec.uncertainty.array
    z = cls = obj_id = None
    names = _hdu_names(hdul)
    for ext in ("SPECOBJ", "SPALL"):
        if ext in names:
            row = hdul[ext].data[0]
            cn = {c.upper(): c for c in hdul[ext].columns.names}
            z = row[cn["Z"]] if "Z" in cn else None
            cls = row[cn["CLASS"]] if "CLASS" in cn else None
            obj_id = row[cn["SPECOBJID"]] if "SPECOBJID" in cn else None
            break
    meta = _meta("sdss-spec", name, hdul[0].header, z=z, cls=cls, obj_id=obj_id)
    wave = spec.spectral_axis.to_value(u.AA)
    mask = _mask_from(ivar, flux, spec.mask)
    return _make(wave, flux, ivar, mask, spec.flux.unit, meta, name)


def _coeff_wave(header, npix: int) -> np.ndarray:
    return 10 ** (float(header["COEFF0"]) + float(header["COEFF1"]) * np.arange(npix))


#: spPlate's extensions after the flux image, at their SDSS data-model positions; specutils'
#: ``SDSS spPlate`` loader reads IVAR, ANDMASK and PLUGMAP, by position
_SPPLATE_HDUS = {"IVAR": 1, "ANDMASK": 2, "ORMASK": 3, "WAVEDISP": 4, "PLUGMAP": 5}
_SPPLATE_LOADER_HDUS = ("IVAR", "ANDMASK", "PLUGMAP")
#: extensions that may carry a catalogue redshift per fiber (Z, CLASS; FIBERID picks the row)
_SPPLATE_CATALOGUES = ("SPZBEST", "ZBEST", "SPZALL", "SPALL", "SPECOBJ", "PLUGMAP")


def _spplate_hdu(hdul, ext: str):
    """spPlate extension ``ext``: by EXTNAME, else the unnamed HDU of the right kind (image;
    table for PLUGMAP) at its data-model position; None if there is neither."""
    names = _hdu_names(hdul)
    if ext in names:
        return hdul[names.index(ext)]
    pos = _SPPLATE_HDUS[ext]
    kind = fits.BinTableHDU if ext == "PLUGMAP" else fits.ImageHDU
    if len(hdul) > pos and names[pos] == "" and isinstance(hdul[pos], kind):
        return hdul[pos]
    return None


def _spplate_catalogue(hdul, fiber: int, nfib: int):
    """(z, class) of ``fiber`` from a catalogue table in the file; (None, None) if none has it."""
    names = _hdu_names(hdul)
    for ext in _SPPLATE_CATALOGUES:
        if ext == "PLUGMAP":
            hdu = _spplate_hdu(hdul, ext)
        else:
            hdu = hdul[names.index(ext)] if ext in names else None
        if not isinstance(hdu, fits.BinTableHDU) or hdu.data is None:
            continue
        cn = {c.upper(): c for c in hdu.columns.names}
        if "Z" not in cn:
            continue
        if "FIBERID" in cn:
            rows = np.flatnonzero(np.asarray(hdu.data[cn["FIBERID"]]) == fiber)
        else:  # one row per fiber, in fiber order
            rows = [fiber - 1] if len(hdu.data) == nfib else []
        if len(rows):
            row = hdu.data[rows[0]]
            return row[cn["Z"]], (row[cn["CLASS"]] if "CLASS" in cn else None)
    return None, None


def _sdss_spplate(hdul, name, fiber: int | None = None, **_):
    """specutils' ``SDSS spPlate`` loader for one fiber, plus the fiber pick, catalogue redshift,
    bad-ivar mask and checks naming what is missing; flux-only files are read here."""
    import warnings

    h0 = hdul[0].header
    data = hdul[0].data
    if data is None or data.ndim != 2:
        raise CorruptFileError(name, "spPlate primary HDU is not a 2-D (fibers x pixels) image")
    missing = [k for k in ("COEFF0", "COEFF1") if k not in h0]
    if missing:
        raise CorruptFileError(name, f"spPlate header lacks {missing} (log10 wavelength solution)")
    nfib, npix = data.shape
    fiber = 1 if fiber is None else int(fiber)
    if not 1 <= fiber <= nfib:
        raise FormatError(name, f"fiber={fiber} out of range: spPlate has fibers 1..{nfib}")
    row = slice(fiber - 1, fiber)
    unit = _unit_from(h0.get("BUNIT"), SDSS_FLUX_UNIT, name)
    plate = h0.get("PLATEID", "")
    z, cls = _spplate_catalogue(hdul, fiber, nfib)
    obj_id = f"{plate}-{h0.get('MJD', '')}-{fiber:04d}"
    meta = _meta("sdss-spplate", name, h0, z=z, cls=cls, obj_id=obj_id)
    meta["fiber"] = fiber
    # specutils' loader puts pixel i at 10**(COEFF0 + COEFF1 * (i + 1)) (specutils 2.4: its
    # log-WCS conversion drops CRPIX1 = 1), one pixel off the data model's
    # 10**(COEFF0 + COEFF1 * i): the wavelengths come from COEFF0/COEFF1 here
    wave = _coeff_wave(h0, npix)
    hdus = {ext: _spplate_hdu(hdul, ext) for ext in _SPPLATE_HDUS}
    if hdus["IVAR"] is None:
        # Flux only (as pydl's test file spPlate-4055-55359-0020.fits, a primary HDU alone):
        # specutils' loader needs IVAR, ANDMASK and PLUGMAP, so the flux row is read here.
        flux = np.asarray(data[fiber - 1], dtype=np.float64)
        return _make(wave, flux, None, _mask_from(None, flux), unit, meta, name)
    lacking = [
        f"{ext} (HDU {_SPPLATE_HDUS[ext]})" for ext in _SPPLATE_LOADER_HDUS if hdus[ext] is None
    ]
    if lacking:
        raise CorruptFileError(
            name,
            f"spPlate has IVAR but lacks {', '.join(lacking)}; specutils' spPlate loader reads "
            f"{', '.join(_SPPLATE_LOADER_HDUS)}",
        )
    for ext in ("IVAR", "ANDMASK"):
        shape = getattr(hdus[ext].data, "shape", None)
        if shape != data.shape:
            raise CorruptFileError(name, f"spPlate {ext} shape {shape} != flux shape {data.shape}")
    plugmap = hdus["PLUGMAP"]
    if not isinstance(plugmap, fits.BinTableHDU) or plugmap.data is None:
        raise CorruptFileError(name, "spPlate PLUGMAP is not a binary table")
    if len(plugmap.data) != nfib:
        raise CorruptFileError(
            name, f"spPlate PLUGMAP has {len(plugmap.data)} rows for {nfib} fibers"
        )
    header = h0.copy()
    # a unit astropy parses (SDSS writes "1E-17 erg/cm^2/s/Ang"), and the WCS keywords the
    # loader builds its axis from, as the data model defines them from COEFF0/COEFF1
    header["BUNIT"] = unit.to_string()
    header.update(CRVAL1=h0["COEFF0"], CD1_1=h0["COEFF1"], CRPIX1=1, CTYPE1="LINEAR")
    header["DC-FLAG"] = 1
    # this fiber's rows, at the positions the loader reads them (ORMASK/WAVEDISP: not read)
    plate_hdus = fits.HDUList(
        [
            fits.PrimaryHDU(data[row], header=header),
            fits.ImageHDU(hdus["IVAR"].data[row], name="IVAR"),
            fits.ImageHDU(hdus["ANDMASK"].data[row], name="ANDMASK"),
            fits.ImageHDU(name="ORMASK"),
            fits.ImageHDU(name="WAVEDISP"),
            fits.BinTableHDU(plugmap.data[row], header=plugmap.header),
        ]
    )
    from specutils.io.default_loaders.sdss import spPlate_loader

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # FITSFixedWarning on SDSS headers (RADECSYS, ...)
        spec = spPlate_loader(plate_hdus)
    flux = np.asarray(spec.flux.value[0], dtype=np.float64)
    ivar = np.asarray(spec.uncertainty.array[0], dtype=np.float64)
    plug = spec.meta["plugmap"]
    meta["plugmap"] = {c: plug[c][0] for c in plug.colnames}  # this fiber's row
    mask = _mask_from(ivar, flux, spec.mask[0])
    return _make(wave, flux, ivar, mask, spec.flux.unit, meta, name)


def _sdss_1d(hdul, name, **_):
    h0 = hdul[0].header
    flux = np.asarray(hdul[0].data, dtype=np.float64)
    ivar = np.asarray(hdul[1].data, dtype=np.float64) if hdul[1].data is not None else None
    if ivar is not None and ivar.shape != flux.shape:
        raise CorruptFileError(name, f"ivar shape {ivar.shape} != flux shape {flux.shape}")
    wave = _coeff_wave(h0, flux.size)
    if len(hdul) > 2 and getattr(hdul[2].data, "shape", None) == flux.shape:
        loglam = np.asarray(hdul[2].data, dtype=np.float64)
        if np.all(np.abs(10**loglam - wave) < 1.0):  # HDU 2 is log10(lambda): trust it
            wave = 10**loglam
    meta = _meta("sdss-1d", name, h0, z=h0.get("Z"), cls=h0.get("CLASS"), obj_id=h0.get("NAME"))
    unit = _unit_from(h0.get("BUNIT"), SDSS_FLUX_UNIT, name)
    return _make(wave, flux, ivar, _mask_from(ivar, flux), unit, meta, name)


def _desi_coadd(hdul, name, band: str | None = None, index: int | None = None, **_):
    """specutils' DESI loader (one Spectrum per arm), one target, arms combined by default."""
    import warnings

    from specutils.io.default_loaders.desi import coadd_loader

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # REDSHIFTS etc.: "unexpected HDU, not read"
            spectra = coadd_loader(hdul)
    except (KeyError, ValueError, TypeError) as exc:
        raise CorruptFileError(name, f"DESI coadd unreadable by specutils ({exc})") from exc
    arms = {s.meta.get("band"): s for s in spectra}
    wanted = "".join(sorted(set(arms if band is None else band.lower()), key="brz".find))
    unknown = [b for b in wanted if b not in arms]
    if unknown or not wanted:
        raise FormatError(
            name, f"band={band!r}: this DESI file has arms {sorted(arms)} (b, r, z or several)"
        )
    ntarget = np.atleast_2d(arms[wanted[0]].flux.value).shape[0]
    index = 0 if index is None else int(index)
    if not 0 <= index < ntarget:
        raise FormatError(name, f"index={index} out of range: {ntarget} targets (0-based)")
    parts = []
    for arm in wanted:
        spec = arms[arm]
        flux = np.atleast_2d(spec.flux.value)[index].astype(np.float64)
        ivar = np.atleast_2d(spec.uncertainty.array)[index].astype(np.float64)
        flags = np.atleast_2d(spec.mask)[index] if spec.mask is not None else None
        wave = spec.spectral_axis.to_value(u.AA)
        parts.append((wave, flux, ivar, _mask_from(ivar, flux, flags)))
    wave, flux, ivar, mask = parts[0] if len(parts) == 1 else _combine_arms(parts)
    h0 = hdul[0].header
    fibermap = hdul["FIBERMAP"].data
    target = fibermap["TARGETID"][index] if "TARGETID" in fibermap.columns.names else index
    z = None
    for ext in ("REDSHIFTS", "ZCATALOG"):
        if ext in _hdu_names(hdul):
            z = hdul[ext].data["Z"][index]
    meta = _meta("desi-coadd", name, h0, z=z, obj_id=target)
    meta.update(band=wanted, index=index)
    return _make(wave, flux, ivar, mask, arms[wanted[0]].flux.unit, meta, name)


def _combine_arms(parts, tol: float = 1e-3):
    """Arms on one wavelength axis, the DESI way (``desispec.coaddition.coadd_cameras``).

    The union of the arms' pixels; where arms overlap on the same wavelength (within ``tol``
    Angstrom: DESI's arms share one 0.8 A grid) the flux is the inverse-variance weighted mean
    of the good pixels and the inverse variance their sum. A pixel no arm measured well keeps
    the plain mean and is masked.
    """
    waves = np.concatenate([p[0] for p in parts])
    grid = np.unique(np.round(waves / tol).astype(np.int64))
    n = grid.size
    wsum = np.zeros(n)
    fsum = np.zeros(n)
    plain = np.zeros(n)
    count = np.zeros(n)
    wave_sum = np.zeros(n)
    for wave, flux, ivar, mask in parts:
        at = np.searchsorted(grid, np.round(wave / tol).astype(np.int64))
        good = ~mask
        weight = np.where(good, ivar, 0.0)
        np.add.at(wsum, at, weight)
        np.add.at(fsum, at, weight * np.where(good, flux, 0.0))
        np.add.at(plain, at, np.where(np.isfinite(flux), flux, 0.0))
        np.add.at(count, at, 1)
        np.add.at(wave_sum, at, wave)
    measured = wsum > 0
    flux = np.where(measured, fsum / np.where(measured, wsum, 1.0), plain / count)
    return wave_sum / count, flux, wsum, ~measured


_ERROR_COLUMNS = ("ERROR", "ERR", "SIGMA", "UNCERTAINTY")


def _wave_unit(text: Any, name: str, column: str) -> u.UnitBase:
    """The unit of a wavelength column: Angstrom where none is given; a typed error if it is
    not a spectral unit."""
    if not text:
        return u.AA
    fixed = str(text).replace("Angstrom", "Ang").replace("Ang", "Angstrom")
    try:
        unit = u.Unit(fixed, parse_strict="raise")
        (1 * unit).to(u.AA, equivalencies=u.spectral())
    except (ValueError, u.UnitConversionError) as exc:
        raise CorruptFileError(
            name, f"wavelength column {column!r} has unit {text!r}, not a spectral unit"
        ) from exc
    return unit


def _table(hdul, name, **_):
    """The first binary table with a wavelength column (:data:`_WAVE_COLUMNS`) and ``FLUX``."""
    for h in hdul[1:]:
        if not isinstance(h, fits.BinTableHDU):
            continue
        cols = {c.upper(): c for c in h.columns.names}
        wcol = next((cols[c] for c in _WAVE_COLUMNS if c in cols), None)
        if wcol is not None and "FLUX" in cols:
            return _table_spectrum(h, hdul[0].header, cols, wcol, name)
    raise FormatError(name, "no binary table with wavelength and FLUX columns")


def _table_spectrum(h: fits.BinTableHDU, h0: fits.Header, cols: dict, wcol: str, name: str):
    """specutils' ``tabular-fits`` loader, with the column mapping our column names give.

    Here: the columns (``wcol``, ``FLUX``, ``IVAR`` or an error column, ``MASK``), their checks
    and units (Angstrom and the header's ``BUNIT`` where the columns have none; SDSS's unit
    spellings); specutils builds the spectrum from the mapped columns. It is handed 1-D
    columns without units, the units in the mapping: astropy's FITS unit parser refuses scale
    factors ("1e-17 erg / (s cm2 Angstrom)"), a one-row table of arrays would come out 2-D,
    and log10 wavelengths are no spectral axis. IVAR is read here: the loader knows only
    standard-deviation uncertainties.
    """
    import warnings

    from specutils.io.default_loaders.tabular_fits import tabular_fits_loader

    fcol = cols["FLUX"]
    icol = cols.get("IVAR")
    ecol = None if icol else next((cols[c] for c in _ERROR_COLUMNS if c in cols), None)
    mcol = cols.get("MASK")
    loglam = wcol.upper().startswith("LOGLAM")
    wunit = u.AA if loglam else _wave_unit(h.columns[wcol].unit, name, wcol)
    funit = _unit_from(h.columns[fcol].unit or h0.get("BUNIT"), u.dimensionless_unscaled, name)
    arrays = {
        c: np.asarray(h.data[c], dtype=np.int64 if c == mcol else np.float64).ravel()
        for c in (wcol, fcol, icol, ecol, mcol)
        if c is not None
    }
    if loglam:
        arrays[wcol] = 10 ** arrays[wcol]
    sizes = {c: a.size for c, a in arrays.items()}
    if len(set(sizes.values())) != 1:
        raise CorruptFileError(name, f"table columns differ in length: {sizes}")
    order = np.argsort(arrays[wcol], kind="stable")
    if not np.all(np.diff(arrays[wcol][order]) > 0):
        raise CorruptFileError(name, f"wavelengths ({wcol}) are not strictly increasing")
    arrays = {c: a[order] for c, a in arrays.items()}
    mapping = {wcol: ("spectral_axis", wunit), fcol: ("flux", funit)}
    if ecol is not None:
        mapping[ecol] = ("uncertainty", funit)
    if mcol is not None:
        mapping[mcol] = ("mask", None)
    table = fits.BinTableHDU.from_columns(
        [fits.Column(c, "K" if c == mcol else "D", array=arrays[c]) for c in mapping]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # FITSFixedWarning: a table header is no WCS
        spec = tabular_fits_loader(
            fits.HDUList([fits.PrimaryHDU(), table]), column_mapping=mapping, hdu=1
        )
    flux = np.asarray(spec.flux.value, dtype=np.float64)
    wave = spec.spectral_axis.to_value(u.AA, equivalencies=u.spectral())
    ivar = arrays.get(icol)
    if ivar is None and spec.uncertainty is not None:
        err = np.asarray(spec.uncertainty.array, dtype=np.float64)
        with np.errstate(divide="ignore"):
            ivar = np.where(err > 0, 1.0 / err**2, 0.0)
    meta = _meta("table", name, h0, z=h0.get("Z"), cls=h0.get("CLASS"), obj_id=h0.get("OBJID"))
    return _make(wave, flux, ivar, _mask_from(ivar, flux, spec.mask), spec.flux.unit, meta, name)


def _fits_1d(hdul, name, **_):
    h0 = hdul[0].header
    unit = _unit_from(h0.get("BUNIT"), u.dimensionless_unscaled, name)
    meta = _meta(
        "fits-1d",
        name,
        h0,
        z=h0.get("Z", h0.get("REDSHIFT")),
        cls=h0.get("CLASS"),
        obj_id=h0.get("OBJECT"),
    )
    if int(h0.get("DC-FLAG", 0)) != 1:  # linear WCS: specutils' wcs1d-fits loader
        from specutils.io.default_loaders.wcs_fits import wcs1d_fits_loader

        header = h0.copy()
        header["BUNIT"] = unit.to_string()  # a unit astropy can parse (ours, with fallback)
        spec = wcs1d_fits_loader(
            fits.HDUList([fits.PrimaryHDU(hdul[0].data, header=header)]), hdu=0
        )
        wave = spec.spectral_axis.to_value(u.AA, equivalencies=u.spectral())
        flux = np.asarray(spec.flux.value, dtype=np.float64)
        return _make(wave, flux, None, _mask_from(None, flux), unit, meta, name)
    # IRAF's log-linear axis (DC-FLAG = 1), which the wcs1d-fits loader does not read
    flux = np.asarray(hdul[0].data, dtype=np.float64)
    step = float(h0.get("CDELT1", h0.get("CD1_1")))
    pix = np.arange(flux.size) + 1 - float(h0.get("CRPIX1", 1))
    wave = float(h0["CRVAL1"]) + step * pix
    wave = 10**wave
    wunit = h0.get("CUNIT1")
    if wunit:
        wave = (wave * u.Unit(wunit)).to_value(u.AA, equivalencies=u.spectral())
    return _make(wave, flux, None, _mask_from(None, flux), unit, meta, name)


def _text(data: bytes, name: str):
    from astropy.io import ascii
    from astropy.table import Table

    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnknownFormatError(name, "neither FITS nor a text table (binary content)") from exc
    first = text.lstrip().splitlines()[0] if text.strip() else ""
    if text.startswith("# %ECSV"):
        fmt = "ecsv"
    elif "," in first:
        fmt = "csv"
    else:
        fmt = "basic"
    try:
        t = Table(ascii.read(text, format=fmt))
    except Exception as exc:  # astropy's ascii readers raise many types
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise UnknownFormatError(
            name, f"neither FITS nor a readable text table ({fmt}: {reason})"
        ) from exc
    cols = {c.lower(): c for c in t.colnames}
    wcol = next((cols[c] for c in ("wavelength", "wave", "lambda", "lam") if c in cols), None)
    if wcol is None or "flux" not in cols:
        raise UnknownFormatError(
            name, f"text table needs 'wavelength' and 'flux' columns, has {t.colnames}"
        )
    wave = np.asarray(t[wcol], dtype=np.float64)
    if t[wcol].unit is not None:
        wave = (wave * t[wcol].unit).to_value(u.AA, equivalencies=u.spectral())
    flux = np.asarray(t[cols["flux"]], dtype=np.float64)
    ivar = None
    if "ivar" in cols:
        ivar = np.asarray(t[cols["ivar"]], dtype=np.float64)
    elif "error" in cols or "uncertainty" in cols:
        err = np.asarray(t[cols.get("error") or cols["uncertainty"]], dtype=np.float64)
        with np.errstate(divide="ignore"):
            ivar = np.where(err > 0, 1.0 / err**2, 0.0)
    flags = np.asarray(t[cols["mask"]]) if "mask" in cols else None
    unit = t[cols["flux"]].unit or u.dimensionless_unscaled
    z = t.meta.get("redshift", t.meta.get("z")) if t.meta else None
    meta = _meta("text", name, fits.Header(), z=z, cls=(t.meta or {}).get("object_class"))
    return _make(wave, flux, ivar, _mask_from(ivar, flux, flags), unit, meta, name)


READERS: dict[str, Callable[..., Any]] = {
    "lamost-lrs": _lamost_lrs,
    "lamost-mrs": _lamost_mrs,
    "sdss-spec": _sdss_spec,
    "sdss-spplate": _sdss_spplate,
    "sdss-1d": _sdss_1d,
    "desi-coadd": _desi_coadd,
    "table": _table,
    "fits-1d": _fits_1d,
}


def read_spectrum(
    source: Any,
    *,
    store: Any = None,
    format: str | None = None,
    fiber: int | None = None,
    band: str | None = None,
    index: int | None = None,
):
    """Read one spectrum from a URL, path, bytes or file-like object.

    Parameters
    ----------
    source : str, bytes or file-like
        ``file://``/``s3://`` URL, local path, or the file's content.
    store : Store, optional
        Store to read through (default: resolved from the URL and environment).
    format : str, optional
        Force a format (see the module docstring); default: sniffed from the headers.
    fiber : int, optional
        spPlate only: 1-based fiber number (default 1).
    band : str, optional
        LAMOST MRS arm (``"B"``/``"R"``, default both) or DESI arm(s) (``"b"``/``"r"``/``"z"``
        or several, e.g. ``"rz"``; default all three combined on one wavelength axis).
    index : int, optional
        DESI only: 0-based target row (default 0).

    Returns
    -------
    specutils.Spectrum

    Raises
    ------
    UnknownFormatError
        No reader recognises the file.
    CorruptFileError
        Truncated, not FITS/text, or unusable content.
    FormatError
        Bad selection (fiber/band/index) or unreadable source; all name the file.
    """
    data, name = load_bytes(source, store)
    if not is_fits(data):
        if format not in (None, "text"):
            raise CorruptFileError(name, f"not a FITS file, cannot read as {format!r}")
        return _text(data, name)
    with open_fits(data, name) as hdul:
        fmt = format or sniff(hdul)
        if fmt is None:
            raise UnknownFormatError(
                name, f"not a recognised spectrum layout; supported: {', '.join(READERS)}, text"
            )
        if fmt not in READERS:
            raise FormatError(name, f"unknown format {fmt!r}; expected one of {sorted(READERS)}")
        try:
            return READERS[fmt](hdul, name, fiber=fiber, band=band, index=index)
        except FormatError:
            raise
        except (KeyError, IndexError, ValueError, TypeError, AttributeError) as exc:
            raise CorruptFileError(
                name, f"not a valid {fmt} file ({type(exc).__name__}: {exc})"
            ) from exc
