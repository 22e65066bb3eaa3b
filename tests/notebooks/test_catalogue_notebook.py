"""Notebook 05 (catalogue photo-z) runs top to bottom against the seeded store and a cluster."""

from __future__ import annotations

import re

from helpers.notebooks import cell_with, check_exact_run, images_of, run_notebook, text_of
from test_notebooks import N_WORKERS


def test_catalogue_photoz(kernel_env, seeded_platform, tmp_path, artifacts_dir):
    from astrokit.commands.platform import CATALOGUE_ROWS
    from astrokit.store import open_store

    nb = run_notebook("05-catalogue-photoz.ipynb", kernel_env, tmp_path, artifacts_dir)
    n_test = CATALOGUE_ROWS - int(0.8 * CATALOGUE_ROWS)

    shown = text_of(cell_with(nb, "catalogue_columns(catalogue_url)"))
    assert "mag_u, mag_g, mag_r, mag_i, mag_z, magerr_u" in shown
    assert f"{CATALOGUE_ROWS} rows" in shown

    trained = text_of(cell_with(nb, "astrokit.train_catalogue("))
    assert re.search(r"best epoch \d of 5", trained), trained
    assert "coverage of the 68% interval" in trained

    store = open_store(seeded_platform["store_url"])
    out = f"{seeded_platform['user_url']}/catalogue-photoz/predictions"
    summary, predictions = check_exact_run(
        nb, "astrokit.infer_catalogue(", store=store, out=out, rows=n_test, workers=N_WORKERS
    )
    assert summary["partitions"] >= 2
    # the natural non-detections (magnitude 99) are reported, not predicted
    bad = predictions[predictions["status"] != "ok"]
    assert summary["n_bad"] == len(bad) and bad["z_pred"].isna().all()

    printed = text_of(cell_with(nb, '"coverage_68", "crps_mean"'))
    coverage = float(re.search(r"coverage_68: ([\d.e-]+)", printed).group(1))
    assert abs(coverage - summary["metrics"]["coverage_68"]) < 1e-3
    assert images_of(cell_with(nb, "bx.bar(edges[:-1]")) == 1
