"""The committed notebooks are exactly what ``notebooks/generate.py`` writes, without outputs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
EXPECTED = [
    "01-quickstart.ipynb",
    "02-browse-and-plot.ipynb",
    "03-redshift-inference.ipynb",
    "04-active-learning.ipynb",
    "05-catalogue-photoz.ipynb",
]


@pytest.fixture(scope="module")
def generator():
    """``notebooks/generate.py`` as a module (it is a script, not part of a package)."""
    spec = importlib.util.spec_from_file_location(
        "astrokit_notebook_generator", NOTEBOOKS / "generate.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generator_matches_committed_notebooks(generator, capsys):
    assert generator.main(["--check"]) == 0, capsys.readouterr().err


def test_check_reports_stale_and_missing_notebooks(generator, tmp_path, capsys):
    assert generator.main(["--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.glob("*.ipynb")) == EXPECTED
    assert not list(tmp_path.glob(".tmp-*")), "temporary files left behind"
    assert generator.main(["--out", str(tmp_path), "--check"]) == 0

    (tmp_path / EXPECTED[1]).write_text((tmp_path / EXPECTED[1]).read_text() + " ")
    (tmp_path / EXPECTED[2]).unlink()
    assert generator.main(["--out", str(tmp_path), "--check"]) == 1
    err = capsys.readouterr().err
    assert EXPECTED[1] in err and EXPECTED[2] in err and EXPECTED[0] not in err


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
