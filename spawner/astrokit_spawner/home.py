"""What a user finds in their home when JupyterLab opens: tutorials, the store, a welcome.

At every start, before the notebook server, as the user's own account (so a link or file the
user planted can only ever affect the user):

- the platform's teaching notebooks are copied into ``astrokit-tutorials/``. A copy the user
  has not edited is replaced when the platform ships a newer version; an edited one is kept,
  and the new version lands beside it as ``<name>.updated.ipynb`` (Rubin's tutorial folder
  behaves the same way). A record of what was installed, ``.astrokit-tutorials.json``, tells
  the two apart by content hash.
- for a ``file://`` store, two links make the store visible in JupyterLab's file browser:
  ``store-shared`` (the survey area, read-only for users by its permissions) and
  ``store-mine`` (the user's own prefix). An entry of that name that is not our link is
  left alone.
- ``WELCOME.md`` says what is there, links the Dask dashboard through the hub and, for S3
  stores, where the data is. It is rewritten at each start (the dashboard's port changes).

Run as ``python -P -m astrokit_spawner.home SPEC.json -- COMMAND...``: it prepares the
home, then becomes COMMAND, the notebook server (:mod:`astrokit_spawner.notebook_start`). A
failure here is reported on stderr (the notebook's log) and never stops the server from
starting.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = [
    "TUTORIALS_DIR",
    "WELCOME_FILE",
    "HomeSpec",
    "home_command",
    "install_tutorials",
    "link_store",
    "prepare_home",
    "welcome_text",
]

TUTORIALS_DIR = "astrokit-tutorials"
WELCOME_FILE = "WELCOME.md"
#: The record of installed tutorial copies (name -> sha256 of the copy we wrote).
RECORD = ".astrokit-tutorials.json"


@dataclass(frozen=True)
class HomeSpec:
    """Everything :func:`prepare_home` does for one start (written by the spawner as JSON)."""

    home: str
    tutorials_source: str = ""
    links: dict[str, str] = field(default_factory=dict)
    welcome: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> HomeSpec:
        return cls(**json.loads(text))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def install_tutorials(source: Path, dest: Path) -> dict[str, str]:
    """Copy ``source/*.ipynb`` into ``dest`` without overwriting the user's edits.

    Returns what happened to each notebook: ``added``, ``updated``, ``kept`` (unchanged),
    or ``edited`` (the user's copy kept, the new version written beside it).
    """
    dest.mkdir(mode=0o755, exist_ok=True)
    record_path = dest / RECORD
    try:
        record: dict[str, str] = json.loads(record_path.read_text())
    except (OSError, ValueError):
        record = {}
    outcome: dict[str, str] = {}
    for src in sorted(source.glob("*.ipynb")):
        data = src.read_bytes()
        new_hash = hashlib.sha256(data).hexdigest()
        target = dest / src.name
        if not target.exists():
            _write_atomic(target, data)
            record[src.name], outcome[src.name] = new_hash, "added"
            continue
        current = _sha256(target)
        if current == new_hash:
            record[src.name], outcome[src.name] = new_hash, "kept"
        elif current == record.get(src.name):  # ours, unedited: bring it up to date
            _write_atomic(target, data)
            record[src.name], outcome[src.name] = new_hash, "updated"
        else:  # the user's edits win; the new version goes beside them
            beside = target.with_name(f"{target.stem}.updated{target.suffix}")
            if not beside.exists() or _sha256(beside) != new_hash:
                _write_atomic(beside, data)
            outcome[src.name] = "edited"
    _write_atomic(record_path, json.dumps(record, indent=1, sort_keys=True).encode())
    return outcome


def link_store(home: Path, links: Mapping[str, str]) -> dict[str, str]:
    """Make ``home/<name>`` a link to each target; leave entries that are not our links."""
    outcome = {}
    for name, target in links.items():
        link = home / name
        if link.is_symlink():
            if os.readlink(link) == target:
                outcome[name] = "kept"
                continue
            link.unlink()  # the store moved: point the link at its new place
        elif link.exists():
            outcome[name] = "skipped: a file or folder of that name is in the way"
            continue
        link.symlink_to(target, target_is_directory=True)
        outcome[name] = "linked"
    return outcome


def welcome_text(
    *,
    user: str,
    profile: str,
    dashboard_url: str | None,
    store_url: str,
    user_url: str,
    links: Mapping[str, str],
    tutorials: bool,
) -> str:
    """The text of ``WELCOME.md`` for one start."""
    lines = [
        f"# Welcome to AstroKit, {user}",
        "",
        f"Your server runs the **{profile}** profile and has its own Dask cluster, which "
        "`astrokit.connect()` (or a bare `distributed.Client()`) reaches with no arguments.",
        "",
    ]
    if dashboard_url:
        lines += [
            f"- **Dask dashboard**: [{dashboard_url}]({dashboard_url}), also in JupyterLab's "
            "Dask panel (the Dask icon in the left sidebar): your cluster is listed there, "
            "and its task stream, progress and worker panes open inside JupyterLab.",
        ]
    if tutorials:
        lines += [
            f"- **Tutorials**: `{TUTORIALS_DIR}/`, numbered in the order to read them. They "
            "are yours to edit: a newer version from the platform is added next to an edited "
            "notebook as `<name>.updated.ipynb`, never over your changes.",
        ]
    if links:
        described = {
            "store-shared": "the shared survey area (read-only)",
            "store-mine": "your own prefix of the store (only you can read or write it)",
        }
        for name in links:
            lines.append(f"- **`{name}/`**: {described.get(name, 'part of the store')}.")
    else:
        lines += [
            f"- **Data**: the survey store is `{store_url}` (an object store, so it has no "
            "folder here). Browse it with `from astrokit_widgets import StoreBrowser; "
            f"StoreBrowser()`; your own prefix is `{user_url}`.",
        ]
    lines += [
        "",
        "This file is rewritten each time your server starts; keep your notes elsewhere.",
        "",
    ]
    return "\n".join(lines)


def prepare_home(spec: HomeSpec) -> dict[str, object]:
    """Tutorials, store links and the welcome file for ``spec.home``; returns what was done."""
    home = Path(spec.home)
    done: dict[str, object] = {}
    if spec.tutorials_source and Path(spec.tutorials_source).is_dir():
        done["tutorials"] = install_tutorials(Path(spec.tutorials_source), home / TUTORIALS_DIR)
    if spec.links:
        done["links"] = link_store(home, spec.links)
    if spec.welcome:
        _write_atomic(home / WELCOME_FILE, spec.welcome.encode())
        done["welcome"] = WELCOME_FILE
    return done


def home_command(python: str, spec_path: str) -> list[str]:
    """The start of the notebook's command line: prepare the home, then run what follows.

    ``-P``: the working directory (the user's home) is not put on ``sys.path``, so a file
    the user saved there never shadows a module of the notebook server that may run in this
    same process (:mod:`astrokit_spawner.notebook_start`).
    """
    return [python, "-P", "-m", __name__, spec_path, "--"]


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if "--" not in argv or argv.index("--") != 1 or len(argv) < 3:
        sys.exit("usage: python -m astrokit_spawner.home SPEC.json -- COMMAND [ARGS...]")
    spec_path, command = argv[0], argv[2:]
    try:
        done = prepare_home(HomeSpec.from_json(Path(spec_path).read_text()))
        print(f"astrokit home: {json.dumps(done)}", file=sys.stderr, flush=True)
    except Exception as exc:  # the notebook server must start even if this fails
        print(f"astrokit home: not prepared: {exc!r}", file=sys.stderr, flush=True)
    from .notebook_start import become_notebook_server

    become_notebook_server(command)


if __name__ == "__main__":
    main()
