"""``AstroKitSpawner.progress()`` ends cleanly, never raising: unstarted, failed or broken.

JupyterHub streams ``progress()`` to the spawn page; an exception there breaks the page
instead of showing why the spawn failed (DESIGN.md §5, the spawner contract).
"""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace

import pytest
from astrokit_spawner import AstroKitSpawner

# Generous against a loaded 2-core machine; a hang is what these tests catch.
DEADLINE = 30.0


def _spawner(tmp_path, **config):
    # The mixin and start() read only .name and .groups of JupyterHub's User object here.
    user = SimpleNamespace(name="ada", groups=[])
    # As the hub's own account (no system account is created for a progress test), which a
    # root test run must ask for explicitly.
    spawner = AstroKitSpawner(
        user=user, run_dir=str(tmp_path / "run"), single_account=True, **config
    )
    spawner.runs_as_root = False
    return spawner


async def _collect(spawner):
    """All events of one progress() stream; fails (rather than hangs) past the deadline."""

    async def drain():
        return [event async for event in spawner.progress()]

    return await asyncio.wait_for(drain(), DEADLINE)


async def test_progress_of_a_spawner_that_never_started_is_empty(tmp_path):
    assert await _collect(_spawner(tmp_path)) == []


async def test_progress_ends_after_a_failed_start(tmp_path):
    # The home directory cannot be created (its parent is a file): start() fails after the
    # profile and credentials stages, i.e. with events already streamed.
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    spawner = _spawner(tmp_path, home_dir_template=f"{blocker}/{{username}}")

    # A stream opened before start(), as the spawn page does, must end when start() fails.
    during = asyncio.ensure_future(_collect(spawner))
    with pytest.raises(NotADirectoryError):
        await spawner.start()
    events = await during
    messages = [event["message"] for event in events]
    assert messages[0].startswith("Profile small:"), messages
    assert messages[-1] == "TLS credentials made for this server", messages
    progress = [event["progress"] for event in events]
    assert progress == sorted(progress)

    # A stream opened after the failure (a reconnecting page) replays it and ends too.
    assert await _collect(spawner) == events
    assert spawner.server_id == ""  # the failed spawn's state is gone
    assert not any((tmp_path / "run" / "servers").iterdir())  # and its credentials


async def test_an_internal_error_ends_the_stream_and_is_logged(tmp_path, caplog):
    spawner = _spawner(tmp_path)
    # Simulate a start in progress whose wake-up signal is broken.
    spawner._start_done = False
    spawner._event_signal = None
    with caplog.at_level(logging.ERROR):
        assert await _collect(spawner) == []
    assert "progress stream for ada failed" in caplog.text
