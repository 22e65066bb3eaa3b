"""The traitlets mixin: configuration validation, the options form, SpawnException on refusal."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
from astrokit_spawner import AstroKitSpawner
from astrokit_spawner.options import profile_options_from_form, render_options_form
from astrokit_spawner.profiles import DEFAULT_PROFILES, Caps
from jupyterhub.spawner import SpawnException
from traitlets import TraitError


def _spawner(name="ada", groups=(), **config):
    # JupyterHub's User object is only read for .name and .groups[].name by the mixin.
    user = SimpleNamespace(name=name, groups=[SimpleNamespace(name=g) for g in groups])
    return AstroKitSpawner(user=user, **config)


def test_form_data_to_user_options():
    form = {
        "profile": ["medium"],
        "n_workers": [" 3 "],
        "worker_memory": [""],
        "notebook_cpu": [],
        "_xsrf": ["token"],
    }
    assert profile_options_from_form(form) == {"profile": "medium", "n_workers": "3"}


def test_render_form_lists_profiles_and_disables_over_cap_ones():
    caps = Caps(max_workers=3, allow_custom=False)
    page = render_options_form(DEFAULT_PROFILES, caps)
    assert page.count('type="radio"') == 3
    assert re.search(r'value="small" checked>', page)
    # "large" has 4 workers > 3: disabled, with the reason.
    assert re.search(r'value="large" disabled>', page)
    assert "n_workers=4 is above your limit: at most 3 allowed" in page
    assert 'name="n_workers"' not in page  # no custom inputs without allow_custom


def test_render_form_custom_inputs_state_limits_and_escape():
    evil = DEFAULT_PROFILES[0].__class__("x", "<b>X</b>", "a & b", 1.0, 2 * 1024**3, 1, 1, 1024**3)
    page = render_options_form([evil], Caps(), selected="x")
    assert "&lt;b&gt;X&lt;/b&gt;" in page and "a &amp; b" in page
    assert 'name="n_workers"' in page and "at most 4" in page
    assert 'name="worker_memory"' in page and "at most 4 GiB" in page


def test_spawner_defaults_use_astrokit_form_and_parser():
    spawner = _spawner()
    assert callable(spawner.options_form)
    page = spawner.options_form(spawner)
    assert 'value="medium"' in page
    assert spawner.run_options_from_form({"profile": ["large"]}) == {"profile": "large"}


def test_resolve_user_profile_sets_limits():
    spawner = _spawner()
    profile = spawner.resolve_user_profile({"profile": "medium"})
    assert profile.name == "medium"
    assert spawner.astrokit_profile is profile
    assert spawner.cpu_limit == profile.notebook_cpu
    assert spawner.mem_limit == profile.notebook_memory


def test_resolve_user_profile_refusal_is_a_spawn_exception():
    spawner = _spawner(default_caps={"max_workers": 2})
    with pytest.raises(SpawnException) as info:
        spawner.resolve_user_profile({"profile": "medium"})
    assert info.value.status_code == 400
    assert info.value.reason == "profile"
    assert info.value.message == (
        "Invalid server options: n_workers=3 is above your limit: at most 2 allowed"
    )
    with pytest.raises(SpawnException, match="JSON object"):
        spawner.resolve_user_profile(["small"])


def test_group_and_user_caps_apply():
    config = {
        "default_caps": {"max_workers": 2},
        "caps_per_group": {"survey": {"max_workers": 4}},
        "caps_per_user": {"eve": {"max_workers": 1}},
    }
    member = _spawner("ada", ["survey"], **config)
    assert member.user_caps().max_workers == 4
    assert member.resolve_user_profile({"profile": "large"}).n_workers == 4
    outsider = _spawner("bob", [], **config)
    with pytest.raises(SpawnException, match="at most 2 allowed"):
        outsider.resolve_user_profile({"profile": "large"})
    eve = _spawner("eve", ["survey"], **config)
    with pytest.raises(SpawnException, match="n_workers=2 is above your limit: at most 1"):
        eve.resolve_user_profile({})


@pytest.mark.parametrize(
    ("trait", "value", "message"),
    [
        ("profiles", [{"name": "x", "n_workers": 1}], "missing field"),
        ("profiles", [], "at least one profile"),
        ("default_caps", {"max_workers": "lots"}, "expected a whole number"),
        ("caps_per_group", {"g": {"max_gpus": 1}}, r"caps_per_group\['g'\]: caps: unknown"),
        ("caps_per_user", {"u": 3}, r"caps_per_user\['u'\]: expected a dict"),
    ],
)
def test_bad_configuration_fails_early(trait, value, message):
    with pytest.raises(TraitError, match=message):
        _spawner(**{trait: value})


def test_configured_profiles_accept_memory_strings():
    spawner = _spawner(
        profiles=[
            {
                "name": "one",
                "notebook_cpu": 1,
                "notebook_memory": "1G",
                "n_workers": 1,
                "threads_per_worker": 1,
                "worker_memory": "1G",
            }
        ]
    )
    (only,) = spawner.configured_profiles()
    assert only.worker_memory == 1024**3
    assert spawner.resolve_user_profile({}).name == "one"
