"""System accounts: one Unix account per hub user on the embedded default.

When the hub runs as root, every process of a user's server (notebook, kernels, terminals,
cluster manager, scheduler, workers) runs under that user's own account, as The Littlest
JupyterHub does. The account is ``<prefix><hub name>`` (e.g. ``astrokit-ada``), created on
first spawn with a private (0700) home, and kept afterwards: files a user made are still
theirs at the next login.

Account names are checked here rather than left to ``useradd``, so that a hub name that
cannot become an account is refused with a sentence naming it, not an exit status.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import os
import pwd
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "AccountError",
    "SystemAccount",
    "account_name",
    "chown_tree",
    "ensure_account",
    "lookup_account",
    "make_parents_traversable",
    "remove_account",
]

#: What ``useradd`` accepts portably (Debian's NAME_REGEX without the trailing ``$``).
_ACCOUNT_NAME = re.compile(r"^[a-z_][a-z0-9_-]*$")
#: Longest account name ``useradd`` accepts.
MAX_ACCOUNT_NAME = 32

# One lock per account name, so two concurrent spawns (named servers) do not both run useradd.
_locks: dict[str, asyncio.Lock] = {}


class AccountError(RuntimeError):
    """A hub user cannot be mapped to, or given, a system account (message is user-safe)."""


@dataclass(frozen=True)
class SystemAccount:
    """A Unix account that a user's processes run as."""

    name: str
    uid: int
    gid: int
    home: str


def account_name(prefix: str, hub_user: str) -> str:
    """The system account of ``hub_user``: ``prefix + hub_user``.

    Raises
    ------
    AccountError
        If the result is not a valid account name (lower-case letters, digits, ``-`` and
        ``_``, starting with a letter or ``_``, at most 32 characters).

    >>> account_name("astrokit-", "ada")
    'astrokit-ada'
    """
    name = f"{prefix}{hub_user}"
    if len(name) > MAX_ACCOUNT_NAME:
        raise AccountError(
            f"user name {hub_user!r} is too long for a system account: {name!r} has "
            f"{len(name)} characters, at most {MAX_ACCOUNT_NAME} are allowed"
        )
    if not _ACCOUNT_NAME.match(name):
        raise AccountError(
            f"user name {hub_user!r} cannot become a system account ({name!r}): use lower-case "
            "letters, digits, '-' and '_' only"
        )
    return name


def lookup_account(name: str) -> SystemAccount | None:
    """The existing account ``name``, or ``None``."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return None
    return SystemAccount(name=entry.pw_name, uid=entry.pw_uid, gid=entry.pw_gid, home=entry.pw_dir)


async def _run(*cmd: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *cmd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode(errors="replace").strip()


async def ensure_account(name: str, home: str | os.PathLike[str]) -> SystemAccount:
    """Return account ``name``, creating it (own group, home ``home`` 0700) if missing.

    An existing account is used as it is; its home is created if missing. Never blocks the
    event loop (``useradd`` runs as a subprocess).

    Raises
    ------
    AccountError
        If ``useradd`` is missing or fails.
    """
    lock = _locks.setdefault(name, asyncio.Lock())
    async with lock:
        account = lookup_account(name)
        created = account is None
        if account is None:
            useradd = shutil.which("useradd") or "/usr/sbin/useradd"
            if not os.path.exists(useradd):
                raise AccountError("cannot create system accounts: useradd is not installed")
            code, out = await _run(
                useradd,
                "--home-dir",
                str(home),
                "--no-create-home",
                "--user-group",
                "--shell",
                "/bin/bash",
                "--comment",
                "AstroKit user",
                name,
            )
            account = lookup_account(name)
            if account is None:
                raise AccountError(f"creating system account {name!r} failed: {out or code}")
        home_path = Path(account.home)
        if not home_path.exists():
            make_parents_traversable(home_path)
            home_path.mkdir(mode=0o700)
            os.chown(home_path, account.uid, account.gid)
        elif created:
            # A home the admin provisioned before the account existed becomes the user's.
            await asyncio.to_thread(chown_tree, home_path, account)
            home_path.chmod(0o700)
        return account


def make_parents_traversable(path: str | os.PathLike[str]) -> None:
    """Create the missing parents of ``path`` as 0711: others may pass through, not list.

    The hub runs with umask 077, so a plain ``mkdir(parents=True)`` would make parents
    that the accounts below them cannot enter.
    """
    missing = []
    for parent in Path(path).parents:
        if parent.exists():
            break
        missing.append(parent)
    for parent in reversed(missing):
        with contextlib.suppress(FileExistsError):
            parent.mkdir()
        parent.chmod(0o711)


async def remove_account(name: str) -> None:
    """Delete account ``name`` and its group (not its home); no error if it is gone."""
    if lookup_account(name) is None:
        return
    userdel = shutil.which("userdel") or "/usr/sbin/userdel"
    code, out = await _run(userdel, name)
    if code and lookup_account(name) is not None:
        raise AccountError(f"removing system account {name!r} failed: {out or code}")
    try:
        grp.getgrnam(name)
    except KeyError:
        return
    groupdel = shutil.which("groupdel") or "/usr/sbin/groupdel"
    await _run(groupdel, name)


def chown_tree(path: str | os.PathLike[str], account: SystemAccount) -> None:
    """Give ``path`` and everything below it to ``account`` (symlinks themselves only)."""
    root = Path(path)
    os.chown(root, account.uid, account.gid, follow_symlinks=False)
    for dirpath, dirnames, filenames in os.walk(root):
        for entry in (*dirnames, *filenames):
            os.chown(Path(dirpath) / entry, account.uid, account.gid, follow_symlinks=False)
