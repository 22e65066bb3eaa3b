"""Run each teaching notebook top to bottom (nbclient) against a real cluster and store.

Every notebook must execute without an error cell; then the test checks what a reader of the
notebook would check: the numbers it prints, the widgets it shows and the files it leaves in
the user's area of the store. The executed copies are kept in ``test-artifacts/`` to look at.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from helpers.notebooks import (
    cell_with,
    check_exact_run,
    images_of,
    run_notebook,
    text_of,
    widget_views,
)

#: Workers of the test cluster (tests/notebooks/conftest.py).
N_WORKERS = 2
#: Spectra in the test survey (tests/notebooks/conftest.py).
SPECTRA = 360


def test_quickstart(kernel_env, seeded_platform, tmp_path, artifacts_dir):
    from astrokit.shards import Manifest

    nb = run_notebook("01-quickstart.ipynb", kernel_env, tmp_path, artifacts_dir)

    link = text_of(cell_with(nb, "dashboard_link()"))
    # No hub here: the notebook falls back to Dask's own dashboard link, on loopback.
    assert re.search(r'href="http://127\.0\.0\.1:\d+/status"', link), link

    workers = text_of(cell_with(nb, "memory limit="))
    assert f"{N_WORKERS} workers, {N_WORKERS} threads in all" in workers
    assert "profile: test" in workers
    # The scale step really scaled: down to one worker, then back up by connect().
    scaled = text_of(cell_with(nb, "scale_cluster(client, 1)"))
    assert f"before: {N_WORKERS} workers" in scaled, scaled
    assert "after scale_cluster(client, 1): 1 worker" in scaled, scaled
    assert f"after astrokit.connect(): {N_WORKERS} workers ready" in scaled, scaled

    manifest = Manifest.load(seeded_platform["shards_url"])
    assert len(manifest.shards) >= 2, "the test survey should span several shards"
    survey = text_of(cell_with(nb, "def colour_by_redshift"))
    assert f"{manifest.total_rows} galaxies read by workers" in survey
    # the colour-redshift table: one line per bin; only rows with bad magnitudes are left out
    counts = [int(n) for n in re.findall(r"z < [\d.]+:\s+(\d+) galaxies", survey)]
    assert len(counts) == 7
    assert 0.9 * manifest.total_rows <= sum(counts) <= manifest.total_rows
    assert images_of(cell_with(nb, "plt.subplots")) == 1


def test_browse_and_plot(kernel_env, seeded_platform, tmp_path, artifacts_dir):
    nb = run_notebook("02-browse-and-plot.ipynb", kernel_env, tmp_path, artifacts_dir)

    assert len(widget_views(cell_with(nb, "browser = StoreBrowser()"))) == 1
    picked = text_of(cell_with(nb, "browser.navigate("))
    assert "opened as: spectrum" in picked, picked

    assert len(widget_views(cell_with(nb, "viewer = SpectrumViewer("))) == 1
    state = text_of(cell_with(nb, 'viewer.frame = "rest"'))
    z_shown, z_catalogue = map(float, re.findall(r"[-\d.]+", state.splitlines()[0])[:2])
    assert z_shown == pytest.approx(z_catalogue, abs=1e-4)  # the viewer took the catalogue z
    assert "lines drawn:" in state and len(state.split("lines drawn:")[1].split(",")) >= 2

    # Every real file in shared/examples (LAMOST, SDSS, BOSS, DESI: the fixture's copies plus
    # what `platform prepare` copies from installed packages), each read by our reader and shown.
    examples = Path(seeded_platform["store_url"].removeprefix("file://")) / "shared" / "examples"
    n_examples = len([p for p in examples.iterdir() if ".fit" in p.name])
    assert n_examples >= 2
    real = text_of(cell_with(nb, "real_viewer = SpectrumViewer("))
    assert "lamost-lrs:" in real and "class STAR" in real, real
    assert "sdss" in real.lower(), real
    assert len(widget_views(cell_with(nb, "real_viewer = SpectrumViewer("))) == n_examples

    assert len(widget_views(cell_with(nb, "nearby = galaxies"))) == 1
    far = text_of(cell_with(nb, "far_viewer = CutoutViewer("))
    assert "'mag_r'" in far and "'z'" in far


def test_redshift_inference(kernel_env, seeded_platform, tmp_path, artifacts_dir):
    from astrokit.shards import Manifest
    from astrokit.store import open_store

    nb = run_notebook("03-redshift-inference.ipynb", kernel_env, tmp_path, artifacts_dir)
    total = Manifest.load(seeded_platform["shards_url"]).total_rows

    # What the run left in the user's area: an exact catalogue and its summary.
    store = open_store(seeded_platform["store_url"])
    out = f"{seeded_platform['user_url']}/inference/survey"
    summary, _ = check_exact_run(
        nb, "astrokit.infer(", store=store, out=out, rows=total, workers=N_WORKERS
    )
    assert summary["partitions"] >= 3, "quick mode should still spread several tasks"

    # The metrics cell printed the same numbers as the summary holds.
    printed = text_of(cell_with(nb, "photoz_metrics("))
    sigma = float(re.search(r"sigma_mad: ([\d.e-]+)", printed).group(1))
    assert sigma == pytest.approx(summary["metrics"]["sigma_mad"], rel=1e-3)
    assert images_of(cell_with(nb, "ax.scatter(z_true, z_pred")) == 1


def test_active_learning(kernel_env, seeded_platform, tmp_path, artifacts_dir):
    from astrokit.active import LoopCheckpoint, Pool

    nb = run_notebook("04-active-learning.ipynb", kernel_env, tmp_path, artifacts_dir)
    work = f"{seeded_platform['user_url']}/active-learning"

    # Every spectrum of the survey went into the pool (the synthetic files are all readable).
    pool = Pool.load(f"{work}/pool")
    assert pool.total_rows == SPECTRA
    assert sorted(pool.classes) == ["absorption", "broadline", "emission", "featureless"]

    # Both simulated loops ran their iterations, each batch fully labelled and checkpointed.
    batch, iterations = 20, 2  # the notebook's quick-mode parameters
    for strategy in ("entropy", "random"):
        state = LoopCheckpoint(f"{work}/experiment/{strategy}-seed0").load_state()
        assert state["iteration"] == iterations and state["phase"] == "query"
        labelled = [rec["n_labelled"] for rec in state["history"]]
        assert labelled == [batch * (i + 1) for i in range(iterations)], labelled
        assert all(0.0 <= rec["accuracy"] <= 1.0 for rec in state["history"])
    balance = text_of(cell_with(nb, "record.batch_classes"))
    assert balance.count("iteration ") == 2 * iterations
    curves = cell_with(nb, "plot_learning_curves(experiment)")
    assert images_of(curves) == 1
    assert "random's final accuracy" in text_of(curves)

    # The human loop stops at its first batch and waits for clicks in the widget.
    assert len(widget_views(cell_with(nb, "LabellingWidget(human)"))) == 1
    waiting = text_of(cell_with(nb, "human.awaiting_labels"))
    assert "waiting for your labels: True" in waiting
    ids = re.search(r"this batch: \[(.*)\]", waiting).group(1).split(",")
    assert len(ids) == 5
    assert f"on screen: {ids[0].strip(' ' + chr(39))} (1 of 5)" in waiting
    human = LoopCheckpoint(f"{work}/human").load_state()
    assert human["phase"] == "label" and len(human["pending"]) == 5
