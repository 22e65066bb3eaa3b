"""Killing a worker process in the middle of a catalogue run still gives every row once."""

from __future__ import annotations

import os
import threading
import time

import numpy as np


def test_killing_a_worker_mid_run_loses_nothing(tmp_path, trained_model):
    from distributed import Client, LocalCluster

    from astrokit.catalogue_inference import infer_catalogue
    from astrokit.survey_catalogue import synth_photometry, write_catalogue

    model_url, _ = trained_model
    columns = synth_photometry(10_000, seed=11, bad_fraction=0.01)
    # CSV: every task parses the whole file, so a task lasts long enough to be caught running
    data = write_catalogue((tmp_path / "big.csv").as_uri(), columns)
    out = tmp_path / "pred"

    cluster = LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        worker_dashboard_address=None,
    )
    client = Client(cluster)
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["result"] = infer_catalogue(
                data,
                model=model_url,
                out=out.as_uri(),
                client=client,
                partition_rows=125,  # 80 tasks
                progress=False,
            )
        except BaseException as exc:  # surfaced by the assertions below
            outcome["error"] = exc

    try:
        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 120
        victim = None
        while time.monotonic() < deadline and thread.is_alive():
            done = len(list(out.glob("pred-*.parquet"))) if out.exists() else 0
            busy = [addr for addr, keys in client.processing().items() if keys]
            if done >= 2 and busy:
                victim = busy[0]
                break
            time.sleep(0.02)
        assert victim is not None, "the run never reached the point where a worker is killed"
        pid = client.run(os.getpid, workers=[victim])[victim]
        os.kill(pid, 9)  # SIGKILL: no cleanup, as when the OOM killer takes it
        thread.join(timeout=300)
        assert not thread.is_alive(), "inference did not finish after the worker was killed"
        assert "error" not in outcome, outcome.get("error")
        assert victim not in client.scheduler_info()["workers"]  # the worker really died
        finished_early = done
    finally:
        client.close()
        cluster.close()

    s = outcome["result"].summary
    assert finished_early < s["partitions"]  # the kill happened mid-run
    assert s["complete"], s["problems"]
    assert (s["n_predictions"], s["missing"], s["duplicates"], s["unexpected"]) == (
        10_000,
        0,
        0,
        0,
    )
    cat = outcome["result"].to_pandas()
    assert sorted(cat["row"]) == list(range(10_000))
    assert sorted(cat["id"]) == sorted(columns["id"])
    assert np.isfinite(cat.loc[cat["status"] == "ok", "z_pred"]).all()
