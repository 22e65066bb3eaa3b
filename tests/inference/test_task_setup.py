"""What inference workers get: every FITS suffix, torch threads from the worker plugin."""

from __future__ import annotations

import gzip

import pytest

from astrokit.inference import infer, plan_partitions


def test_inference_accepts_fit_gz_cutouts(cluster_client, tiny_model_url, tmp_path):
    from astrokit import survey

    survey.make_survey((tmp_path / "survey").as_uri(), galaxies=6, spectra=0, seed=5)
    cutouts = tmp_path / "survey" / "cutouts"
    files = sorted(cutouts.glob("*.fits"))
    renamed = {}
    for path, suffix in zip(files[:3], (".fit.gz", ".fits.gz", ".fit"), strict=True):
        target = path.with_name(path.name.removesuffix(".fits") + suffix)
        data = path.read_bytes()
        target.write_bytes(gzip.compress(data) if suffix.endswith(".gz") else data)
        path.unlink()
        renamed[suffix] = target.name
    plan = plan_partitions(cutouts.as_uri())
    planned = {u.rsplit("/", 1)[-1] for p in plan["partitions"] for u in p["files"]}
    assert set(renamed.values()) <= planned and plan["total_rows"] == 6
    result = infer(
        cutouts.as_uri(),
        model=tiny_model_url,
        out=(tmp_path / "pred").as_uri(),
        client=cluster_client,
        progress=False,
    )
    s = result.summary
    assert s["complete"] and s["n_predictions"] == 6 and s["n_ok"] == 6, s["problems"]
    table = result.to_pandas()
    assert renamed[".fit.gz"] in set(table["source"])


def test_the_worker_plugin_sets_torch_threads_to_nthreads(cluster_client):
    from astrokit.workers import TorchThreads, setup_workers

    def threads() -> int:
        import torch

        return torch.get_num_threads()

    setup_workers(cluster_client)
    setup_workers(cluster_client)  # registering again is harmless
    info = cluster_client.scheduler_info()["workers"]
    got = cluster_client.run(threads)
    assert got == {addr: w["nthreads"] for addr, w in info.items()}
    plugins = cluster_client.run(lambda dask_worker: list(dask_worker.plugins))
    assert all(TorchThreads.name in names for names in plugins.values())


@pytest.mark.parametrize("bad", [0, -1])
def test_training_threads_are_checked_once(bad, tmp_path):
    from astrokit.training import TrainingError, run_training

    with pytest.raises(TrainingError, match="threads must be >= 1"):
        run_training(print, "x", client=None, key="k", threads=bad, store=None)
