"""AstroKit's JupyterHub side: a spawner that gives every server its own Dask cluster.

``c.JupyterHub.spawner_class = "astrokit"`` selects :class:`AstroKitSpawner` (the
``jupyterhub.spawners`` entry point). Profiles and caps (:mod:`astrokit_spawner.profiles`)
and the traitlets mixin (:mod:`astrokit_spawner.options`) are shared with the Kubernetes
backend. The spawner class is imported lazily so that ``astrokit_spawner.profiles`` stays a
cheap, dependency-free import.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["AstroKitSpawner", "Caps", "Profile", "ProfileError"]

_LAZY = {
    "AstroKitSpawner": "astrokit_spawner.spawner",
    "Caps": "astrokit_spawner.profiles",
    "Profile": "astrokit_spawner.profiles",
    "ProfileError": "astrokit_spawner.profiles",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'astrokit_spawner' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
