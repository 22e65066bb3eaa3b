"""Killing a worker process in the middle of a run still yields a complete, exact result."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.cluster import kill_a_worker_mid_run, local_client


@pytest.fixture
def small_model_url(tmp_path, galaxy_arrays, model_writer):
    # the "small" configuration makes each task take long enough to be caught running
    return model_writer(str(tmp_path / "small.pt"), "small", galaxy_arrays, seed=1)


def test_killing_a_worker_mid_run_loses_nothing(
    tmp_path, galaxy_arrays, shard_writer, small_model_url
):
    from astrokit.inference import infer
    from astrokit.models.checkpoint import load_checkpoint
    from astrokit.models.runtime import predict_arrays

    arrays = {k: np.concatenate([v, v]) for k, v in galaxy_arrays.items()}
    arrays["ids"] = np.array([f"{i}-{n}" for n, i in enumerate(arrays["ids"])])
    data = (tmp_path / "shards").as_uri()
    shard_writer(data, arrays, rows_per_shard=150)  # 4 shards of ~3 MB
    out = tmp_path / "pred"

    with local_client() as client:
        result, _ = kill_a_worker_mid_run(
            client,
            lambda: infer(
                data,
                model=small_model_url,
                out=out.as_uri(),
                client=client,
                partition_mb=0.3,  # ~14 rows per task, ~44 tasks
                precision="fp32",  # compared with fp32 in-process predictions below
                progress=False,
            ),
            out,
        )

    s = result.summary
    assert s["complete"], s["problems"]
    assert (s["n_predictions"], s["missing"], s["duplicates"], s["unexpected"]) == (600, 0, 0, 0)
    cat = result.to_pandas()
    assert sorted(cat["id"]) == sorted(arrays["ids"])
    ckpt = load_checkpoint(small_model_url)
    expected = predict_arrays(ckpt.model, arrays["images"], arrays["mags"])
    got = cat.set_index("id").loc[arrays["ids"], "z_pred"].to_numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
