"""Traitlets configuration for profiles and caps, shared by every AstroKit spawner backend.

:class:`ProfilesMixin` adds the configurable profiles and per-user/per-group caps, the
options form, form parsing and the hub-side check of a request to any JupyterHub spawner::

    class AstroKitSpawner(ProfilesMixin, Spawner): ...           # local processes
    class AstroKitKubeSpawner(ProfilesMixin, KubeSpawner): ...   # Kubernetes

A backend calls :meth:`ProfilesMixin.resolve_user_profile` at the start of ``start()``; it
raises :class:`~jupyterhub.spawner.SpawnException` (HTTP 400, reason ``"profile"``) with a
message naming the bad value and what is allowed, and otherwise sets
:attr:`ProfilesMixin.astrokit_profile` plus JupyterHub's own ``cpu_limit`` / ``mem_limit``
for the notebook.

Configuration example (``jupyterhub_config.py``)::

    c.ProfilesMixin.default_caps = {"max_workers": 2, "max_total_memory": "8G"}
    c.ProfilesMixin.caps_per_group = {"survey-team": {"max_workers": 8}}
    c.ProfilesMixin.caps_per_user = {"ada": {"allow_custom": False}}
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

from traitlets import Dict, Instance, List, TraitError, default, validate
from traitlets.config import LoggingConfigurable

from .profiles import (
    CUSTOM_FIELDS,
    DEFAULT_CAPS,
    DEFAULT_PROFILES,
    Caps,
    Profile,
    ProfileError,
    caps_for,
    format_memory,
    profiles_from_config,
    resolve_profile,
)

__all__ = ["ProfilesMixin", "profile_options_from_form", "render_options_form"]

_FORM_KEYS = ("profile", *CUSTOM_FIELDS)


def profile_options_from_form(formdata: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """Turn submitted form data (name -> list of strings) into ``user_options``.

    Only the profile fields are kept; blank custom fields are dropped (blank means "as the
    profile says"). Values stay strings: :func:`~astrokit_spawner.profiles.resolve_profile`
    parses and checks them, so the form and the REST API share one validation.

    >>> form = {"profile": ["small"], "n_workers": [" 3 "], "worker_memory": [""]}
    >>> profile_options_from_form(form)
    {'profile': 'small', 'n_workers': '3'}
    """
    options: dict[str, str] = {}
    for key in _FORM_KEYS:
        values = formdata.get(key) or []
        value = values[0].strip() if values else ""
        if value:
            options[key] = value
    return options


def _allowed(profile: Profile, caps: Caps) -> str | None:
    """None when ``profile`` fits ``caps``, else the reason it does not."""
    if caps.allowed_profiles is not None and profile.name not in caps.allowed_profiles:
        return "not available to you"
    try:
        resolve_profile({"profile": profile.name}, [profile], caps)
    except ProfileError as exc:
        return str(exc)
    return None


def render_options_form(
    profiles: Sequence[Profile], caps: Caps, *, selected: str | None = None
) -> str:
    """The options form's HTML: one radio button per profile, then optional custom values.

    Profiles the caps forbid are shown disabled with the reason. Custom inputs appear only
    when ``caps.allow_custom``; their hints state the caps.
    """
    usable = [p for p in profiles if _allowed(p, caps) is None]
    chosen = selected if any(p.name == selected for p in usable) else None
    if chosen is None and usable:
        chosen = usable[0].name
    parts = ['<div class="astrokit-profiles">', "<h4>Server size</h4>"]
    for profile in profiles:
        reason = _allowed(profile, caps)
        name = html.escape(profile.name, quote=True)
        checked = " checked" if profile.name == chosen else ""
        disabled = " disabled" if reason else ""
        note = f' <em class="text-muted">({html.escape(reason)})</em>' if reason else ""
        parts.append(
            f'<div class="radio"><label>'
            f'<input type="radio" name="profile" value="{name}"{checked}{disabled}> '
            f"<strong>{html.escape(profile.display_name)}</strong> - "
            f"{html.escape(profile.summary())}"
            f'<br><span class="text-muted">{html.escape(profile.description)}</span>{note}'
            f"</label></div>"
        )
    if caps.allow_custom:
        hints = {
            "n_workers": ("Dask workers", f"at most {caps.max_workers}", "number"),
            "threads_per_worker": (
                "Threads per worker",
                f"at most {caps.max_threads_per_worker}",
                "number",
            ),
            "worker_memory": (
                "Memory per worker",
                f"e.g. 2G, at most {format_memory(caps.max_worker_memory)}",
                "text",
            ),
            "notebook_memory": (
                "Notebook memory",
                f"e.g. 4G, at most {format_memory(caps.max_notebook_memory)}",
                "text",
            ),
            "notebook_cpu": ("Notebook CPUs", f"at most {caps.max_notebook_cpu:g}", "text"),
        }
        parts.append(
            "<details><summary>Custom values (blank: as the profile says; total memory at "
            f"most {html.escape(format_memory(caps.max_total_memory))})</summary>"
        )
        for key in CUSTOM_FIELDS:
            label, hint, kind = hints[key]
            extra = ' min="1" step="1"' if kind == "number" else ""
            parts.append(
                f'<div class="form-group"><label for="astrokit-{key}">{html.escape(label)}'
                f"</label> "
                f'<input class="form-control" type="{kind}" id="astrokit-{key}" name="{key}"'
                f'{extra} placeholder="{html.escape(hint, quote=True)}"></div>'
            )
        parts.append("</details>")
    parts.append("</div>")
    return "\n".join(parts)


def _options_resolved_in_start(spawner: ProfilesMixin, user_options: Mapping[str, Any]) -> None:
    """``apply_user_options`` hook: nothing to do here, the backend's ``start()`` resolves.

    Resolution happens in ``start()`` (via :meth:`ProfilesMixin.resolve_user_profile`) so
    that a refused request raises a clean ``SpawnException`` rather than the generic error
    JupyterHub makes of exceptions in this hook; declaring the hook tells JupyterHub the
    options are handled.
    """


def _spawner_options_form(spawner: ProfilesMixin) -> str:
    """``options_form`` callable: JupyterHub calls it with the spawner."""
    previous = (getattr(spawner, "user_options", None) or {}).get("profile")
    return render_options_form(
        spawner.configured_profiles(),
        spawner.user_caps(),
        selected=previous if isinstance(previous, str) else None,
    )


class ProfilesMixin(LoggingConfigurable):
    """Profiles, caps and the options form for a JupyterHub spawner (any backend).

    Put it first in the bases so that its ``options_form`` / ``options_from_form`` defaults
    take precedence over the backend's.
    """

    profiles = List(
        default_value=[p.to_dict() for p in DEFAULT_PROFILES],
        help="""Server profiles users choose from, in display order.

        Each entry is a dict with ``name``, ``display_name``, ``description``,
        ``notebook_cpu`` (cores), ``notebook_memory``, ``n_workers``, ``threads_per_worker``
        and ``worker_memory`` (memory as bytes or strings such as "2G"). The first profile a
        user may use is the default when a request names none. The name "custom" is
        reserved for requests that change a profile's values.
        """,
    ).tag(config=True)

    default_caps = Dict(
        help="""Caps for every user: any fields of ``Caps`` (``max_workers``,
        ``max_threads_per_worker``, ``max_worker_memory``, ``max_notebook_memory``,
        ``max_total_memory``, ``max_notebook_cpu``, ``allow_custom``, ``allowed_profiles``);
        missing fields take AstroKit's defaults (4 workers, 2 threads, 4 GiB per worker,
        8 GiB notebook, 16 GiB total, 4 CPUs, custom values allowed, all profiles).
        """,
    ).tag(config=True)

    caps_per_group = Dict(
        help="""Caps by JupyterHub group name (partial dicts, completed from
        ``default_caps``). A user in several groups gets the most generous value of each
        field over those groups.
        """,
    ).tag(config=True)

    caps_per_user = Dict(
        help="""Caps by user name (partial dicts). Fields given here override the user's
        group and default caps.
        """,
    ).tag(config=True)

    astrokit_profile = Instance(
        Profile,
        allow_none=True,
        help="The profile resolved for the current spawn (set by resolve_user_profile).",
    )

    # The @default handlers below apply to JupyterHub's own Spawner traits: traitlets looks
    # for default generators along the MRO up to the class defining the trait, and the mixin
    # comes before the backend there.
    @default("options_form")
    def _default_options_form(self):
        return _spawner_options_form

    @default("options_from_form")
    def _default_options_from_form(self):
        return profile_options_from_form

    @default("apply_user_options")
    def _default_apply_user_options(self):
        return _options_resolved_in_start

    @validate("profiles")
    def _validate_profiles(self, proposal):
        try:
            return [p.to_dict() for p in profiles_from_config(proposal["value"])]
        except ProfileError as exc:
            raise TraitError(f"AstroKit profiles: {exc}") from exc

    @validate("default_caps")
    def _validate_default_caps(self, proposal):
        try:
            Caps.from_mapping(proposal["value"])
        except ProfileError as exc:
            raise TraitError(f"AstroKit default_caps: {exc}") from exc
        return proposal["value"]

    @validate("caps_per_group", "caps_per_user")
    def _validate_caps_maps(self, proposal):
        for key, value in proposal["value"].items():
            if not isinstance(value, Mapping | Caps):
                raise TraitError(f"AstroKit {proposal['trait'].name}[{key!r}]: expected a dict")
            if isinstance(value, Mapping):
                try:
                    Caps.from_mapping(value)
                except ProfileError as exc:
                    raise TraitError(f"AstroKit {proposal['trait'].name}[{key!r}]: {exc}") from exc
        return proposal["value"]

    def configured_profiles(self) -> tuple[Profile, ...]:
        """The configured profiles as :class:`Profile` objects."""
        return profiles_from_config(self.profiles)

    def user_group_names(self) -> list[str]:
        """Names of the spawning user's JupyterHub groups."""
        user = getattr(self, "user", None)
        groups = getattr(user, "groups", None) or []
        return [getattr(g, "name", str(g)) for g in groups]

    def user_caps(self) -> Caps:
        """The caps of the spawning user (default, then groups, then the user's own)."""
        user = getattr(self, "user", None)
        return caps_for(
            getattr(user, "name", ""),
            self.user_group_names(),
            Caps.from_mapping(self.default_caps, base=DEFAULT_CAPS),
            per_user=self.caps_per_user,
            per_group=self.caps_per_group,
        )

    def resolve_user_profile(self, user_options: Mapping[str, Any] | None = None) -> Profile:
        """Resolve ``user_options`` (default: ``self.user_options``) within the user's caps.

        Sets :attr:`astrokit_profile` and the notebook's ``cpu_limit`` / ``mem_limit``.

        Raises
        ------
        jupyterhub.spawner.SpawnException
            HTTP 400, reason ``"profile"``, when the request is malformed or over the caps.
        """
        from jupyterhub.spawner import SpawnException

        if user_options is None:
            user_options = getattr(self, "user_options", None) or {}
        if not isinstance(user_options, Mapping):
            raise SpawnException(
                f"user_options must be a JSON object, got {type(user_options).__name__}",
                reason="profile",
            )
        try:
            profile = resolve_profile(user_options, self.configured_profiles(), self.user_caps())
        except ProfileError as exc:
            raise SpawnException(
                f"Invalid server options: {exc}", reason="profile", status_code=400
            ) from exc
        self.astrokit_profile = profile
        if hasattr(self, "cpu_limit"):
            self.cpu_limit = profile.notebook_cpu
        if hasattr(self, "mem_limit"):
            self.mem_limit = profile.notebook_memory
        self.log.info(
            "profile %s for %s: %s",
            profile.name,
            getattr(getattr(self, "user", None), "name", "?"),
            profile.summary(),
        )
        return profile
