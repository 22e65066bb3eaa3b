"""Per-user passwords for the embedded default: NativeAuthenticator plus a first admin.

``jupyterhub-nativeauthenticator`` (also offered by The Littlest JupyterHub) keeps a bcrypt
hash of each user's password in the hub's database. People sign up at ``/hub/signup``; an
admin authorizes them at ``/hub/authorize`` and can reset anyone's password at
``/hub/change-password/<name>``; users change their own at ``/hub/change-password``.

What it lacks is a first admin who can log in before anyone else has had the chance to sign
up under the admin's name. :class:`AstroKitAuthenticator` adds ``password_files``: at hub
start, each listed user that has no password yet is created, authorized, with the password
read from a root-only file (``make run`` generates the admin's). Nothing else changes.
"""

from __future__ import annotations

import os
from pathlib import Path

from nativeauthenticator import NativeAuthenticator
from nativeauthenticator.handlers import LoginHandler as NativeLoginHandler
from traitlets import Dict

__all__ = ["AstroKitAuthenticator"]


class _NoMetrics:
    """Stands in for the statsd client JupyterHub 6 no longer gives handlers."""

    def timer(self, name: str) -> _NoMetrics:
        return self

    def start(self) -> _NoMetrics:
        return self

    def stop(self, send: bool = True) -> None:
        return None


class _LoginHandler(NativeLoginHandler):
    # nativeauthenticator 1.3.0 (its latest release) times logins with `self.statsd`, which
    # JupyterHub 6 removed: without this every login answers 500.
    statsd = _NoMetrics()


class AstroKitAuthenticator(NativeAuthenticator):
    """NativeAuthenticator whose listed users get their first password from a file."""

    password_files = Dict(
        help="""Hub user name -> path of a file holding that user's initial password. At hub
        start, each listed user without a password in the hub's database is created and
        authorized with it; users who already have one keep theirs (so a password changed
        at /hub/change-password is not reset by a restart). The files should be readable by
        root only.""",
    ).tag(config=True)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name, path in self.password_files.items():
            self._create_from_file(name, Path(path))

    def get_handlers(self, app):
        """NativeAuthenticator's pages, with a login handler that runs on JupyterHub 6."""
        return [
            (path, _LoginHandler if handler is NativeLoginHandler else handler)
            for path, handler in super().get_handlers(app)
        ]

    def _create_from_file(self, name: str, path: Path) -> None:
        if self.user_exists(name):
            return
        if path.stat().st_mode & 0o077:
            self.log.warning("password file %s is readable by other users", path)
        password = path.read_text().strip()
        if not password:
            raise ValueError(f"password file {path} for user {name!r} is empty")
        info = self.create_user(name, password)
        if info is None:
            raise ValueError(
                f"user {name!r} could not be created from {path}: the name or the password "
                f"is not accepted (at least {self.minimum_password_length} characters)"
            )
        if not info.is_authorized:
            info.is_authorized = True
            self.db.commit()
        self.log.info("created user %s with the password from %s", name, os.fspath(path))
