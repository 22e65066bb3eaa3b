"""Every exception class the library defines derives from its one base, AstroKitError."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import astrokit
from astrokit.errors import AstroKitError, CheckpointError, UserError


def _library_modules():
    for info in pkgutil.walk_packages(astrokit.__path__, prefix="astrokit."):
        yield importlib.import_module(info.name)


def test_every_library_exception_derives_from_the_base():
    strays = []
    for module in _library_modules():
        for name, obj in vars(module).items():
            if (
                inspect.isclass(obj)
                and issubclass(obj, BaseException)
                and obj.__module__ == module.__name__
                and not issubclass(obj, AstroKitError)
            ):
                strays.append(f"{module.__name__}.{name}")
    assert strays == [], f"exceptions outside astrokit.errors.AstroKitError: {strays}"


def test_one_checkpoint_error_for_models_and_loops():
    from astrokit.active.checkpoint import CheckpointError as LoopCheckpointError
    from astrokit.models.checkpoint import CheckpointError as ModelCheckpointError

    assert LoopCheckpointError is ModelCheckpointError is CheckpointError
    assert issubclass(CheckpointError, UserError) and issubclass(CheckpointError, RuntimeError)
