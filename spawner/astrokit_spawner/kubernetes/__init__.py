"""The Kubernetes backend: a KubeSpawner whose servers each own a dask-kubernetes DaskCluster.

``c.JupyterHub.spawner_class = "astrokit-kubernetes"`` selects :class:`AstroKitKubeSpawner`
(the ``jupyterhub.spawners`` entry point). :mod:`.manifests` holds the pure builders of the
objects it creates next to the notebook pod. The spawner class is imported lazily so the
builders can be used (and tested) without importing JupyterHub.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["AstroKitKubeSpawner"]


def __getattr__(name: str) -> Any:
    if name == "AstroKitKubeSpawner":
        return importlib.import_module("astrokit_spawner.kubernetes.spawner").AstroKitKubeSpawner
    raise AttributeError(f"module 'astrokit_spawner.kubernetes' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
