"""Running a teaching notebook in a test, and reading what it showed.

:func:`run_notebook` executes ``notebooks/<name>`` top to bottom with nbclient and keeps the
executed copy in the test's artifacts directory; the other helpers read a cell's outputs as a
reader would see them. :func:`check_exact_run` is the check every notebook that runs
inference ends with: the run cell reported every row once, and the store holds its summary
and catalogue.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient

__all__ = [
    "CELL_TIMEOUT",
    "NOTEBOOKS",
    "cell_with",
    "check_exact_run",
    "images_of",
    "run_notebook",
    "text_of",
    "widget_views",
]

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
#: Seconds any single cell may take (inference and training cells are the long ones).
CELL_TIMEOUT = 240


def run_notebook(name: str, env: dict[str, str], workdir: Path, artifacts: Path):
    """Execute ``notebooks/<name>`` with ``env`` for the kernel; return the executed notebook."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(workdir)}},
    )
    try:
        client.execute(env=env)
    finally:
        # Kept whatever happened: the executed notebook shows where and why it stopped.
        nbformat.write(nb, artifacts / name)
    return nb


def cell_with(nb, needle: str):
    """The (first) code cell whose source contains ``needle``."""
    for cell in nb.cells:
        if cell.cell_type == "code" and needle in cell.source:
            return cell
    raise AssertionError(f"no code cell contains {needle!r}")


def text_of(cell) -> str:
    """Everything a code cell printed or displayed as text (streams, plain text, HTML)."""
    parts = []
    for out in cell.get("outputs", []):
        if out.output_type == "stream":
            parts.append(out.text)
        elif out.output_type in ("execute_result", "display_data"):
            data = out.get("data", {})
            parts.append(data.get("text/plain", ""))
            parts.append(data.get("text/html", ""))
    return "\n".join(parts)


def widget_views(cell) -> list[dict]:
    """The widget views a code cell displayed."""
    return [
        out.data[WIDGET_VIEW]
        for out in cell.get("outputs", [])
        if out.output_type in ("execute_result", "display_data")
        and WIDGET_VIEW in out.get("data", {})
    ]


def images_of(cell) -> int:
    """Number of PNG images (plots) a code cell displayed."""
    return sum(
        "image/png" in out.get("data", {})
        for out in cell.get("outputs", [])
        if out.output_type in ("execute_result", "display_data")
    )


def check_exact_run(
    nb, call: str, *, store: Any, out: str, rows: int, workers: int
) -> tuple[dict, Any]:
    """The cell that calls ``call`` reported a complete run of ``rows`` rows, each predicted
    exactly once on ``workers`` workers, and ``out`` in the store holds that run's summary and
    a catalogue of ``rows`` unique ids. Returns ``(summary, catalogue as a DataFrame)``."""
    import pandas as pd

    run = text_of(cell_with(nb, call))
    assert f"complete: True  ({rows} predictions for {rows} rows)" in run, run
    assert "missing 0, duplicated 0" in run
    assert f"on {workers} workers" in run
    summary = json.loads(store.read_bytes(f"{out}/summary.json"))
    assert summary["complete"] and summary["n_predictions"] == rows
    catalogue = pd.read_parquet(io.BytesIO(store.read_bytes(f"{out}/catalog.parquet")))
    assert len(catalogue) == rows and catalogue["id"].is_unique
    return summary, catalogue
