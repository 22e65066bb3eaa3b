"""A hub that is not root runs every server as its own account: one hub user only, unless
the admin says otherwise (``single_account``). No silent downgrade to a shared account."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from astrokit_spawner import AstroKitSpawner
from jupyterhub.spawner import SpawnException


def _spawner(tmp_path, name: str, **config) -> AstroKitSpawner:
    user = SimpleNamespace(name=name, groups=[])
    spawner = AstroKitSpawner(user=user, run_dir=str(tmp_path / "run"), **config)
    spawner.runs_as_root = False  # as on a laptop: the hub's own account
    return spawner


async def test_a_non_root_hub_serves_its_first_user_only(tmp_path):
    assert await _spawner(tmp_path, "ada")._resolve_account() is None
    assert await _spawner(tmp_path, "ada")._resolve_account() is None  # again: still ada's
    with pytest.raises(SpawnException) as info:
        await _spawner(tmp_path, "bob")._resolve_account()
    assert info.value.status_code == 403
    message = info.value.message
    assert "serves 'ada' only" in message and "single_account = True" in message
    owner = tmp_path / "run" / "single-account-user"
    assert owner.read_text().strip() == "ada" and owner.stat().st_mode & 0o777 == 0o600


async def test_the_admin_can_share_the_account_knowingly(tmp_path):
    for name in ("ada", "bob"):
        assert await _spawner(tmp_path, name, single_account=True)._resolve_account() is None
