"""Server profiles and resource caps: pure, backend-neutral resolution of ``user_options``.

A *profile* sizes one user's server: the notebook (CPU, memory) and its Dask cluster (number
of workers, threads per worker, memory per worker). *Caps* bound what a user may ask for; the
hub merges a default, per-group and per-user caps (:func:`caps_for`) and checks a request
against them (:func:`resolve_profile`). Nothing here does I/O or knows about a spawner, so
the local-process spawner and the Kubernetes spawner share it unchanged.

Every failure raises :class:`ProfileError`, whose message is safe to show to the user: it
names the offending value and what is allowed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from jupyterhub.traitlets import ByteSpecification
from traitlets import TraitError

__all__ = [
    "CUSTOM_FIELDS",
    "DEFAULT_CAPS",
    "DEFAULT_PROFILES",
    "Caps",
    "Profile",
    "ProfileError",
    "caps_for",
    "format_memory",
    "parse_memory",
    "profiles_from_config",
    "resolve_profile",
]

#: Where a profile's Dask workers run (see :attr:`Profile.backend`).
BACKENDS: tuple[str, ...] = ("local", "slurm")

#: JupyterHub's own byte-size trait (``c.Spawner.mem_limit``): "512M", "2G", "1.5G" in bytes.
_BYTES = ByteSpecification()
_MEMORY_EXPECTED = (
    "expected a positive amount of memory: a whole number of bytes or a number with a "
    "K/M/G/T suffix (powers of 1024), e.g. '512M' or '2G'"
)


class ProfileError(ValueError):
    """A profile request or a profile/caps configuration is invalid.

    The message is user-safe: it names the bad value and what is allowed.
    """


def parse_memory(value: int | float | str, *, what: str = "memory") -> int:
    """Parse a memory amount into bytes.

    Parameters
    ----------
    value
        An integer number of bytes, or a string converted by JupyterHub's own
        ``ByteSpecification`` trait (the one of ``c.Spawner.mem_limit``): ``"512M"``, ``"2G"``,
        ``"1.5G"`` (K, M, G, T are powers of 1024). Case, spaces and a trailing ``iB``/``B``
        (``"2GiB"``, ``"2gb"``) are normalised first, and a bare ``"1000"`` is bytes.
    what
        Name of the setting, used in the error message.

    Returns
    -------
    int
        The amount in bytes (> 0).

    Raises
    ------
    ProfileError
        If the value is not a positive amount of memory.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        # bool is an int subclass; True is not "1 byte"
        raise ProfileError(f"{what}: {_MEMORY_EXPECTED}; got {value!r}")
    if isinstance(value, float) and (not math.isfinite(value) or value != int(value)):
        raise ProfileError(f"{what}: {_MEMORY_EXPECTED}; got {value!r}")
    text: int | float | str = value
    if isinstance(value, str):
        # the spellings JupyterHub's trait does not take: "2g", "2GiB", "2GB", " 64 K ", "1000"
        text = "".join(value.split()).upper().removesuffix("B").removesuffix("I")
        if text.isdigit():
            text = int(text)
    try:
        n_bytes = _BYTES.validate(None, text)
    except (TraitError, ValueError, OverflowError):
        raise ProfileError(f"{what}: cannot read {value!r} as memory; {_MEMORY_EXPECTED}") from None
    if n_bytes is None or n_bytes < 1:
        raise ProfileError(f"{what}: {value!r} is not positive; {_MEMORY_EXPECTED}")
    return int(n_bytes)


def format_memory(n_bytes: int) -> str:
    """Format bytes for humans with binary units, e.g. ``2147483648 -> '2 GiB'``."""
    for suffix, scale in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n_bytes >= scale:
            amount = n_bytes / scale
            text = f"{amount:.0f}" if amount == int(amount) else f"{amount:.2f}".rstrip("0")
            return f"{text} {suffix}"
    return f"{n_bytes} B"


@dataclass(frozen=True)
class Profile:
    """The size of one user's server and its Dask cluster.

    Attributes
    ----------
    name
        Identifier used in ``user_options["profile"]`` (``"custom"`` once a request changed
        any value of the chosen profile).
    display_name, description
        Shown in the options form.
    notebook_cpu
        CPU limit of the notebook server, in cores.
    notebook_memory
        Memory limit of the notebook server, in bytes.
    n_workers
        Number of Dask workers (the cluster's maximum size when adaptive).
    threads_per_worker
        Threads per Dask worker.
    worker_memory
        Memory limit per Dask worker, in bytes (the nanny restarts a worker above it).
    backend
        Where the workers run: ``"local"`` (processes on the hub's machine, the default) or
        ``"slurm"`` (one batch job per worker; the spawner's ``slurm`` settings must be set).
    walltime
        Time limit of each Slurm worker job (``HH:MM:SS``; empty: the admin's default).
    """

    name: str
    display_name: str
    description: str
    notebook_cpu: float
    notebook_memory: int
    n_workers: int
    threads_per_worker: int
    worker_memory: int
    backend: str = "local"
    walltime: str = ""

    @property
    def total_memory(self) -> int:
        """Notebook memory plus the memory of all workers, in bytes."""
        return self.notebook_memory + self.n_workers * self.worker_memory

    @property
    def total_threads(self) -> int:
        """Dask threads over all workers."""
        return self.n_workers * self.threads_per_worker

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (memory in bytes); the inverse of :meth:`from_dict`."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Profile:
        """Build a profile from a mapping; memory may be bytes or strings such as ``"2G"``.

        Raises
        ------
        ProfileError
            If a field is missing, unknown or has the wrong type.
        """
        names = {f.name for f in fields(cls)}
        label = data.get("name", "<unnamed>")
        unknown = sorted(set(data) - names)
        if unknown:
            raise ProfileError(
                f"profile {label!r}: unknown field(s) {unknown}; allowed: {sorted(names)}"
            )
        values = dict(data)
        values.setdefault("display_name", str(values.get("name", "")).capitalize())
        values.setdefault("description", "")
        values.setdefault("backend", "local")
        values.setdefault("walltime", "")
        missing = sorted(names - set(values))
        if missing:
            raise ProfileError(f"profile {label!r}: missing field(s) {missing}")
        if not isinstance(values["name"], str) or not values["name"]:
            raise ProfileError(f"profile name must be a non-empty string, got {values['name']!r}")
        for key in ("notebook_memory", "worker_memory"):
            values[key] = parse_memory(values[key], what=f"profile {label!r} {key}")
        for key in ("n_workers", "threads_per_worker"):
            values[key] = _parse_int(values[key], what=f"profile {label!r} {key}", minimum=1)
        values["notebook_cpu"] = _parse_float(
            values["notebook_cpu"], what=f"profile {label!r} notebook_cpu"
        )
        if values["backend"] not in BACKENDS:
            raise ProfileError(
                f"profile {label!r} backend: {values['backend']!r} is not one of {list(BACKENDS)}"
            )
        if values["walltime"]:
            from .slurm import parse_walltime

            try:
                parse_walltime(values["walltime"], what=f"profile {label!r} walltime")
            except ValueError as exc:
                raise ProfileError(str(exc)) from None
        return cls(**values)

    def summary(self) -> str:
        """One line for forms and logs, e.g. ``'2 workers x 1 thread, 1 GiB each; ...'``."""
        threads = "thread" if self.threads_per_worker == 1 else "threads"
        workers = "worker" if self.n_workers == 1 else "workers"
        where = ""
        if self.backend == "slurm":
            where = " as Slurm jobs" + (f" ({self.walltime})" if self.walltime else "")
        return (
            f"{self.n_workers} {workers} x {self.threads_per_worker} {threads}, "
            f"{format_memory(self.worker_memory)} each{where}; notebook "
            f"{self.notebook_cpu:g} CPU, {format_memory(self.notebook_memory)}"
        )


@dataclass(frozen=True)
class Caps:
    """Upper bounds on what one server may ask for.

    Attributes
    ----------
    max_workers, max_threads_per_worker
        Bounds on the Dask cluster's shape.
    max_worker_memory, max_notebook_memory
        Per-process memory bounds, in bytes.
    max_total_memory
        Bound on notebook memory plus all workers' memory, in bytes.
    max_notebook_cpu
        Bound on the notebook's CPU limit, in cores.
    allow_custom
        Whether the request may change values of a predefined profile (within the bounds).
    allowed_profiles
        Names of the predefined profiles the user may choose; ``None`` means all of them.
    """

    max_workers: int = 4
    max_threads_per_worker: int = 2
    max_worker_memory: int = 4 * 1024**3
    max_notebook_memory: int = 8 * 1024**3
    max_total_memory: int = 16 * 1024**3
    max_notebook_cpu: float = 4.0
    allow_custom: bool = True
    allowed_profiles: frozenset[str] | None = field(default=None)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, base: Caps | None = None) -> Caps:
        """Caps from a (possibly partial) mapping; missing fields come from ``base``.

        Memory fields accept strings such as ``"8G"``; ``allowed_profiles`` accepts any
        iterable of names or ``None``.

        Raises
        ------
        ProfileError
            On unknown fields or values of the wrong type.
        """
        base = base if base is not None else Caps()
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ProfileError(f"caps: unknown field(s) {unknown}; allowed: {sorted(names)}")
        values: dict[str, Any] = {}
        for key, value in data.items():
            if key in ("max_worker_memory", "max_notebook_memory", "max_total_memory"):
                values[key] = parse_memory(value, what=f"caps {key}")
            elif key in ("max_workers", "max_threads_per_worker"):
                values[key] = _parse_int(value, what=f"caps {key}", minimum=0)
            elif key == "max_notebook_cpu":
                values[key] = _parse_float(value, what=f"caps {key}")
            elif key == "allow_custom":
                if not isinstance(value, bool):
                    raise ProfileError(f"caps allow_custom: expected true/false, got {value!r}")
                values[key] = value
            else:  # allowed_profiles
                if value is not None and (
                    isinstance(value, str) or not isinstance(value, Iterable)
                ):
                    raise ProfileError(
                        f"caps allowed_profiles: expected a list of profile names, got {value!r}"
                    )
                values[key] = None if value is None else frozenset(value)
        return replace(base, **values)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (``allowed_profiles`` as a sorted list or ``None``)."""
        data = asdict(self)
        if self.allowed_profiles is not None:
            data["allowed_profiles"] = sorted(self.allowed_profiles)
        return data


#: The embedded default's profiles. Memory limits are ceilings, not reservations.
DEFAULT_PROFILES: tuple[Profile, ...] = tuple(
    Profile(
        name=name,
        display_name=name.title(),
        description=description,
        notebook_cpu=cpu,
        notebook_memory=notebook_gib * 1024**3,
        n_workers=workers,
        threads_per_worker=threads,
        worker_memory=worker_gib * 1024**3,
    )
    for name, description, cpu, notebook_gib, workers, threads, worker_gib in (
        ("small", "Exploring data and plotting spectra.", 1.0, 2, 2, 1, 1),
        ("medium", "Photo-z inference over a survey subset.", 2.0, 4, 3, 1, 2),
        ("large", "Active-learning loops and full inference runs.", 2.0, 4, 4, 2, 3),
    )
)

#: Caps applied when the hub configures none.
DEFAULT_CAPS = Caps()

#: Keys of ``user_options`` that customise a profile, and the allowed option keys overall.
CUSTOM_FIELDS: tuple[str, ...] = (
    "n_workers",
    "threads_per_worker",
    "worker_memory",
    "notebook_memory",
    "notebook_cpu",
)
_OPTION_KEYS = frozenset({"profile", *CUSTOM_FIELDS})


def _parse_int(value: Any, *, what: str, minimum: int) -> int:
    if isinstance(value, bool):
        raise ProfileError(f"{what}: expected a whole number, got {value!r}")
    if isinstance(value, str):
        value = value.strip()
        if not re.fullmatch(r"[+-]?\d+", value):
            raise ProfileError(f"{what}: expected a whole number, got {value!r}")
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int):
        raise ProfileError(f"{what}: expected a whole number, got {value!r}")
    if value < minimum:
        raise ProfileError(f"{what}: must be at least {minimum}, got {value}")
    return value


def _parse_float(value: Any, *, what: str) -> float:
    if isinstance(value, bool):
        raise ProfileError(f"{what}: expected a number of CPU cores, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ProfileError(f"{what}: expected a number of CPU cores, got {value!r}") from None
    if not math.isfinite(number) or number <= 0:
        raise ProfileError(f"{what}: must be a positive number of cores, got {value!r}")
    return number


def profiles_from_config(items: Sequence[Profile | Mapping[str, Any]]) -> tuple[Profile, ...]:
    """Turn configured profiles (objects or mappings) into profiles, checking names are unique.

    Raises
    ------
    ProfileError
        If the list is empty, a profile is malformed, or two share a name (or use the
        reserved name ``"custom"``).
    """
    if not items:
        raise ProfileError("at least one profile must be configured")
    profiles = tuple(p if isinstance(p, Profile) else Profile.from_dict(p) for p in items)
    seen: set[str] = set()
    for profile in profiles:
        if profile.name in seen:
            raise ProfileError(f"profile name {profile.name!r} is configured twice")
        if profile.name == "custom":
            raise ProfileError("profile name 'custom' is reserved for customised requests")
        seen.add(profile.name)
    return profiles


def _as_caps(value: Caps | Mapping[str, Any] | None, base: Caps) -> Caps:
    if value is None:
        return base
    if isinstance(value, Caps):
        return value
    return Caps.from_mapping(value, base=base)


def _most_generous(a: Caps, b: Caps) -> Caps:
    """Field-wise the larger allowance of two caps (a user gets the best of their groups)."""
    if a.allowed_profiles is None or b.allowed_profiles is None:
        allowed = None
    else:
        allowed = a.allowed_profiles | b.allowed_profiles
    return Caps(
        max_workers=max(a.max_workers, b.max_workers),
        max_threads_per_worker=max(a.max_threads_per_worker, b.max_threads_per_worker),
        max_worker_memory=max(a.max_worker_memory, b.max_worker_memory),
        max_notebook_memory=max(a.max_notebook_memory, b.max_notebook_memory),
        max_total_memory=max(a.max_total_memory, b.max_total_memory),
        max_notebook_cpu=max(a.max_notebook_cpu, b.max_notebook_cpu),
        allow_custom=a.allow_custom or b.allow_custom,
        allowed_profiles=allowed,
    )


def caps_for(
    user: str,
    groups: Iterable[str],
    default: Caps | Mapping[str, Any] | None = None,
    per_user: Mapping[str, Caps | Mapping[str, Any]] | None = None,
    per_group: Mapping[str, Caps | Mapping[str, Any]] | None = None,
) -> Caps:
    """The caps that apply to ``user``.

    Rules, in order: start from ``default``; each group of the user that has caps gives a
    full set (its partial mapping filled in from ``default``), and the user gets the most
    generous value of each field over those groups (membership only ever adds allowance);
    finally the user's own entry, if any, overrides field by field.

    Parameters
    ----------
    user
        User name.
    groups
        Names of the user's groups.
    default
        Caps for everyone (``None``: :data:`DEFAULT_CAPS`).
    per_user, per_group
        Caps (or partial mappings) by user name and by group name.

    Returns
    -------
    Caps

    Examples
    --------
    >>> groups = {"astro": {"max_workers": 6}}
    >>> caps = caps_for("ada", ["astro"], {"max_workers": 2}, per_group=groups)
    >>> caps.max_workers
    6
    """
    base = _as_caps(default, DEFAULT_CAPS)
    result = base
    matched = [
        _as_caps(per_group[g], base) for g in sorted(set(groups)) if per_group and g in per_group
    ]
    if matched:
        result = matched[0]
        for caps in matched[1:]:
            result = _most_generous(result, caps)
    if per_user and user in per_user:
        own = per_user[user]
        result = own if isinstance(own, Caps) else Caps.from_mapping(own, base=result)
    return result


def _check_caps(profile: Profile, caps: Caps) -> None:
    """Raise ProfileError naming the first value of ``profile`` that ``caps`` forbid."""
    checks: list[tuple[str, float, float, str]] = [
        ("n_workers", profile.n_workers, caps.max_workers, str(caps.max_workers)),
        (
            "threads_per_worker",
            profile.threads_per_worker,
            caps.max_threads_per_worker,
            str(caps.max_threads_per_worker),
        ),
        (
            "worker_memory",
            profile.worker_memory,
            caps.max_worker_memory,
            format_memory(caps.max_worker_memory),
        ),
        (
            "notebook_memory",
            profile.notebook_memory,
            caps.max_notebook_memory,
            format_memory(caps.max_notebook_memory),
        ),
        ("notebook_cpu", profile.notebook_cpu, caps.max_notebook_cpu, f"{caps.max_notebook_cpu:g}"),
    ]
    for key, value, limit, limit_text in checks:
        if value > limit:
            shown = format_memory(int(value)) if "memory" in key else f"{value:g}"
            raise ProfileError(f"{key}={shown} is above your limit: at most {limit_text} allowed")
    if profile.total_memory > caps.max_total_memory:
        raise ProfileError(
            f"total memory {format_memory(profile.total_memory)} (notebook "
            f"{format_memory(profile.notebook_memory)} + {profile.n_workers} workers x "
            f"{format_memory(profile.worker_memory)}) is above your limit: at most "
            f"{format_memory(caps.max_total_memory)} allowed"
        )


def resolve_profile(
    user_options: Mapping[str, Any] | None,
    profiles: Sequence[Profile],
    caps: Caps,
) -> Profile:
    """Resolve a request (``user_options``) into the profile to start, within ``caps``.

    Parameters
    ----------
    user_options
        ``{"profile": name, ...}`` plus optional custom values for any of
        :data:`CUSTOM_FIELDS` (numbers, numeric strings, memory strings such as ``"2G"``).
        Empty or missing ``profile`` means the first profile the user may use; custom values
        that are ``None`` or ``""`` are ignored (an options form submits blank fields).
    profiles
        The configured profiles, in display order.
    caps
        The caps of the requesting user (see :func:`caps_for`).

    Returns
    -------
    Profile
        The chosen profile, or a copy named ``"custom"`` when custom values changed it.

    Raises
    ------
    ProfileError
        For unknown keys or profiles, malformed values, or values above the caps; the message
        names the value and what is allowed.
    """
    options = dict(user_options or {})
    unknown = sorted(set(options) - _OPTION_KEYS)
    if unknown:
        raise ProfileError(f"unknown option(s) {unknown}; allowed: {sorted(_OPTION_KEYS)}")
    allowed = [
        p for p in profiles if caps.allowed_profiles is None or p.name in caps.allowed_profiles
    ]
    if not allowed:
        raise ProfileError("no profile is available to you; ask an administrator")
    names = [p.name for p in allowed]

    requested = options.get("profile")
    if requested in (None, ""):
        base = allowed[0]
    else:
        if not isinstance(requested, str):
            raise ProfileError(f"profile: expected a profile name, got {requested!r}")
        matches = [p for p in allowed if p.name == requested]
        if not matches:
            if any(p.name == requested for p in profiles):
                raise ProfileError(
                    f"profile {requested!r} is not available to you; allowed: {names}"
                )
            raise ProfileError(f"unknown profile {requested!r}; allowed: {names}")
        base = matches[0]

    changes: dict[str, Any] = {}
    for key in CUSTOM_FIELDS:
        raw = options.get(key)
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            continue
        if key in ("worker_memory", "notebook_memory"):
            value: Any = parse_memory(raw, what=key)
        elif key == "notebook_cpu":
            value = _parse_float(raw, what=key)
        else:
            value = _parse_int(raw, what=key, minimum=1)
        if value != getattr(base, key):
            changes[key] = value

    if changes:
        if not caps.allow_custom:
            raise ProfileError(
                f"custom values {sorted(changes)} are not allowed for you; choose one of {names}"
            )
        profile = replace(
            base,
            name="custom",
            display_name=f"Custom (from {base.display_name})",
            description=f"{base.name} with {', '.join(sorted(changes))} changed",
            **changes,
        )
    else:
        profile = base
    _check_caps(profile, caps)
    return profile
