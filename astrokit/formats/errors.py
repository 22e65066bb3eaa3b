"""Typed errors of the readers: each names the file and what was expected."""

from __future__ import annotations

from astrokit.errors import UserError


class FormatError(UserError):
    """Base class: the file could not be read as the expected format.

    Attributes
    ----------
    source : str
        The file (URL, path or description of a file-like object).
    """

    def __init__(self, source: str, message: str) -> None:
        self.source = source
        super().__init__(f"{source}: {message}")


class UnknownFormatError(FormatError):
    """No reader recognises the file (the message lists the formats tried)."""


class CorruptFileError(FormatError):
    """The file is truncated, not valid FITS, or its content is unusable (e.g. all NaN)."""


class CutoutShapeError(FormatError):
    """A cutout has the wrong number of bands or the wrong image shape."""


class BandOrderError(FormatError):
    """A cutout's bands are unnamed, duplicated or not the expected set (ugriz)."""
