"""Small pieces shared by the widgets: user-facing error text, CSS, writing exports."""

from __future__ import annotations

import html
import logging
import os
import re
from pathlib import Path
from typing import Any

import ipywidgets as w

from astrokit.formats.errors import FormatError
from astrokit.store import (
    ReadOnlyAreaError,
    StoreCredentialsError,
    StoreError,
    StoreNotFound,
    StorePermissionError,
)

log = logging.getLogger(__name__)

#: One stylesheet for all AstroKit widgets, injected once per widget tree via an HTML child.
#: ipywidgets has no other way to ship CSS without a lab extension of our own.
STYLE = """
<style>
.astrokit-error { color: #b00020; font-weight: 600; white-space: pre-wrap; }
.astrokit-error:empty { display: none; }
.astrokit-listing select { font-family: var(--jp-code-font-family, monospace);
                           font-size: 12px; }
.astrokit-header pre { max-height: 24em; overflow: auto; font-size: 11px; margin: 0; }
.astrokit-status { color: var(--jp-ui-font-color2, #555); }
.astrokit-meta td, .astrokit-meta th { white-space: nowrap; padding: 0 0.6em; text-align: left; }
.astrokit-meta td:last-child { white-space: normal; word-break: break-all; }
</style>
"""

# Anything that looks like a credential in an exception message is blanked before display:
# botocore and s3fs messages sometimes echo signed URLs or key ids.
_SECRET_PATTERNS = (
    re.compile(r"(?i)(aws_secret_access_key|secret|password|token|signature|credential)=[^&\s]+"),
    re.compile(r"(?i)(X-Amz-[A-Za-z-]+)=[^&\s]+"),
)


def style_widget() -> w.HTML:
    """An invisible HTML widget carrying :data:`STYLE`."""
    return w.HTML(STYLE, layout=w.Layout(display="none"))


def scrub(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Remove credential-looking fragments and the given secret values from ``text``."""
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: f"{m.group(1)}=***", text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def user_message(exc: BaseException, *, action: str, secrets: tuple[str, ...] = ()) -> str:
    """A one-paragraph, traceback-free description of ``exc`` for the error label.

    Parameters
    ----------
    exc : BaseException
        What went wrong. AstroKit's store and format errors already carry user-safe
        messages that name the URL and what was expected; other exceptions are prefixed
        with their class name so the reader can search for it.
    action : str
        What the widget was doing, e.g. ``"listing s3://bucket/shared"``.
    secrets : tuple of str
        Values (keys, secrets) that must never be shown.
    """
    kind = _describe(exc)
    detail = str(exc).strip() or type(exc).__name__
    # Store errors start with the URL ("s3://b/x: no such ..."); when the action already
    # names it, say it once.
    head, sep, rest = detail.partition(": ")
    if sep and rest and head in action:
        detail = rest
    # The traceback goes to the log at debug level for whoever runs the server; the user
    # sees the sentence only.
    log.debug("widget error while %s", action, exc_info=exc)
    return scrub(f"{kind} while {action}: {detail}", secrets)


#: The headline of a store failure, by class: the first match wins, most specific first.
_STORE_HEADLINES: tuple[tuple[type[BaseException] | tuple[type[BaseException], ...], str], ...] = (
    (StoreCredentialsError, "No valid credentials"),
    (ReadOnlyAreaError, "Read-only area"),
    ((StorePermissionError, PermissionError), "Permission denied"),
    ((StoreNotFound, FileNotFoundError), "Not found"),
    (StoreError, "Store error"),
)


def _describe(exc: BaseException) -> str:
    """The headline for ``exc``, chosen by its class (and the classes of what it wraps)."""
    # A reader may wrap a store failure (a missing file, refused credentials) in its own
    # error; the reader's message is kept, but the headline says what really happened.
    chain = []
    current: BaseException | None = exc
    while current is not None and len(chain) < 8:
        chain.append(current)
        current = current.__cause__
    for item in chain:
        if isinstance(item, _no_credentials_errors()):  # s3fs can let botocore's through
            return "No valid credentials"
        for classes, headline in _STORE_HEADLINES:
            if isinstance(item, classes):
                return headline
    if isinstance(exc, FormatError):
        return "Unreadable file"
    # Anything else, ours (a UserError, whose message is written for the reader) or not,
    # keeps its class name so that the reader can search for it.
    return f"Error ({type(exc).__name__})"


def _no_credentials_errors() -> tuple[type[BaseException], ...]:
    try:  # botocore comes with s3fs; a file://-only installation has no S3 errors to meet
        from botocore.exceptions import NoCredentialsError
    except ImportError:
        return ()
    return (NoCredentialsError,)


def error_html(message: str) -> str:
    """Escape a message for an HTML error label."""
    return html.escape(message)


def store_secrets(store: Any) -> tuple[str, ...]:
    """Credential values reachable from a store's filesystem, so messages can be scrubbed."""
    fs = getattr(store, "fs", None)
    found = []
    for attr in ("secret", "key", "token"):
        value = getattr(fs, attr, None)
        if isinstance(value, str) and len(value) >= 4:
            found.append(value)
    for name in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        value = os.environ.get(name)
        if value and len(value) >= 4:
            found.append(value)
    return tuple(found)


def write_through_store(target: str | os.PathLike[str], data: bytes, store: Any = None) -> str:
    """Write a widget's export to ``target`` (a store URL or a local path); return its URL.

    Every export goes through :meth:`astrokit.store.Store.write_bytes`, so it is atomic and
    the read-only shared area is refused for a plain path exactly as for its URL. A plain path
    is the notebook's local disk (relative to its working directory), even when ``store`` is
    an ``s3://`` store; ``store`` is used when ``target`` is on its backend, otherwise the
    environment's store or one rooted at the target (:func:`astrokit.store.resolve`), which
    still refuses ``ASTROKIT_SHARED_URL``.
    """
    from astrokit.store import resolve

    url = os.fspath(target)
    if "://" not in url:
        url = Path(os.path.abspath(os.path.expanduser(url))).as_uri()
    backend = "s3" if url.split("://", 1)[0] in ("s3", "s3a") else "file"
    if store is not None and getattr(store, "protocol", None) != backend:
        store = None
    store, url = resolve(url, store)
    store.write_bytes(url, data)
    return url


def human_size(size: int | None) -> str:
    """``1536`` -> ``"1.5 KiB"``; None -> ``""``."""
    if size is None:
        return ""
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if value < 1024:
            return f"{value:.1f} {unit}"
    return f"{value / 1024:.1f} TiB"
