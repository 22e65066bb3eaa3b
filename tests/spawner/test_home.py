"""What a user finds in their home: tutorials that respect edits, store links, a welcome."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from astrokit_spawner.home import (
    TUTORIALS_DIR,
    HomeSpec,
    home_command,
    install_tutorials,
    link_store,
    prepare_home,
    welcome_text,
)


def _nb(text: str) -> str:
    return json.dumps({"cells": [{"cell_type": "markdown", "source": text}], "nbformat": 4})


def test_tutorials_are_added_updated_and_edits_are_kept(tmp_path):
    src, dest = tmp_path / "src", tmp_path / "home" / TUTORIALS_DIR
    src.mkdir()
    (tmp_path / "home").mkdir()
    (src / "01-a.ipynb").write_text(_nb("a v1"))
    (src / "02-b.ipynb").write_text(_nb("b v1"))
    assert install_tutorials(src, dest) == {"01-a.ipynb": "added", "02-b.ipynb": "added"}
    assert install_tutorials(src, dest) == {"01-a.ipynb": "kept", "02-b.ipynb": "kept"}

    (dest / "02-b.ipynb").write_text(_nb("b: my notes"))  # the user edits one
    (src / "01-a.ipynb").write_text(_nb("a v2"))  # the platform ships new versions of both
    (src / "02-b.ipynb").write_text(_nb("b v2"))
    assert install_tutorials(src, dest) == {"01-a.ipynb": "updated", "02-b.ipynb": "edited"}
    assert "a v2" in (dest / "01-a.ipynb").read_text()
    assert "my notes" in (dest / "02-b.ipynb").read_text()  # never overwritten
    assert "b v2" in (dest / "02-b.updated.ipynb").read_text()  # the new version beside it

    (dest / "01-a.ipynb").unlink()  # a deleted tutorial comes back at the next start
    assert install_tutorials(src, dest)["01-a.ipynb"] == "added"


def test_store_links_point_at_the_store_and_leave_the_users_own_entries(tmp_path):
    home, shared, mine = tmp_path / "home", tmp_path / "shared", tmp_path / "mine"
    for d in (home, shared, mine):
        d.mkdir()
    (home / "store-mine").mkdir()  # the user's own folder of that name stays
    done = link_store(home, {"store-shared": str(shared), "store-mine": str(mine)})
    assert done["store-shared"] == "linked"
    assert done["store-mine"].startswith("skipped")
    assert (home / "store-shared").resolve() == shared
    moved = tmp_path / "moved"
    moved.mkdir()
    assert link_store(home, {"store-shared": str(moved)})["store-shared"] == "linked"
    assert (home / "store-shared").resolve() == moved


def test_welcome_names_the_dashboard_the_tutorials_and_the_store():
    text = welcome_text(
        user="ada",
        profile="small",
        dashboard_url="/user/ada/proxy/20001/status",
        store_url="file:///srv/store",
        user_url="file:///srv/store/users/ada",
        links={"store-shared": "/srv/store/shared", "store-mine": "/srv/store/users/ada"},
        tutorials=True,
    )
    assert "](/user/ada/proxy/20001/status)" in text
    assert f"`{TUTORIALS_DIR}/`" in text and "`store-shared/`" in text
    s3 = welcome_text(
        user="ada",
        profile="small",
        dashboard_url=None,
        store_url="s3://survey",
        user_url="s3://survey/users/ada",
        links={},
        tutorials=False,
    )
    assert "s3://survey" in s3 and "StoreBrowser" in s3 and "s3://survey/users/ada" in s3


def test_the_command_prepares_the_home_then_becomes_the_server(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    spec = tmp_path / "home.json"
    spec.write_text(HomeSpec(home=str(home), welcome="# hi\n").to_json())
    out = subprocess.run(
        [*home_command(sys.executable, str(spec)), sys.executable, "-c", "print('server')"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert out.stdout.strip() == "server"
    assert (home / "WELCOME.md").read_text() == "# hi\n"


def test_a_failure_to_prepare_never_stops_the_server(tmp_path):
    spec = tmp_path / "home.json"
    spec.write_text("not json")
    out = subprocess.run(
        [*home_command(sys.executable, str(spec)), sys.executable, "-c", "print('server')"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert out.returncode == 0 and out.stdout.strip() == "server"
    assert "not prepared" in out.stderr


def test_prepare_home_skips_a_missing_tutorials_folder(tmp_path):
    done = prepare_home(HomeSpec(home=str(tmp_path), tutorials_source=str(tmp_path / "none")))
    assert done == {}
