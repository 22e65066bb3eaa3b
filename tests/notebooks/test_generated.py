"""The committed notebooks are exactly what ``notebooks/generate.py`` writes, without outputs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
EXPECTED = [
    "01-quickstart.ipynb",
    "02-browse-and-plot.ipynb",
    "03-redshift-inference.ipynb",
    "04-active-learning.ipynb",
]


def test_generator_matches_committed_notebooks(tmp_path):
    result = subprocess.run(
        [sys.executable, str(NOTEBOOKS / "generate.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_generator_writes_what_check_accepts(tmp_path):
    # --check must compare against the very text the generator writes (no false "stale").
    for args in (["--out", str(tmp_path)], ["--out", str(tmp_path), "--check"]):
        result = subprocess.run(
            [sys.executable, str(NOTEBOOKS / "generate.py"), *args],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.glob("*.ipynb")) == EXPECTED


@pytest.mark.parametrize("name", EXPECTED)
def test_committed_without_outputs(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code, f"{name} has no code"
    for cell in code:
        assert cell.outputs == [] and cell.execution_count is None, f"{name}: outputs committed"
    # a teaching notebook explains before it runs: it opens with a markdown title
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
