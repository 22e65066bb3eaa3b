"""Killing a worker process in the middle of a catalogue run still gives every row once."""

from __future__ import annotations

import numpy as np
from helpers.cluster import kill_a_worker_mid_run, local_client


def test_killing_a_worker_mid_run_loses_nothing(tmp_path, trained_model):
    from astrokit.catalogue_inference import infer_catalogue
    from astrokit.survey_catalogue import synth_photometry, write_catalogue

    model_url, _ = trained_model
    columns = synth_photometry(10_000, seed=11, bad_fraction=0.01)
    # CSV: every task parses the whole file, so a task lasts long enough to be caught running
    data = write_catalogue((tmp_path / "big.csv").as_uri(), columns)
    out = tmp_path / "pred"

    with local_client() as client:
        result, finished_early = kill_a_worker_mid_run(
            client,
            lambda: infer_catalogue(
                data,
                model=model_url,
                out=out.as_uri(),
                client=client,
                partition_rows=125,  # 80 tasks
                progress=False,
            ),
            out,
        )

    s = result.summary
    assert finished_early < s["partitions"]  # the kill happened mid-run
    assert s["complete"], s["problems"]
    assert (s["n_predictions"], s["missing"], s["duplicates"], s["unexpected"]) == (
        10_000,
        0,
        0,
        0,
    )
    cat = result.to_pandas()
    assert sorted(cat["row"]) == list(range(10_000))
    assert sorted(cat["id"]) == sorted(columns["id"])
    assert np.isfinite(cat.loc[cat["status"] == "ok", "z_pred"]).all()
