"""AstroKit: survey data, distributed photo-z inference and active learning on your Dask cluster.

Heavy parts (torch models, inference, active learning) are imported lazily so that
``import astrokit`` stays cheap in the hub's environment, which has no torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it; resolved on first attribute access
_LAZY = {
    "open_store": "astrokit.store",
    "read_spectrum": "astrokit.formats",
    "read_cutout": "astrokit.formats",
    "infer": "astrokit.inference",
    "train": "astrokit.training",
    "train_catalogue": "astrokit.catalogue_training",
    "infer_catalogue": "astrokit.catalogue_inference",
    "ActiveLearningLoop": "astrokit.active",
}

# ``astrokit.connect`` is both a submodule and the function notebooks call. Importing the
# submodule (``from astrokit.connect import dashboard_link``) sets the package attribute to the
# module, which would shadow a lazily resolved function and break ``astrokit.connect()``.
# Binding the function eagerly prevents that; the module imports only the standard library.
from astrokit.connect import connect as connect  # noqa: E402  (re-export)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'astrokit' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
