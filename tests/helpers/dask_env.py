"""Give this test process the environment of a notebook server, as Dask would see it.

A notebook's kernel starts with the spawner's variables already set, so Dask reads the
``DASK_*`` ones into :mod:`dask.config` when it is imported, and AstroKit reads Dask's
configuration (not the variables). A test sets the variables after Dask was imported, so it
must have Dask read them again; :func:`set_notebook_env` does that on a copy of the
configuration that ``monkeypatch`` puts back afterwards.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

import dask.config
import pytest

__all__ = ["set_notebook_env"]


def set_notebook_env(monkeypatch: pytest.MonkeyPatch, env: Mapping[str, str]) -> None:
    """Set ``env`` in ``os.environ`` and refresh Dask's configuration from it (undone later)."""
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(dask.config, "config", copy.deepcopy(dask.config.config))
    dask.config.refresh()  # defaults, YAML files and DASK_* variables, as at import
