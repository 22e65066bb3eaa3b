"""The distribution's promises: role extras, import names, a hub environment without torch."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def test_top_level_layout_is_the_cards():
    for name in ("README.md", "pyproject.toml", "Makefile", ".ci/run"):
        assert (REPO / name).is_file(), name
    for name in ("spawner", "extension", "astrokit", "notebooks", "deploy", "tests", "benchmarks"):
        assert (REPO / name).is_dir(), name


def test_extras_per_role():
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert {"hub", "lab", "ml", "k8s", "test", "all"} <= set(extras)


def _requirement_name(req: str) -> str:
    for sep in "[<>=!~; ":
        req = req.split(sep)[0]
    return req.strip().lower()


def test_hub_extra_declares_no_torch():
    # torch is the notebook/worker side's (ml extra); the hub must install without it.
    hub = PYPROJECT["project"]["optional-dependencies"]["hub"]
    base = PYPROJECT["project"]["dependencies"]
    names = {_requirement_name(r) for r in [*hub, *base]}
    assert "torch" not in names
    # and none of the hub's direct dependencies pulls torch transitively
    for name in names:
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        hard = [r for r in requires if "extra ==" not in r]
        assert "torch" not in {_requirement_name(r) for r in hard}, name


def test_hub_side_imports_without_torch():
    # A fresh interpreter where `import torch` fails, as in the hub's environment.
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import astrokit, astrokit.env, astrokit.cli\n"
        "import astrokit_spawner\n"
        "from jupyterhub.spawner import Spawner\n"
        "cls = astrokit_spawner.AstroKitSpawner\n"
        "assert issubclass(cls, Spawner)\n"
        "astrokit.cli.build_parser()\n"
        "print('ok')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("ok")


def test_spawner_entry_point_is_registered():
    eps = metadata.entry_points(group="jupyterhub.spawners")
    by_name = {ep.name: ep for ep in eps}
    assert "astrokit" in by_name
    assert by_name["astrokit"].value == "astrokit_spawner:AstroKitSpawner"


@pytest.mark.parametrize("bad", ["spawner", "extension"])
def test_no_generic_top_level_modules(bad, tmp_path):
    # From a neutral directory (pytest puts tests/ on sys.path, whose spawner/ folder would
    # look like a namespace package): the installed distribution must not provide it.
    code = f"import importlib.util as u; print(u.find_spec({bad!r}))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "None", f"a top-level module called {bad!r} is installed"


def test_ruff_lint_and_format_are_clean():
    ruff = Path(sys.executable).with_name("ruff")
    lint = subprocess.run(
        [str(ruff), "check", "."], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert lint.returncode == 0, lint.stdout[-4000:]
    fmt = subprocess.run(
        [str(ruff), "format", "--check", "."], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert fmt.returncode == 0, fmt.stdout[-4000:]
