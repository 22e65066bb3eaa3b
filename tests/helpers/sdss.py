"""A complete SDSS/BOSS ``spPlate`` file, written by the tests from a real flux-only one.

pydl's ``spPlate-4055-55359-0020.fits`` (20 BOSS fibers, the tests' only real spPlate) has the
flux image alone. :func:`write_spplate` adds the extensions of the SDSS data model that
specutils' ``SDSS spPlate`` loader reads, at their positions: IVAR (HDU 1), ANDMASK (2),
ORMASK (3), WAVEDISP (4), PLUGMAP (5), then SKY (6) and optionally a redshift catalogue
(``SPZBEST``: FIBERID, Z, CLASS). The primary header (COEFF0/COEFF1, BUNIT
``1E-17 erg/cm^2/s/Ang``, CRVAL1/CD1_1) is the real file's.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
from astropy.io import fits

__all__ = ["EXTENSIONS", "write_spplate"]

#: the extensions after the flux image, in the data model's order
EXTENSIONS = ("IVAR", "ANDMASK", "ORMASK", "WAVEDISP", "PLUGMAP", "SKY")
OBJTYPES = ("QSO", "SKY", "GALAXY", "SPECTROPHOTO_STD")  # fiber 7: GALAXY, 9: QSO


def write_spplate(
    path: Path,
    source: Path,
    *,
    named: bool = True,
    drop: Iterable[str] = (),
    bad_ivar: dict[int, slice] | None = None,
    andmask: dict[int, list[int]] | None = None,
    ormask: dict[int, list[int]] | None = None,
    redshifts: dict[int, tuple[float, str]] | None = None,
) -> Path:
    """Write ``source``'s flux with the data model's extensions to ``path``.

    Fiber ``k`` (1-based) has inverse variance ``k`` everywhere except the pixels
    ``bad_ivar[k]`` (0); ``andmask[k]``/``ormask[k]`` list the pixels with a mask bit set.
    ``named=False`` leaves the extensions without EXTNAME (known by position only);
    ``drop`` leaves extensions out (later ones move up). ``redshifts`` maps fibers to
    (Z, CLASS) in an ``SPZBEST`` table after the data model's HDUs.
    """
    with fits.open(source) as h:
        header = h[0].header.copy()
        flux = np.asarray(h[0].data, dtype=np.float32)
    nfib, npix = flux.shape
    fibers = np.arange(1, nfib + 1)
    ivar = np.repeat(fibers[:, None], npix, axis=1).astype(np.float32)
    for k, pix in (bad_ivar or {}).items():
        ivar[k - 1, pix] = 0
    masks = {}
    for ext, bits in (("ANDMASK", andmask), ("ORMASK", ormask)):
        m = np.zeros((nfib, npix), np.int32)
        for k, pixels in (bits or {}).items():
            m[k - 1, pixels] = 1 << 23  # BRIGHTSKY
        masks[ext] = m
    plugmap = fits.BinTableHDU.from_columns(
        [
            fits.Column("OBJTYPE", "16A", array=[OBJTYPES[i % 4] for i in range(nfib)]),
            fits.Column("RA", "D", array=236.4 + 0.01 * fibers),
            fits.Column("DEC", "D", array=1.8 + 0.01 * fibers),
            fits.Column("MAG", "5E", array=np.full((nfib, 5), 20.0, np.float32)),
            fits.Column("FIBERID", "J", array=fibers),
        ]
    )
    extensions = {
        "IVAR": fits.ImageHDU(ivar),
        "ANDMASK": fits.ImageHDU(masks["ANDMASK"]),
        "ORMASK": fits.ImageHDU(masks["ORMASK"]),
        "WAVEDISP": fits.ImageHDU(np.full((nfib, npix), 1.1, np.float32)),
        "PLUGMAP": plugmap,
        "SKY": fits.ImageHDU(np.ones((nfib, npix), np.float32)),
    }
    hdus = [fits.PrimaryHDU(flux, header=header)]
    for ext in EXTENSIONS:
        if ext in drop:
            continue
        hdu = extensions[ext]
        if named:
            hdu.name = ext
        hdus.append(hdu)
    if redshifts:
        ks = sorted(redshifts)
        hdus.append(
            fits.BinTableHDU.from_columns(
                [
                    fits.Column("FIBERID", "J", array=ks),
                    fits.Column("Z", "E", array=[redshifts[k][0] for k in ks]),
                    fits.Column("CLASS", "6A", array=[redshifts[k][1] for k in ks]),
                ],
                name="SPZBEST",
            )
        )
    fits.HDUList(hdus).writeto(path)
    return path
