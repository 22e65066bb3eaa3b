"""The library's exception hierarchy: one base, and a mark for messages fit to show a user.

Every error AstroKit raises on purpose derives from :class:`AstroKitError`, so a caller can
catch "anything AstroKit refused" in one clause and let genuine bugs (``TypeError``,
``KeyError``...) through. Within it, :class:`UserError` marks the errors whose message is
written for the person at the notebook or the command line: it names the bad value, file or
URL and what is allowed, and never carries credentials or internals. The widgets and the CLI
show a :class:`UserError`'s message as it is; anything else they treat as internal (class name
shown, traceback to the log).

Each concept keeps its own subclasses in its own module (``StoreError`` in
:mod:`astrokit.store`, ``FormatError`` in :mod:`astrokit.formats`, ...); classes that were
``ValueError``/``RuntimeError`` before keep that base too, so existing ``except`` clauses work.
"""

from __future__ import annotations

__all__ = ["AstroKitError", "CheckpointError", "UserError"]


class AstroKitError(Exception):
    """Base class of every error AstroKit raises on purpose."""


class UserError(AstroKitError):
    """An error whose message is meant for the user (names what was wrong, holds no secrets)."""


class CheckpointError(UserError, RuntimeError):
    """Stored state cannot be used: a model checkpoint or an active-learning loop's state.

    Model checkpoints (:mod:`astrokit.models.checkpoint`) refine it into
    ``CheckpointFormatError`` and ``CheckpointMismatchError``; the message names the file and
    what did not fit.
    """
