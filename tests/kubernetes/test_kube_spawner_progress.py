"""``AstroKitKubeSpawner.progress()`` never raises, also when the hub may not read events.

A hub without ``list events`` permission (an RBAC mistake) must show the spawn page a
message, not break it. (With events readable, a stream on a spawner whose start() was never
called waits for it, as KubeSpawner's does: the hub may open the stream before calling
start(). So "never started" is only tested here on the failure path.)
"""

from __future__ import annotations

import asyncio

import pytest
from jupyterhub.spawner import SpawnException
from k8s_fake_api import DASK
from k8s_helpers import make_spawner, start_server
from kubernetes_asyncio.client.rest import ApiException

EVENTS = ("api/v1", "events")
PODS = ("api/v1", "pods")

# Generous against a loaded 2-core machine; a hang is what these tests catch.
DEADLINE = 30.0


async def _collect(spawner):
    async def drain():
        return [event async for event in spawner.progress()]

    return await asyncio.wait_for(drain(), DEADLINE)


async def test_unreadable_events_end_progress_with_a_message(kube):
    kube.forbidden.add((EVENTS, "list"))
    spawner = make_spawner(kube)
    # Opened before start(), as the spawn page does. Whether the spawn then goes on without
    # events or fails on them depends on which reaches KubeSpawner's shared event reflector
    # first; either way the stream must end, with the reason, and not raise.
    during = asyncio.ensure_future(_collect(spawner))
    (outcome,) = await asyncio.gather(start_server(spawner), return_exceptions=True)
    events = await during
    assert len(events) == 1, events
    assert events[0]["message"].startswith("(progress unavailable: (403)"), events
    assert "Forbidden" in events[0]["message"]
    if isinstance(outcome, BaseException):
        assert isinstance(outcome, ApiException) and outcome.status == 403, outcome
    await spawner.stop()
    assert not any(key[0] in (PODS, DASK) for key in kube.objects)


async def test_progress_of_a_spawner_that_never_started_ends_when_events_fail(kube):
    kube.forbidden.add((EVENTS, "list"))
    events = await _collect(make_spawner(kube))
    assert len(events) == 1, events
    assert events[0]["message"].startswith("(progress unavailable: (403)"), events


async def test_progress_after_a_failed_start_ends(kube):
    # Over the caps: start() fails before any step; a stream opened afterwards just ends.
    spawner = make_spawner(kube, user_options={"profile": "large"}, default_caps={"max_workers": 2})
    with pytest.raises(SpawnException, match="n_workers=4 is above your limit"):
        await start_server(spawner)
    events = await _collect(spawner)
    assert events == []
