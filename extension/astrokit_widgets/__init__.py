"""Notebook widgets for the AstroKit platform: store browser, spectrum and cutout viewers.

Everything is imported lazily on first attribute access: ``import astrokit_widgets`` costs
nothing, and a broken optional widget (the labeller, which lives in its own module and is
written separately) never prevents the others from importing.

Examples
--------
>>> from astrokit_widgets import StoreBrowser
>>> StoreBrowser()            # doctest: +SKIP  (opens the store the spawner configured)
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> module that defines it (relative to this package, or a full name)
_LAZY = {
    "StoreBrowser": "browser",
    "SpectrumViewer": "spectrum",
    "CutoutViewer": "cutout",
    "FitsHeaderView": "header",
    "LabellingWidget": "labeller",
    "SPECTRAL_LINES": "astrokit.lines",  # the library's one line table
    "SpectralLine": "astrokit.lines",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'astrokit_widgets' has no attribute {name!r}")
    full = module if "." in module else f"{__name__}.{module}"
    return getattr(importlib.import_module(full), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
