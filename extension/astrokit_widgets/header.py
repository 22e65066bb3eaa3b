"""A FITS header view: the cards of one HDU, searchable, read with as few bytes as possible."""

from __future__ import annotations

import gzip
import html
import logging
import os
import warnings
import zlib
from typing import Any

import ipywidgets as w
import traitlets as t
from astropy.io import fits
from astropy.io.fits.util import isfile
from astropy.utils.exceptions import AstropyUserWarning

from ._common import error_html, store_secrets, style_widget, user_message

log = logging.getLogger(__name__)


#: Read size for header previews on object stores: a header is a few 2880-byte blocks.
HEADER_BLOCK_SIZE = 64 * 1024


def read_header_cheaply(source: Any, *, store: Any = None, hdu: int = 0) -> fits.Header:
    """The header of HDU ``hdu``, reading only the header blocks up to it.

    Astropy's own lazy reader does the work (``fits.open(..., lazy_load_hdus=True)``): it
    parses one header at a time and seeks over data units, also inside gzip streams. A URL is
    opened through the store's fsspec filesystem (its credentials, endpoint and typed errors)
    with :data:`HEADER_BLOCK_SIZE` read-ahead: s3fs's default of 50 MiB would download up to
    50 MiB for the first 2880 bytes of a large object.

    Raises
    ------
    FormatError
        The file cannot be read (the store's error is its cause), is not FITS, ends inside
        a header, or has no HDU ``hdu``; the message names the file.
    """
    from astrokit.formats.errors import CorruptFileError, FormatError
    from astrokit.formats.fitsio import describe

    name = describe(source)
    opened = None
    if isinstance(source, (str, os.PathLike)):
        from astrokit.store import StoreError, resolve

        try:
            st, url = resolve(os.fspath(source), store)
            opened = st.open(url, "rb", block_size=HEADER_BLOCK_SIZE)
        except StoreError as exc:
            raise FormatError(name, f"cannot read the file ({exc})") from exc
    handle = opened if opened is not None else source
    try:
        if not isfile(handle) and handle.read(2) == b"\x1f\x8b":
            # astropy unpacks gzip itself only for OS-level files; an fsspec file is a
            # "file-like" to it, so the stream is unpacked here (forward seeks decompress)
            handle.seek(0)
            handle = gzip.GzipFile(fileobj=handle)
        elif not isfile(handle):
            handle.seek(0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AstropyUserWarning)  # truncation: raised below
            with fits.open(handle, lazy_load_hdus=True, memmap=False) as hdul:
                try:
                    header = hdul[hdu].header.copy()
                except IndexError:
                    raise FormatError(
                        name, f"HDU {hdu} requested, but the file has {len(hdul)} HDU(s)"
                    ) from None
        if not header.cards or header.cards[0].keyword not in ("SIMPLE", "XTENSION"):
            raise CorruptFileError(name, "not a FITS header (no SIMPLE/XTENSION card)")
        return header
    except FormatError:
        raise
    except (OSError, ValueError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise CorruptFileError(name, f"not a readable FITS header ({exc})") from exc
    finally:
        if opened is not None:
            opened.close()


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
