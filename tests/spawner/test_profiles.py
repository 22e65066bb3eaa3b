"""Pure profile and caps resolution, against literal values."""

from __future__ import annotations

import pytest
from astrokit_spawner.profiles import (
    DEFAULT_CAPS,
    DEFAULT_PROFILES,
    Caps,
    Profile,
    ProfileError,
    caps_for,
    format_memory,
    parse_memory,
    profiles_from_config,
    resolve_profile,
)

GiB = 1024**3
MiB = 1024**2

SMALL = Profile("small", "Small", "", 1.0, 2 * GiB, 2, 1, 1 * GiB)
BIG = Profile("big", "Big", "", 2.0, 4 * GiB, 4, 2, 3 * GiB)
PROFILES = (SMALL, BIG)
CAPS = Caps(
    max_workers=4,
    max_threads_per_worker=2,
    max_worker_memory=4 * GiB,
    max_notebook_memory=8 * GiB,
    max_total_memory=16 * GiB,
    max_notebook_cpu=4.0,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2G", 2 * GiB),
        ("2g", 2 * GiB),
        ("2GiB", 2 * GiB),
        ("2GB", 2 * GiB),
        ("512M", 512 * MiB),
        ("1.5G", 1536 * MiB),
        (" 64 K ", 64 * 1024),
        ("1T", 1024**4),
        ("1000", 1000),
        (4096, 4096),
        (2.0 * GiB, 2 * GiB),
    ],
)
def test_parse_memory(text, expected):
    assert parse_memory(text) == expected


@pytest.mark.parametrize("bad", ["", "G", "2X", "-1G", "two", "0", 0, -5, 1.5, True, None, [1]])
def test_parse_memory_rejects(bad):
    with pytest.raises(ProfileError, match="worker_memory"):
        parse_memory(bad, what="worker_memory")


def test_format_memory():
    assert format_memory(2 * GiB) == "2 GiB"
    assert format_memory(1536 * MiB) == "1.5 GiB"
    assert format_memory(512 * MiB) == "512 MiB"
    assert format_memory(100) == "100 B"


def test_profile_from_dict_parses_strings_and_defaults():
    profile = Profile.from_dict(
        {
            "name": "tiny",
            "notebook_cpu": "0.5",
            "notebook_memory": "1G",
            "n_workers": "1",
            "threads_per_worker": 1,
            "worker_memory": "512M",
        }
    )
    assert profile == Profile("tiny", "Tiny", "", 0.5, GiB, 1, 1, 512 * MiB)
    assert Profile.from_dict(profile.to_dict()) == profile
    assert profile.total_memory == GiB + 512 * MiB
    assert profile.summary() == "1 worker x 1 thread, 512 MiB each; notebook 0.5 CPU, 1 GiB"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "x", "colour": "red"}, r"unknown field\(s\) \['colour'\]"),
        ({"name": "x", "notebook_cpu": 1}, r"missing field\(s\)"),
        (
            {**SMALL.to_dict(), "n_workers": 0},
            "profile 'small' n_workers: must be at least 1, got 0",
        ),
        ({**SMALL.to_dict(), "worker_memory": "lots"}, "cannot read 'lots' as memory"),
    ],
)
def test_profile_from_dict_errors(data, message):
    with pytest.raises(ProfileError, match=message):
        Profile.from_dict(data)


def test_profiles_from_config_rejects_duplicates_and_reserved():
    with pytest.raises(ProfileError, match="configured twice"):
        profiles_from_config([SMALL, SMALL])
    with pytest.raises(ProfileError, match="reserved"):
        profiles_from_config([{**SMALL.to_dict(), "name": "custom"}])
    with pytest.raises(ProfileError, match="at least one"):
        profiles_from_config([])


def test_default_profiles_fit_default_caps():
    for profile in DEFAULT_PROFILES:
        assert resolve_profile({"profile": profile.name}, DEFAULT_PROFILES, DEFAULT_CAPS) == profile


def test_resolve_default_is_first_allowed_profile():
    assert resolve_profile({}, PROFILES, CAPS) is SMALL
    assert resolve_profile(None, PROFILES, CAPS) is SMALL
    assert resolve_profile({"profile": ""}, PROFILES, CAPS) is SMALL
    only_big = Caps(**{**CAPS.to_dict(), "allowed_profiles": ["big"]})
    assert resolve_profile({}, PROFILES, only_big) is BIG


def test_resolve_named_profile():
    assert resolve_profile({"profile": "big"}, PROFILES, CAPS) is BIG


def test_resolve_custom_values_make_a_custom_profile():
    profile = resolve_profile(
        {"profile": "small", "n_workers": "3", "worker_memory": "2G", "notebook_cpu": "2"},
        PROFILES,
        CAPS,
    )
    assert profile == Profile(
        name="custom",
        display_name="Custom (from Small)",
        description="small with n_workers, notebook_cpu, worker_memory changed",
        notebook_cpu=2.0,
        notebook_memory=2 * GiB,
        n_workers=3,
        threads_per_worker=1,
        worker_memory=2 * GiB,
    )


def test_resolve_values_equal_to_the_profile_keep_its_name():
    assert resolve_profile({"profile": "small", "n_workers": 2}, PROFILES, CAPS) is SMALL
    assert resolve_profile({"profile": "small", "n_workers": ""}, PROFILES, CAPS) is SMALL


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"profile": "huge"}, r"unknown profile 'huge'; allowed: \['small', 'big'\]"),
        ({"profile": 3}, "profile: expected a profile name, got 3"),
        ({"n_workers": "many"}, "n_workers: expected a whole number, got 'many'"),
        ({"n_workers": 2.5}, r"n_workers: expected a whole number, got 2\.5"),
        ({"n_workers": True}, "n_workers: expected a whole number, got True"),
        ({"n_workers": 0}, "n_workers: must be at least 1, got 0"),
        ({"worker_memory": "2Q"}, "worker_memory: cannot read '2Q' as memory"),
        ({"notebook_cpu": "fast"}, "notebook_cpu: expected a number of CPU cores, got 'fast'"),
        ({"notebook_cpu": -1}, "notebook_cpu: must be a positive number of cores"),
        ({"gpus": 1}, r"unknown option\(s\) \['gpus'\]; allowed: "),
    ],
)
def test_resolve_malformed(options, message):
    with pytest.raises(ProfileError, match=message):
        resolve_profile(options, PROFILES, CAPS)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"n_workers": 5}, "n_workers=5 is above your limit: at most 4 allowed"),
        ({"threads_per_worker": 3}, "threads_per_worker=3 is above your limit: at most 2 allowed"),
        (
            {"worker_memory": "5G"},
            "worker_memory=5 GiB is above your limit: at most 4 GiB allowed",
        ),
        (
            {"notebook_memory": "9G"},
            "notebook_memory=9 GiB is above your limit: at most 8 GiB allowed",
        ),
        ({"notebook_cpu": 4.5}, "notebook_cpu=4.5 is above your limit: at most 4 allowed"),
        (
            {"profile": "big", "worker_memory": "4G", "notebook_memory": "4G"},
            r"total memory 20 GiB \(notebook 4 GiB \+ 4 workers x 4 GiB\) is above your "
            r"limit: at most 16 GiB allowed",
        ),
    ],
)
def test_resolve_over_caps(options, message):
    with pytest.raises(ProfileError, match=message):
        resolve_profile(options, PROFILES, CAPS)


def test_resolve_predefined_profile_over_caps_is_refused():
    two_workers = Caps(**{**CAPS.to_dict(), "max_workers": 2})
    with pytest.raises(ProfileError, match="n_workers=4 is above your limit: at most 2"):
        resolve_profile({"profile": "big"}, PROFILES, two_workers)


def test_resolve_respects_allowed_profiles_and_allow_custom():
    caps = Caps(**{**CAPS.to_dict(), "allowed_profiles": ["small"], "allow_custom": False})
    with pytest.raises(ProfileError, match=r"profile 'big' is not available to you; allowed: "):
        resolve_profile({"profile": "big"}, PROFILES, caps)
    with pytest.raises(
        ProfileError, match=r"custom values \['n_workers'\] are not allowed for you"
    ):
        resolve_profile({"n_workers": 1}, PROFILES, caps)
    none = Caps(**{**CAPS.to_dict(), "allowed_profiles": []})
    with pytest.raises(ProfileError, match="no profile is available to you"):
        resolve_profile({}, PROFILES, none)


def test_caps_from_mapping():
    caps = Caps.from_mapping({"max_workers": "6", "max_total_memory": "32G"}, base=CAPS)
    assert caps.max_workers == 6
    assert caps.max_total_memory == 32 * GiB
    assert caps.max_threads_per_worker == CAPS.max_threads_per_worker
    with pytest.raises(ProfileError, match=r"caps: unknown field\(s\) \['max_gpus'\]"):
        Caps.from_mapping({"max_gpus": 1})
    with pytest.raises(ProfileError, match="allow_custom: expected true/false"):
        Caps.from_mapping({"allow_custom": "yes"})
    with pytest.raises(ProfileError, match="allowed_profiles: expected a list"):
        Caps.from_mapping({"allowed_profiles": "small"})


def test_caps_for_default_only():
    assert caps_for("ada", [], None) == DEFAULT_CAPS
    assert caps_for("ada", ["astro"], {"max_workers": 2}).max_workers == 2


def test_caps_for_groups_take_the_most_generous_value():
    per_group = {
        "wide": {"max_workers": 8, "max_threads_per_worker": 1},
        "deep": {"max_threads_per_worker": 4, "allowed_profiles": ["small"]},
        "other": {"max_workers": 100},
    }
    caps = caps_for("ada", ["wide", "deep"], {"max_workers": 2}, per_group=per_group)
    assert caps.max_workers == 8
    assert caps.max_threads_per_worker == 4
    # "wide" did not restrict profiles (None = all), so membership of it allows all.
    assert caps.allowed_profiles is None
    restricted = caps_for(
        "ada",
        ["deep", "small-too"],
        {"allowed_profiles": ["big"]},
        per_group={**per_group, "small-too": {"allowed_profiles": ["small"]}},
    )
    assert restricted.allowed_profiles == frozenset({"small"})


def test_caps_for_user_overrides_groups_field_by_field():
    caps = caps_for(
        "ada",
        ["wide"],
        {"max_workers": 2},
        per_user={"ada": {"max_threads_per_worker": 1}, "bob": {"max_workers": 50}},
        per_group={"wide": {"max_workers": 8}},
    )
    assert caps.max_workers == 8  # from the group
    assert caps.max_threads_per_worker == 1  # the user's own
    explicit = Caps(max_workers=1)
    assert caps_for("ada", ["wide"], None, per_user={"ada": explicit}) is explicit
