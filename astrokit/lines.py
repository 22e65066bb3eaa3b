"""The one table of spectral lines: what the synthetic spectra draw and the viewer marks.

Convention: **vacuum** rest wavelengths in Angstrom, as SDSS, BOSS, DESI and LAMOST spectra
are calibrated (the values are the commonly tabulated vacuum wavelengths, as in SDSS's
spectroscopic line list, rounded to 0.01 Å). Air wavelengths, the ones many line names quote
(H-alpha 6562.8, [O III] 5006.8), sit ~1.8 Å lower at H-alpha; convert them with
:func:`air_to_vacuum` rather than mixing the two. The synthetic survey
(:mod:`astrokit.survey`) and the active-learning task (:mod:`astrokit.active.synthetic`), both
drawn by :mod:`astrokit.synthetic_spectra`, and the spectrum viewer's markers all read this
table, so a marker sits on the line a synthetic spectrum drew.

Close doublets that no survey resolves at R ~ 2000 ([O II] 3726/3729, Na I D) are given as one
blended line. Lines of one name ([O III] 4960/5008, [N II], [S II]) are told apart by
wavelength: ``find_line("[O III]", near=5008)``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from astrokit.errors import UserError

__all__ = [
    "SPECTRAL_LINES",
    "LineNotFoundError",
    "SpectralLine",
    "air_to_vacuum",
    "find_line",
    "lines_in_range",
]

LineKind = Literal["emission", "absorption"]


@dataclass(frozen=True)
class SpectralLine:
    """One line: a name, its rest vacuum wavelength and whether it is usually seen in emission.

    ``kind`` is how the viewer draws the marker; a generator may use a line either way (the
    Balmer lines are absorption features of older stellar populations, too).
    """

    name: str
    rest_wavelength: float  # Angstrom, vacuum
    kind: LineKind

    def observed(self, z: float) -> float:
        """Observed-frame wavelength (Angstrom) of this line at redshift ``z``."""
        return self.rest_wavelength * (1.0 + z)


SPECTRAL_LINES: tuple[SpectralLine, ...] = (
    SpectralLine("Lyα", 1215.67, "emission"),  # noqa: RUF001 (Greek letters are the names)
    SpectralLine("C IV", 1549.48, "emission"),
    SpectralLine("C III]", 1908.73, "emission"),
    SpectralLine("Mg II", 2799.49, "emission"),
    SpectralLine("[O II]", 3728.48, "emission"),
    SpectralLine("Ca II K", 3934.78, "absorption"),
    SpectralLine("Ca II H", 3969.59, "absorption"),
    SpectralLine("Hδ", 4102.89, "emission"),
    SpectralLine("G band", 4305.61, "absorption"),
    SpectralLine("Hγ", 4341.68, "emission"),  # noqa: RUF001 (Greek letters are the names)
    SpectralLine("Hβ", 4862.68, "emission"),
    SpectralLine("[O III]", 4960.30, "emission"),
    SpectralLine("[O III]", 5008.24, "emission"),
    SpectralLine("Mg b", 5176.70, "absorption"),
    SpectralLine("Na D", 5894.60, "absorption"),
    SpectralLine("[N II]", 6549.86, "emission"),
    SpectralLine("Hα", 6564.61, "emission"),  # noqa: RUF001 (Greek letters are the names)
    SpectralLine("[N II]", 6585.27, "emission"),
    SpectralLine("[S II]", 6718.29, "emission"),
    SpectralLine("[S II]", 6732.67, "emission"),
    SpectralLine("Ca II", 8544.44, "absorption"),
)


def lines_in_range(
    lo: float,
    hi: float,
    z: float,
    *,
    frame: Literal["observed", "rest"] = "observed",
    lines: Iterable[SpectralLine] = SPECTRAL_LINES,
) -> list[tuple[SpectralLine, float]]:
    """Lines whose marker falls inside ``[lo, hi]`` Angstrom.

    Parameters
    ----------
    lo, hi : float
        Displayed wavelength range in Angstrom, in the frame given by ``frame``.
    z : float
        Redshift used to place the markers in the observed frame.
    frame : {"observed", "rest"}
        In the rest frame the markers sit at their rest wavelengths whatever ``z`` is.
    lines : iterable of SpectralLine
        The catalogue to draw from.

    Returns
    -------
    list of (SpectralLine, float)
        Each line with its marker position in Angstrom, in wavelength order.
    """
    if frame not in ("observed", "rest"):
        raise ValueError(f"frame must be 'observed' or 'rest', got {frame!r}")
    out = []
    for line in lines:
        x = line.observed(z) if frame == "observed" else line.rest_wavelength
        if lo <= x <= hi:
            out.append((line, x))
    return sorted(out, key=lambda item: item[1])


class LineNotFoundError(UserError, LookupError):
    """No line of that name (and wavelength) is in :data:`SPECTRAL_LINES`."""


def find_line(name: str, near: float | None = None) -> SpectralLine:
    """The line called ``name`` in :data:`SPECTRAL_LINES`.

    Parameters
    ----------
    name : str
        As in the table, e.g. ``"[O III]"``, ``"Ca II K"``, ``"Mg b"``.
    near : float, optional
        Rest wavelength (Angstrom, either convention) picking one line of a name the table
        holds several times; it must lie within 10 Å of it.

    Raises
    ------
    LineNotFoundError
        The name is unknown (the message lists the known ones), several lines carry it and
        ``near`` was not given, or none of them lies near ``near``.
    """
    named = [line for line in SPECTRAL_LINES if line.name == name]
    if not named:
        known = ", ".join(sorted({line.name for line in SPECTRAL_LINES}))
        raise LineNotFoundError(f"no spectral line named {name!r}; known: {known}")
    if near is None:
        if len(named) > 1:
            waves = ", ".join(f"{line.rest_wavelength:g}" for line in named)
            raise LineNotFoundError(f"{name!r} names several lines ({waves} Å): pass near=")
        return named[0]
    best = min(named, key=lambda line: abs(line.rest_wavelength - near))
    if abs(best.rest_wavelength - near) > 10.0:
        waves = ", ".join(f"{line.rest_wavelength:g}" for line in named)
        raise LineNotFoundError(f"no {name!r} line near {near:g} Å (the table has {waves} Å)")
    return best


def air_to_vacuum(wavelength: float | np.ndarray) -> float | np.ndarray:
    """Vacuum wavelength(s) for air wavelength(s) in Angstrom (above 2000 Å).

    The IAU standard conversion (Morton 2000, ApJS 130, 403; as used by SDSS): vacuum =
    air * n, with n the refractive index of standard air at the vacuum wavenumber.
    """
    air = np.asarray(wavelength, dtype=np.float64)
    sigma2 = (1e4 / air) ** 2
    n = 1.0 + 6.4328e-5 + 2.94981e-2 / (146.0 - sigma2) + 2.5540e-4 / (41.0 - sigma2)
    vacuum = np.where(air >= 2000.0, air * n, air)
    return float(vacuum) if np.ndim(wavelength) == 0 else vacuum
