"""The notebook server starts in the home-preparing process, without JupyterLab's node probe."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from astrokit_spawner.notebook_start import runs_in_process

VENV_BIN = Path(sys.executable).parent


def test_only_this_environments_singleuser_runs_in_process():
    assert runs_in_process([str(VENV_BIN / "jupyterhub-singleuser"), "--debug"])
    assert not runs_in_process(["/elsewhere/bin/jupyterhub-singleuser"])
    assert not runs_in_process([str(VENV_BIN / "jupyter-lab")])


def _import_labapp(tmp_path: Path, *, skip: bool) -> bool:
    """Import jupyterlab.labapp with a fake ``node`` first on the PATH; True if it ran."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    marker = tmp_path / "node-ran"
    marker.unlink(missing_ok=True)
    node = bin_dir / "node"
    node.write_text(f"#!/bin/sh\ntouch {marker}\necho '{{}}'\n")
    node.chmod(0o755)
    code = (
        "from astrokit_spawner.notebook_start import skip_yarn_probe\n"
        f"assert skip_yarn_probe() if {skip} else True\n"
        "import jupyterlab.labapp\n"
    )
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=120)
    return marker.exists()


def test_jupyterlab_runs_node_at_import_unless_the_probe_is_skipped(tmp_path):
    # The control shows the probe is real (JupyterLab runs `node yarn.js config` when its
    # app module is imported); skipped, node never runs.
    assert _import_labapp(tmp_path, skip=False)
    assert not _import_labapp(tmp_path, skip=True)
