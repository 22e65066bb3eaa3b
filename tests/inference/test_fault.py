"""Killing a worker process in the middle of a run still yields a complete, exact result."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest
import torch
from helpers.polling import wait_until


@pytest.fixture
def small_model_url(tmp_path, galaxy_arrays):
    # the "small" configuration makes each task take long enough to be caught running
    from astrokit.models.astromae import AstroMAE
    from astrokit.models.checkpoint import save_checkpoint

    torch.manual_seed(1)
    model = AstroMAE("small")
    model.set_normalization(
        torch.from_numpy(galaxy_arrays["images"]),
        torch.from_numpy(galaxy_arrays["mags"]),
        torch.from_numpy(galaxy_arrays["z"]),
    )
    url = str(tmp_path / "small.pt")
    save_checkpoint(model.eval(), url)
    return url


def test_killing_a_worker_mid_run_loses_nothing(
    tmp_path, galaxy_arrays, shard_writer, small_model_url
):
    from distributed import Client, LocalCluster

    from astrokit.inference import infer
    from astrokit.models.checkpoint import load_checkpoint
    from astrokit.models.runtime import predict_arrays

    arrays = {k: np.concatenate([v, v]) for k, v in galaxy_arrays.items()}
    arrays["ids"] = np.array([f"{i}-{n}" for n, i in enumerate(arrays["ids"])])
    data = (tmp_path / "shards").as_uri()
    shard_writer(data, arrays, rows_per_shard=150)  # 4 shards of ~3 MB
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
            outcome["result"] = infer(
                data,
                model=small_model_url,
                out=out.as_uri(),
                client=client,
                partition_mb=0.3,  # ~14 rows per task, ~44 tasks
                precision="fp32",  # compared with fp32 in-process predictions below
                progress=False,
            )
        except BaseException as exc:  # surfaced by the assertions below
            outcome["error"] = exc

    try:
        thread = threading.Thread(target=run, daemon=True)
        thread.start()

        # wait until the run is under way: some partitions written, others running
        def running_worker() -> str | None:
            """A worker with tasks in hand once two partitions are written (None before)."""
            if not thread.is_alive():
                raise AssertionError(f"the run ended before a worker was killed: {outcome}")
            done = len(list(out.glob("pred-*.parquet"))) if out.exists() else 0
            busy = [addr for addr, keys in client.processing().items() if keys]
            return busy[0] if done >= 2 and busy else None

        victim = wait_until(running_worker, 120, "a run with partitions written and tasks", 0.05)
        pid = client.run(os.getpid, workers=[victim])[victim]
        os.kill(pid, 9)  # SIGKILL: no cleanup, as when the OOM killer or a node takes it
        thread.join(timeout=300)
        assert not thread.is_alive(), "inference did not finish after the worker was killed"
        assert "error" not in outcome, outcome.get("error")
        assert victim not in client.scheduler_info()["workers"]  # the worker really died
    finally:
        client.close()
        cluster.close()

    s = outcome["result"].summary
    assert s["complete"], s["problems"]
    assert (s["n_predictions"], s["missing"], s["duplicates"], s["unexpected"]) == (600, 0, 0, 0)
    cat = outcome["result"].to_pandas()
    assert sorted(cat["id"]) == sorted(arrays["ids"])
    ckpt = load_checkpoint(small_model_url)
    expected = predict_arrays(ckpt.model, arrays["images"], arrays["mags"])
    got = cat.set_index("id").loc[arrays["ids"], "z_pred"].to_numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
