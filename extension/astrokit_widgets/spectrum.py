"""The spectrum viewer: one or several spectra, with lines at a trial redshift.

The viewer is an ``ipywidgets.VBox`` holding the controls, an ipympl canvas (zoom/pan in the
notebook) and a metadata/header pane. Every control is mirrored by a trait on the viewer
(``z``, ``frame``, ``unit``, ``smoothing``, ``smooth_width``, ``show_uncertainty``,
``show_masked``, ``show_lines``, ``crop``), so code and tests drive it the way a person does,
and :attr:`SpectrumViewer.plotted` / :attr:`SpectrumViewer.marker_positions` expose exactly
what is drawn.
"""

from __future__ import annotations

import html
import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import astropy.units as u
import ipywidgets as w
import numpy as np
import traitlets as t
from astropy.nddata import InverseVariance, StdDevUncertainty, VarianceUncertainty

from astrokit.lines import SPECTRAL_LINES, lines_in_range

from ._common import error_html, store_secrets, style_widget, user_message, write_through_store
from ._figure import figure_png, new_figure
from .header import FitsHeaderView
from .processing import (
    WAVELENGTH_UNITS,
    Trace,
    build_trace,
    from_display_wavelength,
    sigma_from_ivar,
    to_display_wavelength,
)

log = logging.getLogger(__name__)

Z_MIN, Z_MAX = -0.01, 7.0
_LINE_COLOURS = {"emission": "tab:blue", "absorption": "tab:red"}


@dataclass
class _Loaded:
    """One spectrum reduced to arrays in observed-frame Angstrom, plus where it came from."""

    label: str
    spectrum: Any  # specutils.Spectrum
    wavelength: np.ndarray
    flux: np.ndarray
    sigma: np.ndarray
    mask: np.ndarray
    flux_unit: u.UnitBase


def spectrum_arrays(spectrum: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Wavelength (observed Å), flux, 1-sigma and mask arrays of a 1-D ``specutils.Spectrum``.

    Raises
    ------
    ValueError
        If the spectrum is not one-dimensional or its uncertainty type is not understood.
    """
    flux = np.asarray(spectrum.flux.value, dtype=np.float64)
    if flux.ndim != 1:
        raise ValueError(
            f"expected a 1-D spectrum, got flux of shape {flux.shape}; "
            "pick one with spectrum[i] first"
        )
    wavelength = spectrum.spectral_axis.to_value(u.AA, equivalencies=u.spectral())
    unc = spectrum.uncertainty
    if unc is None:
        sigma = np.full(flux.shape, np.nan)
    elif isinstance(unc, InverseVariance):
        sigma = sigma_from_ivar(unc.array)
    elif isinstance(unc, StdDevUncertainty):
        sigma = np.asarray(unc.array, dtype=np.float64)
    elif isinstance(unc, VarianceUncertainty):
        sigma = np.sqrt(np.clip(np.asarray(unc.array, dtype=np.float64), 0, None))
    else:
        raise ValueError(f"unsupported uncertainty type {type(unc).__name__}")
    mask = (
        np.zeros(flux.shape, dtype=bool)
        if spectrum.mask is None
        else np.asarray(spectrum.mask, dtype=bool)
    )
    if wavelength.size > 1 and wavelength[0] > wavelength[-1]:
        # Frequency-ordered input: plot and smooth in increasing wavelength.
        order = slice(None, None, -1)
        wavelength, flux, sigma, mask = (a[order] for a in (wavelength, flux, sigma, mask))
    return wavelength, flux, sigma, mask


class SpectrumViewer(w.VBox):
    """Plot spectra with uncertainties, masks, smoothing and line markers.

    Parameters
    ----------
    spectra : Spectrum, str, path, or a list of them, optional
        Spectra to show: ``specutils.Spectrum`` objects, or URLs/paths in any format
        ``astrokit.formats.read_spectrum`` accepts.
    store : astrokit.store.Store, optional
        Store used to read URLs and to write exports; None uses the environment's store.
        Exports to plain paths go to the local disk, through the store as well, so the
        read-only shared area is refused however it is named.
    z : float, optional
        Initial trial redshift. Default: the catalogue redshift of the first spectrum
        (``meta["redshift"]``), else 0.

    Notes
    -----
    One redshift applies to the whole plot: in the observed frame it places the line
    markers at ``λ_rest (1 + z)``; in the rest frame every spectrum's wavelengths are
    divided by ``1 + z`` and the markers stay at their rest wavelengths. The crop range is
    kept in observed-frame Angstrom (:attr:`crop`) and shown in the display unit/frame.

    Examples
    --------
    >>> viewer = SpectrumViewer("file:///data/spec-57287-KP193637N444141V03_sp10-161.fits.gz")
    ... # doctest: +SKIP
    >>> viewer.smoothing = "gaussian"; viewer.smooth_width = 3   # doctest: +SKIP
    >>> viewer.export_png("spectrum.png")                        # doctest: +SKIP
    """

    z = t.Float(0.0)
    frame = t.Enum(["observed", "rest"], default_value="observed")
    unit = t.Enum(list(WAVELENGTH_UNITS), default_value="Å")
    smoothing = t.Enum(["none", "box", "gaussian"], default_value="none")
    smooth_width = t.Float(3.0)
    show_uncertainty = t.Bool(True)
    show_masked = t.Bool(True)
    show_lines = t.Bool(True)
    #: (low, high) observed-frame Angstrom; None = open end.
    crop = t.Tuple(
        t.Float(None, allow_none=True), t.Float(None, allow_none=True), default_value=(None, None)
    )
    error = t.Unicode("")
    status = t.Unicode("")

    def __init__(
        self,
        spectra: Any = None,
        *,
        store: Any = None,
        z: float | None = None,
        **kwargs: Any,
    ) -> None:
        self._store = store
        self._loaded: list[_Loaded] = []
        self._plotted: dict[str, Trace] = {}
        self._markers: list[tuple[str, float, Any, Any]] = []
        self._syncing = False

        super().__init__(**kwargs)
        self.figure = new_figure((9.0, 4.0))
        self.axes = self.figure.add_subplot()
        self._build_controls()
        self.header_view = FitsHeaderView()
        self._meta = w.HTML()
        details = w.Accordion(children=[w.VBox([self._meta, self.header_view])])
        details.set_title(0, "Metadata and header")
        details.selected_index = None
        self.children = [
            style_widget(),
            self._controls,
            self._error,
            self.figure.canvas,
            self._export_box,
            details,
        ]
        self.add_class("astrokit-spectrum-viewer")
        self.observe(
            self._on_display_change,
            names=[
                "frame",
                "unit",
                "smoothing",
                "smooth_width",
                "show_uncertainty",
                "show_masked",
                "crop",
            ],
        )
        self.observe(self._on_z_change, names=["z"])
        self.observe(self._on_show_lines, names=["show_lines"])
        self.observe(lambda _: setattr(self._error, "value", error_html(self.error)), "error")
        self.observe(lambda _: setattr(self._status, "value", html.escape(self.status)), "status")

        if spectra is not None:
            items = spectra if isinstance(spectra, (list, tuple)) else [spectra]
            for item in items:
                self.add(item, redraw=False)
        if z is not None:
            self.z = float(z)
        self._render()

    # ------------------------------------------------------------------ public API
    @property
    def spectra(self) -> list[Any]:
        """The spectra shown, as loaded (``specutils.Spectrum``), in the order added."""
        return [item.spectrum for item in self._loaded]

    @property
    def plotted(self) -> dict[str, Trace]:
        """What is drawn now, per spectrum label: display x, y (smoothed), sigma, mask."""
        return dict(self._plotted)

    @property
    def marker_positions(self) -> list[tuple[str, float]]:
        """(line name, x in display unit) of every line marker currently drawn."""
        return [(name, x) for name, x, _, _ in self._markers]

    def add(self, source: Any, *, label: str | None = None, redraw: bool = True) -> Any:
        """Add a spectrum (``Spectrum`` object, URL or path) to the plot.

        The first spectrum added sets the redshift to its catalogue value
        (``meta["redshift"]``) when it has one.

        Returns
        -------
        specutils.Spectrum
            The spectrum as loaded.

        Raises
        ------
        astrokit.formats.FormatError, astrokit.store.StoreError, ValueError
            When ``source`` cannot be read or is not a 1-D spectrum.
        """
        spectrum = self._read(source)
        wavelength, flux, sigma, mask = spectrum_arrays(spectrum)
        meta = getattr(spectrum, "meta", {}) or {}
        name = label or str(meta.get("id") or "") or _source_name(source, len(self._loaded))
        names = {item.label for item in self._loaded}
        base, n = name, 2
        while name in names:  # labels key `plotted`; keep them unique
            name, n = f"{base} ({n})", n + 1
        self._loaded.append(
            _Loaded(name, spectrum, wavelength, flux, sigma, mask, spectrum.flux.unit)
        )
        if len(self._loaded) == 1:
            z = meta.get("redshift")
            if z is not None and np.isfinite(z):
                self.z = float(np.clip(z, Z_MIN, Z_MAX))
        self.error = ""
        self._show_meta()
        if redraw:
            self._render()
        return spectrum

    def clear(self, *, redraw: bool = True) -> None:
        """Remove every spectrum (``redraw=False`` when another :meth:`add` follows)."""
        self._loaded.clear()
        self._show_meta()
        if redraw:
            self._render()

    def to_spectrum(self, index: int = 0) -> Any:
        """The spectrum as displayed (crop, smoothing, unit, frame applied) as a ``Spectrum``.

        ``meta`` records how it was derived (``frame``, ``z``, ``smoothing``, ``source``).
        """
        from specutils import Spectrum

        item = self._loaded[index]
        trace = self._trace(item)
        meta = {
            "id": item.label,
            "source": (item.spectrum.meta or {}).get("source"),
            "frame": self.frame,
            "z": self.z,
            "smoothing": self.smoothing,
            "smooth_width": self.smooth_width if self.smoothing != "none" else None,
        }
        return Spectrum(
            flux=trace.y * item.flux_unit,
            spectral_axis=trace.x * WAVELENGTH_UNITS[self.unit],
            uncertainty=StdDevUncertainty(trace.sigma),
            mask=trace.mask.copy(),
            meta=meta,
        )

    def export_png(self, target: str | Path | None = None, *, dpi: float = 100.0) -> bytes:
        """Render the figure to PNG; write it to ``target`` (path or store URL) if given."""
        data = figure_png(self.figure, dpi=dpi)
        if target is not None:
            self._write(str(target), data)
        return data

    def export_spectrum(self, target: str | Path, index: int = 0) -> Any:
        """Write :meth:`to_spectrum` as a FITS table to ``target`` (path or store URL)."""
        spectrum = self.to_spectrum(index)
        buffer = io.BytesIO()
        spectrum.write(buffer, format="tabular-fits")
        self._write(str(target), buffer.getvalue())
        return spectrum

    # ------------------------------------------------------------------ loading/writing
    def _read(self, source: Any) -> Any:
        if hasattr(source, "spectral_axis") and hasattr(source, "flux"):
            return source
        from astrokit.formats import read_spectrum

        return read_spectrum(source, store=self._store)

    def _write(self, target: str, data: bytes) -> None:
        # through the store for paths too: a local path into shared/ is refused like its URL
        write_through_store(target, data, self._store)

    # ------------------------------------------------------------------ widgets
    def _build_controls(self) -> None:
        compact = {"description_width": "initial"}
        self._z_slider = w.FloatSlider(
            min=Z_MIN, max=Z_MAX, step=1e-5, readout=False, description="z",
            continuous_update=True, layout=w.Layout(width="22em"),
        )  # fmt: skip
        self._z_text = w.BoundedFloatText(
            min=Z_MIN, max=Z_MAX, step=1e-5, layout=w.Layout(width="7em")
        )
        self._frame = w.ToggleButtons(options=["observed", "rest"], style={"button_width": "7.5em"})
        self._unit = w.Dropdown(options=list(WAVELENGTH_UNITS), layout=w.Layout(width="5em"))
        self._smoothing = w.Dropdown(
            options=["none", "box", "gaussian"], description="smooth", style=compact,
            layout=w.Layout(width="11em"),
        )  # fmt: skip
        self._width = w.BoundedFloatText(
            min=0.5, max=200, step=0.5, description="width (px)", style=compact,
            layout=w.Layout(width="10em"),
        )  # fmt: skip
        self._unc = w.Checkbox(description="uncertainty", indent=False)
        self._masked = w.Checkbox(description="masked pixels", indent=False)
        self._lines = w.Checkbox(description="lines", indent=False)
        self._crop_lo = w.FloatText(
            description="crop", style=compact, layout=w.Layout(width="11em")
        )
        self._crop_hi = w.FloatText(layout=w.Layout(width="7em"))
        self._crop_reset = w.Button(description="full range", layout=w.Layout(width="7em"))
        self._error = w.HTML()
        self._error.add_class("astrokit-error")
        self._status = w.HTML()
        self._status.add_class("astrokit-status")

        for trait, widget in (
            ("z", self._z_slider),
            ("z", self._z_text),
            ("frame", self._frame),
            ("unit", self._unit),
            ("smoothing", self._smoothing),
            ("smooth_width", self._width),
            ("show_uncertainty", self._unc),
            ("show_masked", self._masked),
            ("show_lines", self._lines),
        ):
            widget.value = getattr(self, trait)
            w.link((self, trait), (widget, "value"))
        self._crop_lo.observe(self._on_crop_typed, "value")
        self._crop_hi.observe(self._on_crop_typed, "value")
        self._crop_reset.on_click(lambda _: setattr(self, "crop", (None, None)))

        self._export_target = w.Text(
            placeholder="path or store URL (without extension)", layout=w.Layout(width="28em")
        )
        save_png = w.Button(description="Save PNG", icon="image")
        save_spec = w.Button(description="Save spectrum", icon="save")
        save_png.on_click(lambda _: self._export_clicked("png"))
        save_spec.on_click(lambda _: self._export_clicked("fits"))
        self._export_box = w.HBox([self._export_target, save_png, save_spec, self._status])

        self._controls = w.VBox(
            [
                w.HBox([self._z_slider, self._z_text, self._frame, self._unit]),
                w.HBox([self._smoothing, self._width, self._unc, self._masked, self._lines]),
                w.HBox([self._crop_lo, self._crop_hi, self._crop_reset]),
            ]
        )

    def _export_clicked(self, kind: str) -> None:
        base = self._export_target.value.strip() or self._default_export_base()
        target = f"{base}.{kind}"
        try:
            if kind == "png":
                self.export_png(target)
            else:
                self.export_spectrum(target)
        except Exception as exc:  # shown in the widget, not as a traceback
            self.error = user_message(
                exc, action=f"saving {target}", secrets=store_secrets(self._store)
            )
            return
        self.error = ""
        self.status = f"saved {target}"

    def _default_export_base(self) -> str:
        name = self._loaded[0].label if self._loaded else "spectrum"
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        user_url = getattr(self._store, "user_url", None)
        return f"{user_url.rstrip('/')}/exports/{safe}" if user_url else safe

    # ------------------------------------------------------------------ reactions
    def _on_display_change(self, change: dict[str, Any]) -> None:
        if change["name"] in ("frame", "unit"):
            self._sync_crop_boxes()
        self._render()

    def _on_z_change(self, change: dict[str, Any]) -> None:
        if self.frame == "rest":
            # The data move, not the markers.
            self._sync_crop_boxes()
            self._render()
        else:
            self._draw_markers()
            self.figure.canvas.draw_idle()

    def _on_show_lines(self, change: dict[str, Any]) -> None:
        self._draw_markers()
        self.figure.canvas.draw_idle()

    def _on_crop_typed(self, change: dict[str, Any]) -> None:
        if self._syncing or not self._loaded:
            return
        lo, hi = (
            float(from_display_wavelength(v, unit=self.unit, frame=self.frame, z=self.z))
            for v in (self._crop_lo.value, self._crop_hi.value)
        )
        if lo >= hi:
            self.error = "Crop range is empty: the lower bound must be below the upper bound."
            return
        self.error = ""
        self.crop = (lo, hi)

    def _sync_crop_boxes(self) -> None:
        """Show the crop (or the data range) in the current unit and frame."""
        if not self._loaded:
            return
        lo, hi = self.crop
        if lo is None:
            lo = min(float(np.nanmin(item.wavelength)) for item in self._loaded)
        if hi is None:
            hi = max(float(np.nanmax(item.wavelength)) for item in self._loaded)
        shown = to_display_wavelength(
            np.array([lo, hi]), unit=self.unit, frame=self.frame, z=self.z
        )
        self._syncing = True
        try:
            # Enough digits for the unit (Å: 0.01, µm: 1e-6), no more: it is read by people.
            digits = {"Å": 2, "nm": 3, "µm": 6}[self.unit]
            self._crop_lo.value = round(float(shown[0]), digits)
            self._crop_hi.value = round(float(shown[1]), digits)
        finally:
            self._syncing = False

    # ------------------------------------------------------------------ drawing
    def _trace(self, item: _Loaded) -> Trace:
        return build_trace(
            item.wavelength,
            item.flux,
            item.sigma,
            item.mask,
            unit=self.unit,
            frame=self.frame,
            z=self.z,
            crop_aa=self.crop,
            smoothing=self.smoothing,
            width=self.smooth_width,
            show_masked=self.show_masked,
        )

    def _render(self) -> None:
        ax = self.axes
        ax.clear()
        self._markers = []
        self._plotted = {}
        try:
            for item in self._loaded:
                self._plotted[item.label] = self._trace(item)
        except ValueError as exc:
            self.error = user_message(exc, action="updating the plot")
            self._plotted = {}
        for item in self._loaded:
            trace = self._plotted.get(item.label)
            if trace is None:
                continue
            (line,) = ax.plot(*_break_gaps(trace.x, trace.y), lw=0.8, label=item.label)
            colour = line.get_color()
            if self.show_uncertainty and np.isfinite(trace.sigma).any():
                ax.fill_between(
                    trace.x, trace.y - trace.sigma, trace.y + trace.sigma,
                    color="0.5" if len(self._loaded) == 1 else colour, alpha=0.35, lw=0,
                    label="_nolegend_",
                )  # fmt: skip
            if self.show_masked and trace.mask.any():
                ax.plot(
                    trace.x[trace.mask], trace.y[trace.mask], ls="none", marker=".", ms=3,
                    color="tab:red", alpha=0.7, label="_nolegend_",
                )  # fmt: skip
        unit = self.unit
        frame = "rest frame" if self.frame == "rest" else "observed"
        ax.set_xlabel(f"wavelength [{unit}] ({frame})")
        if self._loaded:
            flux_unit = self._loaded[0].flux_unit
            ax.set_ylabel(f"flux [{flux_unit.to_string()}]" if flux_unit != u.one else "flux")
            if len(self._loaded) > 1:
                ax.legend(loc="upper right", fontsize="small")
            self._robust_ylim()
        else:
            ax.text(0.5, 0.5, "no spectrum", ha="center", va="center", transform=ax.transAxes)
        self._draw_markers()
        self._sync_crop_boxes()
        self.figure.canvas.draw_idle()

    def _robust_ylim(self) -> None:
        # A single cosmic ray or a bad edge pixel would otherwise flatten the spectrum.
        ys = [tr.y[np.isfinite(tr.y)] for tr in self._plotted.values()]
        ys = [y for y in ys if y.size]
        if not ys:
            return
        values = np.concatenate(ys)
        lo, hi = np.percentile(values, [0.5, 99.5])
        pad = 0.1 * (hi - lo) if hi > lo else max(abs(hi), 1.0) * 0.1
        self.axes.set_ylim(lo - pad, hi + pad)

    def _draw_markers(self) -> None:
        for _, _, line, text in self._markers:
            line.remove()
            text.remove()
        self._markers = []
        if not self.show_lines or not self._plotted:
            return
        xs = [tr.x for tr in self._plotted.values() if tr.x.size]
        if not xs:
            return
        lo_disp = min(float(np.min(x)) for x in xs)
        hi_disp = max(float(np.max(x)) for x in xs)
        scale = WAVELENGTH_UNITS[self.unit].to(u.AA)
        shown = lines_in_range(lo_disp * scale, hi_disp * scale, self.z, frame=self.frame)
        transform = self.axes.get_xaxis_transform()
        for line, x_aa in shown:
            x = x_aa / scale
            colour = _LINE_COLOURS[line.kind]
            artist = self.axes.axvline(x, color=colour, lw=0.7, ls="--", alpha=0.6)
            text = self.axes.text(
                x, 0.98, line.name, rotation=90, va="top", ha="right", fontsize=7,
                color=colour, transform=transform,
            )  # fmt: skip
            self._markers.append((line.name, x, artist, text))

    def _show_meta(self) -> None:
        if not self._loaded:
            self._meta.value = ""
            self.header_view.show(None)
            return
        rows = []
        for item in self._loaded:
            meta = item.spectrum.meta or {}
            cells = [
                item.label,
                meta.get("format", ""),
                meta.get("object_class", "") or "",
                "" if meta.get("redshift") is None else f"{meta['redshift']:.5f}",
                f"{item.wavelength.min():.1f} to {item.wavelength.max():.1f} Å",
                f"{item.flux.size}",
                f"{int(item.mask.sum())}",
                meta.get("source", "") or "",
            ]
            rows.append("".join(f"<td>{html.escape(str(c))}</td>" for c in cells))
        head = "".join(
            f"<th>{h}</th>"
            for h in ("id", "format", "class", "z", "range", "pixels", "masked", "source")
        )
        self._meta.value = (
            f"<table class='astrokit-meta'><tr>{head}</tr>"
            + "".join(f"<tr>{r}</tr>" for r in rows)
            + "</table>"
        )
        first = self._loaded[0].spectrum.meta or {}
        header = first.get("header")
        self.header_view.show(header if hasattr(header, "cards") else None, self._loaded[0].label)


def _break_gaps(x: np.ndarray, y: np.ndarray, factor: float = 20.0) -> tuple[np.ndarray, ...]:
    """Insert a NaN where the wavelength step is ``factor`` times the median step.

    Spectra made of separate arms (LAMOST MRS blue/red, X-shooter...) would otherwise be
    joined by a straight line across the gap between the arms.
    """
    if x.size < 3:
        return x, y
    step = np.diff(x)
    typical = np.median(np.abs(step))
    gaps = np.flatnonzero(np.abs(step) > factor * typical) + 1 if typical > 0 else []
    if len(gaps) == 0:
        return x, y
    return np.insert(x, gaps, np.nan), np.insert(y.astype(np.float64), gaps, np.nan)


def _source_name(source: Any, index: int) -> str:
    text = str(source)
    if "/" in text or "\\" in text:
        return text.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    return f"spectrum {index + 1}" if not isinstance(source, (str, Path)) else text


__all__ = ["SPECTRAL_LINES", "SpectrumViewer", "spectrum_arrays"]
