"""Fixtures for the widget tests: real spectra turned into ``specutils.Spectrum`` objects.

The LAMOST LRS loader here is deliberately independent of ``astrokit.formats`` so the viewer
tests exercise the widget, not the reader; the browser tests use the real reader through the
store.
"""

from __future__ import annotations

import json

import astropy.units as u
import numpy as np
import pytest
from astropy.io import fits
from astropy.nddata import InverseVariance
from ipywidgets.widgets.widget import _instances


def lamost_lrs_spectrum(path):
    """A LAMOST DR LRS file as a Spectrum: primary image rows flux, ivar, wavelength, andmask."""
    from specutils import Spectrum

    with fits.open(path) as hdul:
        header = hdul[0].header.copy()
        data = np.asarray(hdul[0].data, dtype=np.float64)
    flux, ivar, wave, andmask = data[0], data[1], data[2], data[3]
    return Spectrum(
        flux=flux * u.Unit("1e-17 erg / (s cm2 Angstrom)"),
        spectral_axis=wave * u.AA,
        uncertainty=InverseVariance(ivar),
        mask=(andmask != 0) | (ivar <= 0),
        meta={
            "redshift": float(header["Z"]),
            "object_class": header["CLASS"],
            "format": "lamost-lrs",
            "source": str(path),
            "header": header,
            "id": str(header.get("OBSID", path.name)),
        },
    )


@pytest.fixture
def lrs_spectrum(lamost_files):
    return lamost_lrs_spectrum(lamost_files["lrs"])


def all_widget_state(widget, seen=None) -> str:
    """JSON of the synced state of ``widget`` and every widget it references."""
    seen = set() if seen is None else seen
    if widget.model_id in seen:
        return ""
    seen.add(widget.model_id)
    state = widget.get_state()
    out = json.dumps(state, default=str)
    for value in state.values():
        items = value if isinstance(value, (list, tuple)) else [value]
        for item in items:
            if isinstance(item, str) and item.startswith("IPY_MODEL_"):
                # ipywidgets' registry of live widgets by model id (no public accessor in 8.x)
                child = _instances.get(item.removeprefix("IPY_MODEL_"))
                if child is not None:
                    out += all_widget_state(child, seen)
    for child in getattr(widget, "children", ()):
        out += all_widget_state(child, seen)
    return out


@pytest.fixture
def widget_state():
    """``widget_state(widget) -> str``: JSON of everything the widget syncs to the browser."""
    return all_widget_state
