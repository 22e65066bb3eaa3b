"""A small DESI ``coadd`` file in the DESI data model, written by the tests themselves.

The layout specutils' DESI loader reads (``PRIMARY``, ``FIBERMAP``, per arm ``X_WAVELENGTH``,
``X_FLUX``, ``X_IVAR``, ``X_MASK``, ``X_RESOLUTION``, ``SCORES``), with DESI's arm ranges on
its shared 0.8 A grid: b 3600-5800 A, r 5760-7620 A, z 7520-9824 A (so b/r and r/z overlap).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.io import fits

__all__ = ["ARMS", "write_desi_coadd"]

#: (first, last) wavelength of each arm in Angstrom, as in DESI's coadds.
ARMS = {"b": (3600.0, 5800.0), "r": (5760.0, 7620.0), "z": (7520.0, 9824.0)}
STEP = 0.8


def arm_wave(arm: str) -> np.ndarray:
    first, last = ARMS[arm]
    return first + STEP * np.arange(round((last - first) / STEP) + 1)


def write_desi_coadd(
    path: Path,
    *,
    flux: dict[str, float],
    ivar: dict[str, float],
    targets: int = 2,
    masked: dict[str, list[float]] | None = None,
    redshifts: list[float] | None = None,
) -> Path:
    """Write a coadd whose arm ``x`` has constant ``flux[x]`` and ``ivar[x]`` (target k: +k).

    ``masked[x]`` lists wavelengths whose pixel is flagged in arm ``x``'s MASK.
    """
    primary = fits.PrimaryHDU()
    primary.header["INFIL000"] = "spectra-test.fits"  # a coadd, in specutils' terms
    fibermap = fits.BinTableHDU.from_columns(
        [fits.Column("TARGETID", "K", array=np.arange(targets) + 39627000000000000)],
        name="FIBERMAP",
    )
    hdus = [primary, fibermap]
    unit = "10**-17 erg/(s cm2 Angstrom)"
    for arm in ARMS:
        wave = arm_wave(arm)
        shape = (targets, wave.size)
        f = np.full(shape, flux[arm], np.float32) + np.arange(targets)[:, None]
        iv = np.full(shape, ivar[arm], np.float32)
        mask = np.zeros(shape, np.int32)
        for lam in (masked or {}).get(arm, []):
            mask[:, np.argmin(np.abs(wave - lam))] = 1
        up = arm.upper()
        hdus += [
            fits.ImageHDU(wave, name=f"{up}_WAVELENGTH"),
            fits.ImageHDU(f, name=f"{up}_FLUX"),
            fits.ImageHDU(iv, name=f"{up}_IVAR"),
            fits.ImageHDU(mask, name=f"{up}_MASK"),
            fits.ImageHDU(np.zeros((targets, 11, wave.size), np.float32), name=f"{up}_RESOLUTION"),
        ]
        hdus[-5].header["BUNIT"] = "Angstrom"
        hdus[-4].header["BUNIT"] = unit
        hdus[-3].header["BUNIT"] = "10**+34 (s2 cm4 Angstrom2) / erg2"
    hdus.append(
        fits.BinTableHDU.from_columns(
            [fits.Column("TARGETID", "K", array=np.arange(targets))], name="SCORES"
        )
    )
    if redshifts is not None:
        hdus.append(
            fits.BinTableHDU.from_columns(
                [fits.Column("Z", "D", array=np.asarray(redshifts))], name="REDSHIFTS"
            )
        )
    fits.HDUList(hdus).writeto(path)
    return path
