"""The cutout viewer: a 5-band galaxy cutout as a Lupton RGB composite and band by band.

Colour mapping (documented because surveys differ): red = i, green = r, blue = g, combined
with :func:`astropy.visualization.make_lupton_rgb` (Lupton et al. 2004, asinh stretch that
keeps colours of bright pixels). The single-band panels use an asinh stretch over the
0.5-99.5 percentile range of each band.
"""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass, field
from typing import Any

import ipywidgets as w
import numpy as np
import traitlets as t
from astropy.visualization import (
    AsinhStretch,
    ImageNormalize,
    PercentileInterval,
    make_lupton_rgb,
)

from ._common import error_html, store_secrets, style_widget, user_message
from ._figure import figure_png, new_figure

log = logging.getLogger(__name__)

DEFAULT_BANDS = ("u", "g", "r", "i", "z")
#: Bands used for the composite, in (red, green, blue) order.
RGB_BANDS = ("i", "r", "g")


@dataclass
class CutoutData:
    """What the viewer shows: the arrays plus catalogue values (a ``Cutout`` without a header).

    Attributes
    ----------
    image : numpy.ndarray
        (5, H, W) float32, bands in ``bands`` order.
    bands : tuple of str
    magnitudes : numpy.ndarray or None
        (5,) magnitudes in band order.
    redshift : float or None
        Catalogue (spectroscopic) redshift.
    id : str
    nan_count : int
        Pixels that were NaN/inf in the input: the reader's count for a ``Cutout`` (whose
        image already has them replaced by 0), else those still in the array (drawn as the
        band's minimum).
    """

    image: np.ndarray
    bands: tuple[str, ...] = DEFAULT_BANDS
    magnitudes: np.ndarray | None = None
    redshift: float | None = None
    id: str = ""
    nan_count: int = 0
    header: Any = field(default=None, repr=False)


def as_cutout(source: Any, **values: Any) -> CutoutData:
    """Normalise a ``Cutout`` (from ``astrokit.formats.read_cutout``) or a (5, H, W) array.

    Parameters
    ----------
    source : Cutout-like or numpy.ndarray
        Anything with ``image`` (and optionally ``bands``, ``magnitudes``, ``redshift``,
        ``id``, ``header``, ``nan_count``) attributes, or the image array itself.
    **values
        Overrides for the catalogue values (``magnitudes``, ``redshift``, ``id``, ``bands``).

    Raises
    ------
    ValueError
        If the image is not (5, H, W) or the band names do not contain g, r and i.
    """
    if isinstance(source, np.ndarray):
        attrs: dict[str, Any] = {"image": source}
    else:
        attrs = {
            name: getattr(source, name)
            for name in ("image", "bands", "magnitudes", "redshift", "id", "header", "nan_count")
            if hasattr(source, name)
        }
    attrs.update({k: v for k, v in values.items() if v is not None})
    image = np.asarray(attrs["image"], dtype=np.float32)
    if image.ndim != 3 or image.shape[0] != 5:
        raise ValueError(f"expected a cutout image of shape (5, H, W), got {image.shape}")
    bands = tuple(attrs.get("bands") or DEFAULT_BANDS)
    if len(bands) != 5 or not set(RGB_BANDS) <= set(bands):
        raise ValueError(f"expected 5 band names including g, r, i; got {bands!r}")
    mags = attrs.get("magnitudes")
    if mags is not None:
        mags = np.asarray(mags, dtype=np.float32).reshape(-1)
        if mags.shape != (5,):
            raise ValueError(f"expected 5 magnitudes, got shape {mags.shape}")
    z = attrs.get("redshift")
    # read_cutout replaces NaN/inf by 0 and reports how many there were: recounting its image
    # would always find none. Non-finite pixels still present (array input) count as well.
    still_bad = int((~np.isfinite(image)).sum())
    nan_count = max(int(attrs.get("nan_count") or 0), still_bad)
    return CutoutData(
        image=image,
        bands=bands,
        magnitudes=mags,
        redshift=None if z is None or not np.isfinite(z) else float(z),
        id=str(attrs.get("id") or ""),
        nan_count=nan_count,
        header=attrs.get("header"),
    )


def auto_stretch(image_rgb: np.ndarray, q: float = 5.0) -> tuple[np.ndarray, float]:
    """Per-band minimum (sky level) and a Lupton ``stretch`` that suits ``image_rgb``.

    The minimum is each band's median (the sky in a galaxy cutout). Lupton's mapping is
    ``asinh(Q I / stretch) / Q`` of the mean intensity ``I``; the stretch is chosen so that
    the 99.5th percentile of ``I`` lands at 0.9 of full brightness, whatever the units.
    """
    minimum = np.nanmedian(image_rgb.reshape(3, -1), axis=1)
    intensity = (image_rgb - minimum[:, None, None]).mean(axis=0)
    top = float(np.nanpercentile(intensity, 99.5))
    if not np.isfinite(top) or top <= 0:
        return minimum.astype(np.float64), 1.0
    return minimum.astype(np.float64), q * top / float(np.sinh(0.9 * q))


def lupton_rgb(
    cutout: CutoutData, *, stretch: float | None = None, q: float = 5.0
) -> tuple[np.ndarray, float]:
    """The (H, W, 3) uint8 composite (red = i, green = r, blue = g) and the stretch used."""
    index = [cutout.bands.index(b) for b in RGB_BANDS]
    planes = cutout.image[index].astype(np.float64)
    # NaN pixels (masked, off the chip) would poison the colour scaling; draw them as sky.
    for plane in planes:
        bad = ~np.isfinite(plane)
        if bad.any():
            plane[bad] = np.nanmin(plane) if (~bad).any() else 0.0
    minimum, auto = auto_stretch(planes, q)
    used = auto if stretch is None else float(stretch)
    rgb = make_lupton_rgb(planes[0], planes[1], planes[2], minimum=minimum, stretch=used, Q=q)
    return rgb, used


class CutoutViewer(w.VBox):
    """Show a 5-band cutout: Lupton RGB composite, each band, and its catalogue values.

    Parameters
    ----------
    cutout : Cutout, numpy.ndarray, str, optional
        A ``Cutout`` from ``astrokit.formats.read_cutout``, a (5, H, W) array, or a URL/path
        to read with ``read_cutout``.
    prediction : float, optional
        A model's redshift prediction, shown next to the catalogue value.
    store : astrokit.store.Store, optional
        Store used to read URLs.
    **values
        Catalogue values for array input (``magnitudes``, ``redshift``, ``id``, ``bands``).

    Attributes
    ----------
    stretch : float (trait)
        Lupton linear-range parameter; reset to an automatic value for each new cutout.
    q : float (trait)
        Lupton asinh softening ``Q``.
    """

    stretch = t.Float(1.0)
    q = t.Float(5.0)
    prediction = t.Float(None, allow_none=True)
    error = t.Unicode("")

    def __init__(
        self,
        cutout: Any = None,
        *,
        prediction: float | None = None,
        store: Any = None,
        **kwargs: Any,
    ) -> None:
        values = {
            k: kwargs.pop(k) for k in ("magnitudes", "redshift", "id", "bands") if k in kwargs
        }
        super().__init__(**kwargs)
        self._store = store
        self.cutout: CutoutData | None = None
        self.rgb: np.ndarray | None = None
        self.figure = new_figure((9.0, 2.2))
        self._stretch = w.FloatLogSlider(
            base=10, min=-3, max=3, step=0.05, description="stretch", readout_format=".3g",
            continuous_update=False,
        )  # fmt: skip
        self._q = w.FloatSlider(min=0.5, max=20, step=0.5, description="Q", continuous_update=False)
        w.link((self, "stretch"), (self._stretch, "value"))
        w.link((self, "q"), (self._q, "value"))
        self._table = w.HTML()
        self._error = w.HTML()
        self._error.add_class("astrokit-error")
        self.children = [
            style_widget(),
            self._error,
            self.figure.canvas,
            w.HBox([self._stretch, self._q]),
            self._table,
        ]
        self.add_class("astrokit-cutout-viewer")
        self.observe(self._render, names=["stretch", "q"])
        self.observe(lambda _: self._show_table(), names=["prediction"])
        self.observe(lambda _: setattr(self._error, "value", error_html(self.error)), "error")
        if cutout is not None:
            self.show(cutout, prediction=prediction, **values)
        else:
            self._render()

    @property
    def catalogue(self) -> dict[str, Any]:
        """The values in the table: id, z, prediction, and one magnitude per band."""
        if self.cutout is None:
            return {}
        out: dict[str, Any] = {
            "id": self.cutout.id,
            "z": self.cutout.redshift,
            "prediction": self.prediction,
        }
        mags = self.cutout.magnitudes
        for i, band in enumerate(self.cutout.bands):
            out[f"mag_{band}"] = None if mags is None else float(mags[i])
        return out

    def show(self, cutout: Any, *, prediction: float | None = None, **values: Any) -> CutoutData:
        """Display ``cutout`` (``Cutout``, array or URL); see the class parameters."""
        if isinstance(cutout, str) or hasattr(cutout, "__fspath__"):
            from astrokit.formats import read_cutout

            cutout = read_cutout(cutout, store=self._store)
        data = as_cutout(cutout, **values)
        self.cutout = data
        self.error = ""
        index = [data.bands.index(b) for b in RGB_BANDS]
        _, auto = auto_stretch(np.nan_to_num(data.image[index].astype(np.float64)), self.q)
        # The slider spans two decades either side of the automatic value, whatever the
        # image's units (counts, nanomaggies, ...), so linking it never clamps the trait.
        centre = float(np.log10(auto))
        self._stretch.min, self._stretch.max = centre - 2, centre + 2
        with self.hold_trait_notifications():
            self.prediction = prediction
            self.stretch = auto
        self._render()
        return data

    def load(self, source: Any, *, prediction: float | None = None) -> CutoutData | None:
        """Like :meth:`show` for a URL/path, but a failure goes to the error label."""
        try:
            return self.show(source, prediction=prediction)
        except Exception as exc:  # shown to the user, never a traceback
            self.error = user_message(
                exc, action=f"reading cutout {source}", secrets=store_secrets(self._store)
            )
            return None

    def export_png(self) -> bytes:
        """The current figure as PNG bytes."""
        return figure_png(self.figure)

    def _render(self, change: Any = None) -> None:
        fig = self.figure
        fig.clear()
        if self.cutout is None:
            self.rgb = None
            self._show_table()
            fig.canvas.draw_idle()
            return
        data = self.cutout
        self.rgb, _ = lupton_rgb(data, stretch=self.stretch, q=self.q)
        axes = fig.subplots(1, 6)
        axes[0].imshow(self.rgb, origin="lower", interpolation="nearest")
        axes[0].set_title("i r g", fontsize=9)
        for ax, band, plane in zip(axes[1:], data.bands, data.image, strict=True):
            finite = plane[np.isfinite(plane)]
            norm = (
                ImageNormalize(finite, interval=PercentileInterval(99.0), stretch=AsinhStretch(0.1))
                if finite.size
                else None
            )
            ax.imshow(plane, origin="lower", cmap="gray", norm=norm, interpolation="nearest")
            ax.set_title(band, fontsize=9)
        for ax in axes:
            ax.set_xticks([])
            ax.set_yticks([])
        self._show_table()
        fig.canvas.draw_idle()

    def _show_table(self) -> None:
        values = self.catalogue
        if not values:
            self._table.value = ""
            return

        def fmt(v: Any, spec: str = ".4f") -> str:
            return "" if v is None else format(v, spec) if isinstance(v, float) else str(v)

        cells = [("id", fmt(values["id"])), ("z", fmt(values["z"]))]
        if values["prediction"] is not None:
            cells.append(("prediction", fmt(values["prediction"])))
            if values["z"] is not None:
                dz = (values["prediction"] - values["z"]) / (1 + values["z"])
                cells.append(("Δz/(1+z)", f"{dz:+.4f}"))
        cells += [(k.removeprefix("mag_"), fmt(v, ".2f")) for k, v in values.items() if "mag_" in k]
        if self.cutout is not None and self.cutout.nan_count:
            cells.append(("NaN pixels", str(self.cutout.nan_count)))
        head = "".join(f"<th>{html.escape(k)}</th>" for k, _ in cells)
        row = "".join(f"<td>{html.escape(v)}</td>" for _, v in cells)
        self._table.value = f"<table class='astrokit-meta'><tr>{head}</tr><tr>{row}</tr></table>"
