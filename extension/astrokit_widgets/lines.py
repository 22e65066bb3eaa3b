"""Rest-frame spectral lines drawn as markers by the spectrum viewer.

Wavelengths are in vacuum (Angstrom), as SDSS, BOSS, DESI and LAMOST spectra are; the values
are the commonly tabulated vacuum rest wavelengths (as in SDSS's spectroscopic line list),
rounded to 0.01 Å.
Close doublets that no survey resolves at R ~ 2000 ([O II] 3726/3729, Na I D) are given as one
blended marker.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

LineKind = Literal["emission", "absorption"]


@dataclass(frozen=True)
class SpectralLine:
    """One marker: a name, its rest vacuum wavelength and whether it is seen in emission."""

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
