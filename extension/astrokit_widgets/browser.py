"""The store browser: walk the object store one level at a time and preview what you pick.

``StoreBrowser()`` with no arguments opens the store the spawner configured
(``ASTROKIT_STORE_URL``) at the shared survey area, with shortcuts to the store root and the
user's own prefix. Any ``file://`` or ``s3://`` URL works too. Listings are paged
(:meth:`astrokit.store.Store.list_page`): a prefix with 100,000 objects costs one page, and
"load more" fetches the next. Picking a FITS file reads its header (only the header bytes),
then opens the spectrum viewer for spectra and the cutout viewer for 5-band cutouts.

Every failure (no credentials, missing bucket, permission denied, unreadable file) is shown in
the widget's error label as a sentence; nothing raises into the notebook from a click.
"""

from __future__ import annotations

import contextlib
import html
import logging
import os
import posixpath
import time
from collections.abc import Callable, Iterator
from typing import Any

import ipywidgets as w
import traitlets as t

from astrokit import env

from ._common import error_html, human_size, store_secrets, style_widget, user_message
from .header import FitsHeaderView

log = logging.getLogger(__name__)

FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz", ".fit.gz", ".fits.fz")
_GLOB_CHARS = set("*?[")
_UP = "\x00up"  # option value of the ".." row; cannot collide with a URL


def name_pattern(text: str) -> str | None:
    """Turn what the user typed in the filter box into an ``fnmatch`` pattern.

    A glob (containing ``*``, ``?`` or ``[``) is used as it is, case-sensitively. Plain text
    matches names containing it, ignoring case (``"lamost"`` -> ``"*[lL][aA][mM][oO][sS][tT]*"``).
    Empty text means no filter (None).
    """
    text = text.strip()
    if not text:
        return None
    if _GLOB_CHARS & set(text):
        return text
    body = "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in text)
    return f"*{body}*"


def is_fits(url: str) -> bool:
    """True when the name ends in a FITS suffix (optionally compressed)."""
    return url.lower().endswith(FITS_SUFFIXES)


def looks_like_cutout(header: Any) -> bool:
    """Whether a primary header announces a 5-band cutout (``astrokit.survey`` layouts).

    Either a cube in the primary HDU (``NAXIS = 3`` with 5 planes), or an empty primary HDU
    carrying the catalogue magnitudes ``MAG_U`` .. ``MAG_Z`` with one image HDU per band.
    """
    try:
        if int(header.get("NAXIS", 0)) == 3 and int(header.get("NAXIS3", 0)) == 5:
            return True
    except (TypeError, ValueError):
        return False
    return all(f"MAG_{band}" in header for band in "UGRIZ")


class StoreBrowser(w.VBox):
    """Browse an object store, page by page, and preview FITS spectra, cutouts and headers.

    Parameters
    ----------
    url : str, optional
        Where to start. Default: the configured store's shared area. When ``store`` is not
        given, a URL inside the configured store (``ASTROKIT_STORE_URL``) opens that store;
        any other URL opens a store rooted at it (``s3://`` endpoint/credentials from
        ``storage_options`` or the environment). The browser never goes above the root.
    store : astrokit.store.Store, optional
        An open store to browse.
    storage_options : dict, optional
        Passed to :func:`astrokit.store.open_store` for ``s3://`` URLs.
    page_size : int
        Entries fetched per page ("load more" fetches the next page).
    preview : bool
        Open the header view and the spectrum/cutout viewer on selection.
    on_select : callable, optional
        Called with the selected URL; same as :meth:`on_select`.

    Attributes
    ----------
    url : str (trait)
        The directory being listed.
    selected : str (trait)
        URL of the selected file ("" before any selection); observe it, or use
        :meth:`on_select`.
    selected_kind : str (trait)
        What the selection was opened as: "spectrum", "cutout", "fits", "file" or "".
    pattern : str (trait)
        Filter text (see :func:`name_pattern`).
    has_more : bool (trait)
        True when the listing has further pages.
    error : str (trait)
        The last error, as shown in the widget ("" when the last action worked).

    Examples
    --------
    >>> browser = StoreBrowser()                                  # doctest: +SKIP
    >>> browser.on_select(lambda url: print("picked", url))       # doctest: +SKIP
    >>> browser.navigate(browser.store.join("shared", "spectra"))     # doctest: +SKIP
    """

    url = t.Unicode("")
    selected = t.Unicode("")
    selected_kind = t.Unicode("")
    pattern = t.Unicode("")
    has_more = t.Bool(False)
    error = t.Unicode("")
    status = t.Unicode("")
    page_size = t.Int(200)

    def __init__(
        self,
        url: str | None = None,
        *,
        store: Any = None,
        storage_options: dict | None = None,
        page_size: int = 200,
        preview: bool = True,
        on_select: Callable[[str], Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.page_size = page_size
        self.store: Any = None
        self._preview_enabled = preview
        self._entries: list[Any] = []
        self._next_after: str | None = None
        self._callbacks: list[Callable[[str], Any]] = []
        self._updating = False
        self._quiet_pattern = False
        self.spectrum_viewer: Any = None
        self.cutout_viewer: Any = None
        self.header_view = FitsHeaderView()
        self.last_timings: dict[str, float] = {}

        self._build()
        self.add_class("astrokit-store-browser")
        if on_select is not None:
            self.on_select(on_select)

        with self._guard("opening the store"):
            self.store = self._open_store(url, store, storage_options)
        if self.store is not None:
            self._set_shortcuts()
            start = url
            with self._guard("opening the store"):
                start = url if url is not None else self._default_start()
            if start is not None:
                self.navigate(start)
        self.observe(lambda _: setattr(self._error, "value", error_html(self.error)), "error")
        self._error.value = error_html(self.error)

    # ------------------------------------------------------------------ public API
    @property
    def entries(self) -> list[Any]:
        """The entries listed so far in the current directory (all loaded pages)."""
        return list(self._entries)

    def on_select(self, callback: Callable[[str], Any], *, remove: bool = False) -> None:
        """Register (or with ``remove=True`` unregister) ``callback(url)`` for selections.

        Callbacks run after the preview opened. An exception in a callback is shown in the
        error label and does not stop the other callbacks.
        """
        if remove:
            self._callbacks.remove(callback)
        else:
            self._callbacks.append(callback)

    def navigate(self, url: str) -> None:
        """List directory ``url`` (first page), clearing the filter's paging state."""
        if self.store is None:
            self.error = "No store is open: see the message above, then create a new browser."
            return
        with self._guard(f"listing {url}"):
            url = self._norm(url)
            if url != self.url and self.pattern:
                # A filter belongs to the directory it was typed in.
                self._quiet_pattern = True
                try:
                    self.pattern = ""
                finally:
                    self._quiet_pattern = False
            page = self.store.list_page(url, limit=self.page_size, pattern=self._glob())
            self._entries = list(page.entries)
            self._next_after = page.next_after
            self.url = url
            self.error = ""
            self._show_listing()

    def load_more(self) -> None:
        """Fetch the next page of the current directory and append it."""
        if self.store is None or self._next_after is None:
            return
        with self._guard(f"listing {self.url}"):
            page = self.store.list_page(
                self.url, limit=self.page_size, after=self._next_after, pattern=self._glob()
            )
            self._entries.extend(page.entries)
            self._next_after = page.next_after
            self.error = ""
            self._show_listing()

    def refresh(self) -> None:
        """List the current directory again from its first page."""
        if self.url:
            self.navigate(self.url)

    def up(self) -> None:
        """Go to the parent directory."""
        parent = self._parent(self.url)
        if parent is not None:
            self.navigate(parent)

    def select(self, url: str) -> str:
        """Select file ``url``: open its preview, set :attr:`selected`, run the callbacks.

        Returns
        -------
        str
            What it was opened as (:attr:`selected_kind`).
        """
        if self.store is None:
            return ""
        start = time.perf_counter()
        kind = "file"
        with self._guard(f"opening {url}"):
            url = self._norm(url)
            self.error = ""
            kind = self._preview(url) if self._preview_enabled else "file"
        self.last_timings = {"select_to_shown_s": time.perf_counter() - start}
        self.selected_kind = kind
        self.selected = url
        for callback in list(self._callbacks):
            with self._guard(f"running the selection callback {callback!r}"):
                callback(url)
        return kind

    # ------------------------------------------------------------------ store / roots
    def _open_store(self, url: str | None, store: Any, storage_options: dict | None) -> Any:
        if store is not None:
            return store
        from astrokit.store import StoreError, open_store, resolve

        if url is not None and storage_options is None and os.environ.get(env.STORE_URL):
            # A URL inside the configured store opens that store, so the shortcuts (shared
            # area, my files) and "up" to its root keep working.
            try:
                configured = open_store()
                normalised = resolve(url, configured)[1].rstrip("/")
            except StoreError:
                configured = None
            if configured is not None:
                root = configured.url.rstrip("/")
                if normalised == root or normalised.startswith(root + "/"):
                    return configured
        return open_store(url, storage_options=storage_options)

    def _norm(self, url: str) -> str:
        from astrokit.store import resolve

        return resolve(url, self.store)[1]

    def _default_start(self) -> str:
        shared = getattr(self.store, "shared_url", None)
        if shared and self.store.exists(shared):
            return shared
        return self.store.url

    def _set_shortcuts(self) -> None:
        options = [("store root", self.store.url)]
        shared = getattr(self.store, "shared_url", None)
        if shared and shared != self.store.url:
            options.append(("shared survey data", shared))
        user = getattr(self.store, "user_url", None)
        if user:
            options.append(("my files", user))
        self._updating = True
        try:
            self._roots.options = options
            self._roots.value = None
        finally:
            self._updating = False

    def _parent(self, url: str) -> str | None:
        """The directory above ``url``, or None at the store's root (the browser stays in it)."""
        if self.store is None or not url or url.rstrip("/") == self.store.url.rstrip("/"):
            return None
        scheme, _, path = url.partition("://")
        path = path.rstrip("/")
        parent = posixpath.dirname(path)
        if not parent or parent == path:
            return None
        parent_url = f"{scheme}://{parent}"
        root = self.store.url.rstrip("/")
        return parent_url if (parent_url + "/").startswith(root + "/") else None

    def _glob(self) -> str | None:
        return name_pattern(self.pattern)

    # ------------------------------------------------------------------ preview
    def _preview(self, url: str) -> str:
        if not is_fits(url):
            entry = self.store.info(url)
            modified = f", modified {entry.modified:%Y-%m-%d %H:%M} UTC" if entry.modified else ""
            self._info.value = html.escape(f"{entry.name}: {human_size(entry.size)}{modified}")
            self._preview_box.children = [self._info]
            return "file"
        header = self.header_view.load(url, store=self.store)
        if header is None:
            self.error = self.header_view.error
            self._preview_box.children = [self.header_view]
            return "fits"
        if looks_like_cutout(header):
            from .cutout import CutoutViewer

            if self.cutout_viewer is None:
                self.cutout_viewer = CutoutViewer(store=self.store)
            self.cutout_viewer.show(url)
            self._preview_box.children = [self.cutout_viewer, self._header_box]
            return "cutout"
        from astrokit.formats import UnknownFormatError

        from .spectrum import SpectrumViewer

        if self.spectrum_viewer is None:
            self.spectrum_viewer = SpectrumViewer(store=self.store)
        try:
            self.spectrum_viewer.clear(redraw=False)
            self.spectrum_viewer.add(url)
        except UnknownFormatError as exc:
            # Not a spectrum or cutout: the header is still worth showing.
            self._info.value = html.escape(f"Header only ({exc})")
            self._preview_box.children = [self._info, self.header_view]
            return "fits"
        self._preview_box.children = [self.spectrum_viewer]
        return "spectrum"

    # ------------------------------------------------------------------ widgets
    def _build(self) -> None:
        self._roots = w.Dropdown(description="go to", layout=w.Layout(width="16em"))
        self._path = w.Text(
            continuous_update=False, layout=w.Layout(width="36em"), placeholder="URL"
        )
        self._up_button = w.Button(icon="arrow-up", tooltip="parent directory", layout=_narrow())
        self._refresh_button = w.Button(icon="refresh", tooltip="refresh", layout=_narrow())
        self._filter = w.Text(
            placeholder="filter: text or glob (*.fits)",
            continuous_update=False,
            layout=w.Layout(width="18em"),
        )
        self._listing = w.Select(options=[], rows=14, layout=w.Layout(width="100%"))
        self._listing.add_class("astrokit-listing")
        self._more = w.Button(description="load more", icon="angle-double-down", disabled=True)
        self._status = w.HTML()
        self._status.add_class("astrokit-status")
        self._error = w.HTML()
        self._error.add_class("astrokit-error")
        self._info = w.HTML()
        self._header_box = w.Accordion(children=[self.header_view])
        self._header_box.set_title(0, "FITS header")
        self._header_box.selected_index = None
        self._preview_box = w.VBox()

        self._roots.observe(self._on_root, "value")
        self._path.observe(self._on_path, "value")
        self._up_button.on_click(lambda _: self.up())
        self._refresh_button.on_click(lambda _: self.refresh())
        self._more.on_click(lambda _: self.load_more())
        self._listing.observe(self._on_pick, "value")
        w.link((self, "pattern"), (self._filter, "value"))
        self.observe(self._on_pattern, "pattern")
        self.observe(lambda _: setattr(self._status, "value", html.escape(self.status)), "status")
        self.observe(lambda _: setattr(self._more, "disabled", not self.has_more), "has_more")

        self.children = [
            style_widget(),
            w.HBox([self._roots, self._up_button, self._path, self._refresh_button]),
            w.HBox([self._filter, self._status]),
            self._error,
            self._listing,
            self._more,
            self._preview_box,
        ]

    def _show_listing(self) -> None:
        options: list[tuple[str, str]] = []
        if self._parent(self.url) is not None:
            options.append(("\u2191 ..", _UP))
        options.extend((_label(entry), entry.url) for entry in self._entries)
        self._updating = True
        try:
            self._listing.options = options
            self._listing.value = None
            self._path.value = self.url
        finally:
            self._updating = False
        self.has_more = self._next_after is not None
        n = len(self._entries)
        more = ", more available" if self.has_more else ""
        self.status = f"{n} entr{'y' if n == 1 else 'ies'}{more}"

    def _on_pattern(self, change: dict[str, Any]) -> None:
        if not self._quiet_pattern:
            self.refresh()

    def _on_root(self, change: dict[str, Any]) -> None:
        if not self._updating and change["new"]:
            self.navigate(change["new"])
            self._updating = True
            try:
                self._roots.value = None  # so choosing the same shortcut again works
            finally:
                self._updating = False

    def _on_path(self, change: dict[str, Any]) -> None:
        if not self._updating and change["new"] and change["new"] != self.url:
            self.navigate(change["new"])

    def _on_pick(self, change: dict[str, Any]) -> None:
        if self._updating or change["new"] is None:
            return
        value = change["new"]
        if value == _UP:
            self.up()
            return
        entry = next((e for e in self._entries if e.url == value), None)
        if entry is not None and entry.kind == "directory":
            self.navigate(entry.url)
        else:
            self.select(value)

    @contextlib.contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        try:
            yield
        except Exception as exc:  # shown in the widget as a sentence, never a traceback
            self.error = user_message(exc, action=action, secrets=store_secrets(self.store))


def _label(entry: Any) -> str:
    """One listing row: name, size and time in fixed-width columns (non-breaking spaces)."""
    is_dir = entry.kind == "directory"
    name = entry.name + ("/" if is_dir else "")
    if len(name) > 48:
        name = name[:45] + "..."
    size = "" if is_dir else human_size(entry.size)
    when = f"{entry.modified:%Y-%m-%d %H:%M}" if entry.modified else ""
    # Plain glyphs: emoji fonts are often missing on servers and in headless browsers.
    icon = "\u25b8" if is_dir else "\u00b7"
    row = f"{icon} {name:<48} {size:>10}  {when}"
    return row.replace(" ", "\u00a0")


def _narrow() -> w.Layout:
    return w.Layout(width="3em")
