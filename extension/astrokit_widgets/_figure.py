"""Matplotlib figures whose canvas is an ipywidget (ipympl), without touching pyplot.

Using :class:`matplotlib.figure.Figure` directly, instead of ``pyplot.figure()``, keeps the
viewers free of pyplot's global figure registry: a viewer that is garbage-collected takes its
figure with it, and nothing is drawn twice by the inline backend. The ipympl canvas gives the
notebook user zoom/pan/home and a toolbar; in a headless test it is an ordinary widget whose
figure can still be rendered with Agg (``savefig``).
"""

from __future__ import annotations

import io
import itertools

from matplotlib.figure import Figure

_numbers = itertools.count(1)


def new_figure(figsize: tuple[float, float] = (8.0, 4.0)) -> Figure:
    """Create a figure drawn by an ipympl canvas widget.

    Parameters
    ----------
    figsize : tuple of float
        Width and height in inches.

    Returns
    -------
    matplotlib.figure.Figure
        ``figure.canvas`` is an ``ipympl.backend_nbagg.Canvas`` (an ipywidget) that can be
        placed in any ipywidgets container.
    """
    from ipympl.backend_nbagg import new_figure_manager_given_figure

    figure = Figure(figsize=figsize, layout="constrained")
    manager = new_figure_manager_given_figure(next(_numbers), figure)
    canvas = manager.canvas
    # The figure number label above the canvas means nothing here (no pyplot registry).
    canvas.header_visible = False
    canvas.toolbar_position = "left"
    canvas.resizable = True
    return figure


def figure_png(figure: Figure, *, dpi: float = 100.0) -> bytes:
    """Render ``figure`` to PNG bytes (Agg), independent of any browser."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()
