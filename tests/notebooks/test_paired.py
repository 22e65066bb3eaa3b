"""Each committed notebook is exactly what jupytext builds from its paired percent script.

The source of truth is ``notebooks/NN-name.py`` (jupytext's percent format, see
``notebooks/jupytext.toml``); ``make notebooks`` builds ``NN-name.ipynb`` from it, without
outputs. These tests run the same build on copies and fail when it would change a committed
file, so a cell edited in only one of the two is caught.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import jupytext
import nbformat
import pytest
from jupytext.cli import jupytext as jupytext_cli

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
EXPECTED = [
    "01-quickstart",
    "02-browse-and-plot",
    "03-redshift-inference",
    "04-active-learning",
    "05-catalogue-photoz",
]


def build(directory: Path) -> None:
    """What ``make notebooks`` runs, in ``directory``."""
    scripts = sorted(str(path) for path in directory.glob("[0-9]*.py"))
    jupytext_cli(["--quiet", "--to", "ipynb", "--update", *scripts])


def copy_notebooks(to: Path) -> Path:
    for path in [NOTEBOOKS / "jupytext.toml", *NOTEBOOKS.glob("[0-9]*.*")]:
        shutil.copy(path, to / path.name)
    return to


def test_every_notebook_has_its_script():
    assert sorted(p.stem for p in NOTEBOOKS.glob("[0-9]*.ipynb")) == EXPECTED
    assert sorted(p.stem for p in NOTEBOOKS.glob("[0-9]*.py")) == EXPECTED


@pytest.mark.parametrize("name", EXPECTED)
def test_notebook_is_built_from_its_script(name, tmp_path):
    build(copy_notebooks(tmp_path))
    built = (tmp_path / f"{name}.ipynb").read_text()
    assert built == (NOTEBOOKS / f"{name}.ipynb").read_text(), (
        f"notebooks/{name}.ipynb differs from its script notebooks/{name}.py: run `make notebooks`"
    )


def test_build_catches_an_edit_to_either_side(tmp_path):
    copy_notebooks(tmp_path)
    script = tmp_path / f"{EXPECTED[0]}.py"
    script.write_text(script.read_text() + "\n# %%\nprint('added')\n")
    build(tmp_path)
    nb = nbformat.read(tmp_path / f"{EXPECTED[0]}.ipynb", as_version=4)
    assert nb.cells[-1].source == "print('added')"
    # the script wins: a cell changed only in the .ipynb is overwritten by the next build
    paired = tmp_path / f"{EXPECTED[1]}.ipynb"
    nb = nbformat.read(paired, as_version=4)
    nb.cells[0].source = "# edited by hand"
    nbformat.write(nb, paired)
    build(tmp_path)
    assert nbformat.read(paired, as_version=4).cells[0].source != "# edited by hand"


@pytest.mark.parametrize("name", EXPECTED)
def test_committed_without_outputs(name):
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code, f"{name} has no code"
    for cell in code:
        assert cell.outputs == [] and cell.execution_count is None, f"{name}: outputs committed"
    # a teaching notebook explains before it runs: it opens with a markdown title
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")


@pytest.mark.parametrize("name", EXPECTED)
def test_script_reads_as_the_notebook(name):
    """The script's cells, read by jupytext, are the notebook's cells (tags included)."""
    text = jupytext.read(NOTEBOOKS / f"{name}.py")
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    assert [(c.cell_type, c.source, c.metadata) for c in text.cells] == [
        (c.cell_type, c.source, c.metadata) for c in nb.cells
    ]
