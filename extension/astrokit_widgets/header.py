"""A FITS header view: the cards of one HDU, searchable, read with as few bytes as possible."""

from __future__ import annotations

import html
import logging
from typing import Any

import ipywidgets as w
import traitlets as t
from astropy.io import fits

from ._common import error_html, store_secrets, style_widget, user_message

log = logging.getLogger(__name__)


#: Read size for header previews on object stores: a header is a few 2880-byte blocks.
HEADER_BLOCK_SIZE = 64 * 1024


def read_header_cheaply(source: Any, *, store: Any = None, hdu: int = 0) -> fits.Header:
    """``astrokit.formats.read_header``, with small reads on remote stores.

    s3fs opens files with a 50 MiB read-ahead block, so reading the first 2880 bytes of a
    large object would download up to 50 MiB. For remote URLs the file is opened here with
    :data:`HEADER_BLOCK_SIZE` blocks and handed to the reader as a file object.
    """
    from astrokit.formats import read_header

    fs = getattr(store, "fs", None)
    remote = isinstance(source, str) and "://" in source and not source.startswith("file://")
    if fs is None or not remote:
        return read_header(source, store=store, hdu=hdu)
    with fs.open(source, "rb", block_size=HEADER_BLOCK_SIZE) as handle:
        return read_header(handle, hdu=hdu)


class FitsHeaderView(w.VBox):
    """Show a FITS header as text, with a keyword/value filter.

    Parameters
    ----------
    header : astropy.io.fits.Header, optional
        Header to show straight away.
    title : str
        Shown above the cards (usually the file URL and HDU).

    Attributes
    ----------
    filter_text : str (trait)
        Case-insensitive substring; only cards containing it are shown.
    error : str (trait)
        The last error message, empty when the last load worked.

    Examples
    --------
    >>> view = FitsHeaderView()
    >>> view.load("file:///data/spec.fits")          # doctest: +SKIP
    >>> [card[0] for card in view.cards][:3]         # doctest: +SKIP
    ['SIMPLE', 'BITPIX', 'NAXIS']
    """

    header = t.Instance(fits.Header, allow_none=True)
    title = t.Unicode("")
    filter_text = t.Unicode("")
    error = t.Unicode("")

    def __init__(self, header: fits.Header | None = None, *, title: str = "", **kwargs: Any):
        self._title = w.HTML()
        self._filter = w.Text(placeholder="filter keywords/values", layout=w.Layout(width="16em"))
        self._count = w.HTML()
        self._cards = w.HTML()
        self._error = w.HTML()
        self._error.add_class("astrokit-error")
        super().__init__(
            children=[
                style_widget(),
                w.HBox([self._title, self._filter, self._count]),
                self._error,
                self._cards,
            ],
            **kwargs,
        )
        self.add_class("astrokit-header")
        w.link((self, "filter_text"), (self._filter, "value"))
        self.observe(self._render, names=["header", "title", "filter_text", "error"])
        self.title = title
        self.header = header
        self._render()

    @property
    def cards(self) -> list[tuple[str, Any, str]]:
        """The (keyword, value, comment) cards currently shown (after the filter)."""
        return [(card.keyword, card.value, card.comment) for card in self._matching()]

    def _matching(self) -> list[fits.Card]:
        if self.header is None:
            return []
        needle = self.filter_text.strip().lower()
        return [card for card in self.header.cards if not needle or needle in str(card).lower()]

    def show(self, header: fits.Header | None, title: str = "") -> None:
        """Display ``header`` (None clears the view)."""
        self.error = ""
        self.title = title
        self.header = header

    def load(self, source: Any, *, store: Any = None, hdu: int = 0) -> fits.Header | None:
        """Read and show the header of HDU ``hdu`` of ``source`` (URL, path or file-like).

        Only the header blocks are read (:func:`read_header_cheaply`). A failure is shown in
        the widget's error label and returns None instead of raising.
        """
        try:
            header = read_header_cheaply(source, store=store, hdu=hdu)
        except Exception as exc:  # shown to the user, never a traceback
            self.header = None
            self.error = user_message(
                exc, action=f"reading the header of {source}", secrets=store_secrets(store)
            )
            return None
        self.show(header, title=f"{source} [HDU {hdu}]")
        return header

    def _render(self, change: Any = None) -> None:
        self._error.value = error_html(self.error)
        self._title.value = f"<b>{html.escape(self.title)}</b>" if self.title else ""
        if self.header is None:
            self._cards.value = ""
            self._count.value = ""
            return
        shown = self._matching()
        text = "\n".join(str(card).rstrip() for card in shown)
        self._count.value = f"<span class='astrokit-status'>{len(shown)} cards</span>"
        self._cards.value = f"<pre>{html.escape(text)}</pre>"
