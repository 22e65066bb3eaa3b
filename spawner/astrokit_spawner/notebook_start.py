"""Becoming the notebook server, the last step of :mod:`astrokit_spawner.home`.

For the spawner's default command -- this environment's ``jupyterhub-singleuser`` --
JupyterHub's single-user app runs in the process that prepared the home, with one start-up
cost of JupyterLab skipped; any other command is exec'ed as it is.

The cost: JupyterLab works out its version when ``jupyterlab.labapp`` is imported, and on
the way fills in the npm registry default by running ``node yarn.js config --json``
whenever ``node`` is on the PATH. Measured here: 0.62-0.74 CPU-s and ~0.6 s per notebook
start, about an eighth of a whole server start (notebook, scheduler, workers), paid by every
user at every start and by all of them at once at a workshop. The registry is only used to
install or build extensions, which this platform's users cannot do (the spawner passes
``--LabApp.extension_manager=readonly``, and the application directory belongs to root). So
the probe answers as it does on a machine without node: an empty configuration. Running in
this process also saves starting a second interpreter.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, NoReturn

__all__ = ["become_notebook_server", "runs_in_process", "skip_yarn_probe"]

SINGLEUSER = "jupyterhub-singleuser"


def _empty_yarn_config(logger: Any = None) -> dict[str, dict]:
    """What ``jupyterlab.commands._yarn_config`` returns when node is not installed."""
    return {"yarn config": {}, "npm config": {}}


def skip_yarn_probe() -> bool:
    """Make JupyterLab skip its ``node yarn config`` probe; False if there is none to skip."""
    try:
        import jupyterlab.commands as lab_commands
    except ImportError:  # a server without JupyterLab (plain jupyter-server) runs no probe
        return False

    if not callable(getattr(lab_commands, "_yarn_config", None)):
        return False  # a JupyterLab without the probe: nothing to skip
    lab_commands._yarn_config = _empty_yarn_config
    return True


def runs_in_process(command: list[str]) -> bool:
    """True for this environment's own ``jupyterhub-singleuser`` (the spawner's default)."""
    program = Path(command[0])
    return program.name == SINGLEUSER and program.parent == Path(sys.executable).parent


def become_notebook_server(command: list[str]) -> NoReturn:
    """Run ``command``: JupyterHub's single-user app in this process, or exec it."""
    if not runs_in_process(command):
        os.execvp(command[0], command)
    skip_yarn_probe()
    # What the console script does (`jupyterhub-singleuser` is `sys.exit(main())`).
    from jupyterhub.singleuser import main

    sys.argv = list(command)
    sys.exit(main())
