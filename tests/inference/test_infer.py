"""Distributed inference on a real LocalCluster: exact results, resume, bad rows, S3, CLI."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest

from astrokit.cli import main as cli_main
from astrokit.inference import (
    IncompleteResultError,
    InferenceError,
    balance_partitions,
    infer,
    plan_partitions,
)
from astrokit.models.checkpoint import load_checkpoint
from astrokit.models.runtime import predict_arrays


@pytest.fixture
def shard_url(tmp_path, galaxy_arrays, shard_writer):
    url = (tmp_path / "shards").as_uri()
    shard_writer(url, galaxy_arrays, rows_per_shard=120)  # shards of 120, 120, 60 rows
    return url


@pytest.fixture
def run_infer(cluster_client, tiny_model_url, tmp_path):
    """``infer`` with the tests' defaults: the tiny model, the test cluster, ``tmp_path/pred``
    and no progress bar; keyword arguments override them."""

    def run(data: str, **options):
        settings = {
            "model": tiny_model_url,
            "out": (tmp_path / "pred").as_uri(),
            "client": cluster_client,
            "progress": False,
        }
        return infer(data, **{**settings, **options})

    return run


def _catalog(result) -> pd.DataFrame:
    return result.to_pandas()


def test_plan_cuts_shards_into_row_ranges(shard_url, tmp_path):
    # each 120-row shard is ~2.5 MB: 1 MB partitions cut it into 3 ranges of 40 rows
    plan = plan_partitions(shard_url, partition_mb=1.0)
    assert plan["total_rows"] == 300
    spans = [(p["shard"]["name"], p["start"], p["stop"]) for p in plan["partitions"]]
    assert spans[:3] == [
        ("shard-00000.npz", 0, 40),
        ("shard-00000.npz", 40, 80),
        ("shard-00000.npz", 80, 120),
    ]
    assert sum(p["rows"] for p in plan["partitions"]) == 300
    assert len(plan_partitions(shard_url)["partitions"]) == 3  # 25 MB: one per shard
    with pytest.raises(InferenceError, match="no such shard set or directory"):
        plan_partitions(shard_url + "-missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no cutouts here")
    with pytest.raises(InferenceError, match="nothing to infer on"):
        plan_partitions(str(empty))


def test_the_last_wave_is_cut_for_the_cluster(shard_url):
    # 25 MB: one partition per shard (120, 120, 60 rows); on 2 threads the third would run
    # alone while the other thread idles, so it is cut in two
    base = plan_partitions(shard_url)["partitions"]
    two = balance_partitions(base, 2)
    assert [(p["index"], p["start"], p["stop"]) for p in two] == [
        (0, 0, 120),
        (1, 0, 120),
        (2, 0, 30),
        (3, 30, 60),
    ]
    assert [p["shard"]["name"] for p in two][2:] == ["shard-00002.npz"] * 2
    # a multiple of the threads is left alone; fewer partitions than threads are all cut
    assert balance_partitions(base, 3) == base and balance_partitions(base, 1) == base
    four = balance_partitions(base, 4)
    assert len(four) == 12 and sum(p["rows"] for p in four) == 300
    assert [p["index"] for p in four] == list(range(12))
    # every row is still in exactly one partition
    rows = sorted((p["shard"]["name"], r) for p in four for r in range(p["start"], p["stop"]))
    assert len(rows) == len(set(rows)) == 300


def test_fits_groups_are_cut_by_files(tmp_path):
    from astrokit.inference import _fits_partition

    files = [f"file:///x/c{i}.fits" for i in range(5)]
    parts = balance_partitions([_fits_partition(0, files)], 2)
    assert [p["files"] for p in parts] == [files[:2], files[2:]] or [p["files"] for p in parts] == [
        files[:3],
        files[3:],
    ]
    assert [p["index"] for p in parts] == [0, 1] and sum(p["rows"] for p in parts) == 5


def test_a_resumed_run_keeps_its_plan_on_another_cluster_size(shard_url, tmp_path, run_infer):
    from distributed import Client

    from astrokit.cluster import local_cluster

    # the first run on 2 threads: 3 shard partitions, the last cut in two
    first = run_infer(shard_url)
    assert first.summary["partitions"] == 4
    (tmp_path / "pred" / "pred-00003.parquet").unlink()
    # resumed on a 1-worker cluster: the same 4 partitions, only the missing one recomputed
    with local_cluster(1, 1) as cluster, Client(cluster) as one:
        again = run_infer(shard_url, client=one)
    assert again.summary["partitions"] == 4
    assert again.summary["partitions_resumed"] == 3 and again.summary["partitions_computed"] == 1
    assert again.summary["complete"]
    pd.testing.assert_frame_equal(_catalog(first), _catalog(again))


def test_infer_is_exact_and_matches_in_process(
    cluster_client, shard_url, tiny_model_url, galaxy_arrays, tmp_path, run_infer
):
    result = run_infer(
        shard_url,
        partition_mb=1.0,
        precision="fp32",  # compared with fp32 in-process predictions below
    )
    s = result.summary
    assert s["complete"] and s["problems"] == []
    assert (s["n_rows"], s["n_predictions"], s["missing"], s["duplicates"]) == (300, 300, 0, 0)
    assert s["partitions"] == s["partitions_computed"] == 8  # 3 + 3 + 2
    assert s["workers"] == 2 and s["samples_per_second"] > 0
    assert s["metrics"]["n"] == 300
    cat = _catalog(result)
    assert sorted(cat["id"]) == sorted(galaxy_arrays["ids"])
    # the distributed predictions are the model's predictions, row for row
    ckpt = load_checkpoint(tiny_model_url)
    expected = predict_arrays(ckpt.model, galaxy_arrays["images"], galaxy_arrays["mags"])
    got = cat.set_index("id").loc[galaxy_arrays["ids"], "z_pred"].to_numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    # summary.json on the store equals the returned summary
    assert json.loads((tmp_path / "pred" / "summary.json").read_text())["n_ok"] == 300

    # each worker process loaded the model once, not once per task
    loads = cluster_client.run(
        lambda: __import__("astrokit.inference_worker").inference_worker._LOADS["count"]
    )
    assert all(v <= 1 for v in loads.values()) and sum(loads.values()) >= 1


def test_resume_skips_finished_partitions(shard_url, tmp_path, run_infer):
    first = run_infer(shard_url, partition_mb=1.0)
    again = run_infer(shard_url, partition_mb=1.0)
    assert again.summary["partitions_resumed"] == 8 and again.summary["partitions_computed"] == 0
    (tmp_path / "pred" / "pred-00004.parquet").unlink()
    third = run_infer(shard_url, partition_mb=1.0)
    assert third.summary["partitions_computed"] == 1 and third.summary["complete"]
    pd.testing.assert_frame_equal(_catalog(first), _catalog(third))


def test_bad_rows_are_reported_not_predicted(shard_writer, tmp_path, galaxy_arrays, run_infer):
    arrays = {k: v[:100].copy() for k, v in galaxy_arrays.items()}
    arrays["images"][3, :, :10, :] = np.nan  # 31 % of the pixels
    arrays["images"][4, 0, 0, :5] = np.nan  # 0.1 %: filled and predicted
    arrays["mags"][7, 2] = np.inf
    arrays["z"][9] = np.nan  # unknown redshift: predicted, not in the metrics
    url = (tmp_path / "bad").as_uri()
    shard_writer(url, arrays, rows_per_shard=50)
    result = run_infer(url)
    s = result.summary
    assert s["complete"]
    assert s["n_ok"] == 98 and s["n_bad"] == 2
    assert s["bad_by_status"] == {"bad_pixels": 1, "bad_mags": 1}
    assert {r["id"] for r in s["bad_rows"]} == {arrays["ids"][3], arrays["ids"][7]}
    assert s["n_labelled"] == 97 and s["metrics"]["n"] == 97
    cat = _catalog(result).set_index("id")
    assert np.isnan(cat.loc[arrays["ids"][3], "z_pred"])
    assert "non-finite pixels" in cat.loc[arrays["ids"][3], "error"]
    assert np.isfinite(cat.loc[arrays["ids"][4], "z_pred"])
    assert np.isfinite(cat.loc[arrays["ids"][9], "z_pred"])


def test_corrupt_shard_rows_are_reported_and_the_rest_kept(shard_url, tmp_path, run_infer):
    shard = tmp_path / "shards" / "shard-00001.npz"
    shard.write_bytes(shard.read_bytes()[:1000])  # truncated: checksum mismatch
    result = run_infer(shard_url)
    s = result.summary
    assert s["complete"] and s["n_predictions"] == 300
    assert s["bad_by_status"] == {"bad_file": 120} and s["n_ok"] == 180
    assert "ChecksumMismatch" in s["bad_rows"][0]["error"]


def test_lost_prediction_file_is_detected(shard_url, tmp_path, run_infer):
    from astrokit.inference import _summarise
    from astrokit.store import resolve

    out = (tmp_path / "pred").as_uri()
    run_infer(shard_url)
    # a partition file that holds another partition's rows (a duplicate) and one lost file;
    # on the 2-thread cluster the plan is 120, 120, 30, 30 rows (the last shard cut in two)
    (tmp_path / "pred" / "pred-00002.parquet").write_bytes(
        (tmp_path / "pred" / "pred-00001.parquet").read_bytes()
    )
    st, url = resolve(out)
    plan = json.loads((tmp_path / "pred" / "plan.json").read_text())
    result = _summarise(
        st,
        url,
        plan,
        stats=[],
        failures={},
        resumed=3,
        compute_seconds=0.0,
        wall_seconds=0.0,
        workers=0,
        threads=0,
        store=None,
    )
    s = result.summary
    assert not s["complete"]
    assert len(plan["partitions"]) == 4
    assert s["missing"] == 30 and s["duplicates"] == 120
    assert any("no prediction" in p for p in s["problems"])


def test_failed_partitions_raise_with_summary(shard_url, tmp_path, run_infer):
    # a directory where partition 1's file must go: its task cannot write, even when retried
    (tmp_path / "pred" / "pred-00001.parquet").mkdir(parents=True)
    with pytest.raises(IncompleteResultError, match="incomplete") as info:
        run_infer(shard_url)
    s = info.value.result.summary
    assert not s["complete"] and s["partitions_failed"] == [1]
    assert s["missing"] == 120 and s["n_predictions"] == 180
    assert json.loads((tmp_path / "pred" / "summary.json").read_text())["complete"] is False


def test_bad_model_fails_before_any_task(shard_url, tmp_path, run_infer):
    from astrokit.models.checkpoint import CheckpointFormatError

    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointFormatError, match=r"junk\.pt"):
        run_infer(shard_url, model=str(tmp_path / "junk.pt"))


@pytest.mark.s3
def test_infer_on_s3(shard_writer, make_bucket, s3_store_options, galaxy_arrays, tiny_model_url):
    """Workers take S3 credentials from their environment, never from the task graph
    (:func:`astrokit.workers.task_store`): the cluster starts once the S3 server's keys are
    in the environment, as the spawner's workers get theirs."""
    from distributed import Client, LocalCluster

    from astrokit.store import open_store

    bucket = make_bucket()
    store = open_store(bucket, storage_options=s3_store_options)
    arrays = {k: v[:80] for k, v in galaxy_arrays.items()}
    shard_writer(f"{bucket}/shards", arrays, rows_per_shard=40, store=store)
    model_url = f"{bucket}/models/tiny.pt"
    with open(tiny_model_url.removeprefix("file://"), "rb") as fh:
        store.write_bytes(model_url, fh.read())
    with (
        LocalCluster(
            n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
            dashboard_address=None, worker_dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):  # fmt: skip
        result = infer(
            f"{bucket}/shards",
            model=model_url,
            out=f"{bucket}/users/me/pred",
            client=client,
            store=store,
            progress=False,
        )
    assert result.summary["complete"] and result.summary["n_ok"] == 80
    table = pd.read_parquet(io.BytesIO(store.read_bytes(result.catalog_url)))
    assert sorted(table["id"]) == sorted(arrays["ids"])


def test_infer_command(cluster_client, shard_url, tiny_model_url, tmp_path, capsys):
    out = (tmp_path / "cli").as_uri()
    rc = cli_main(
        [
            "infer",
            shard_url,
            "--model",
            tiny_model_url,
            "--out",
            out,
            "--scheduler",
            cluster_client.scheduler.address,
            "--no-progress",
        ]
    )
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["complete"] and summary["n_predictions"] == 300
    rc = cli_main(["infer", shard_url, "--out", out, "--no-progress"])
    assert rc == 2  # no model and no ASTROKIT_MODEL_URL
    assert "ASTROKIT_MODEL_URL" in capsys.readouterr().err


def test_infer_on_fits_cutouts(tmp_path, run_infer):
    from astrokit import survey

    root = (tmp_path / "survey").as_uri()
    survey.make_survey(root, galaxies=24, spectra=2, seed=5)
    cutouts = tmp_path / "survey" / "cutouts"
    names = sorted(p.name for p in cutouts.glob("*.fits"))
    assert len(names) == 24
    (cutouts / names[0]).write_bytes(b"SIMPLE  =  broken")  # one unreadable file
    result = run_infer(
        cutouts.as_uri(),
        partition_mb=0.1,  # a few files per task
    )
    s = result.summary
    assert s["complete"] and s["input_kind"] == "fits"
    assert s["n_predictions"] == 24 and s["partitions"] > 1
    assert s["bad_by_status"] == {"bad_file": 1}
    assert s["bad_rows"][0]["source"] == names[0]
    assert s["n_ok"] == 23 and s["metrics"]["n"] == 23


def test_infer_command_shows_progress(cluster_client, shard_url, tiny_model_url, tmp_path, capsys):
    # without --no-progress the bar goes to stderr (stdout stays pure JSON) and ends at n/n
    out = (tmp_path / "cli").as_uri()
    argv = ["infer", shard_url, "--model", tiny_model_url, "--out", out, "--partition-mb", "1"]
    rc = cli_main([*argv, "--scheduler", cluster_client.scheduler.address])
    assert rc == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["partitions"] == 8
    assert "astrokit infer" in captured.err
    assert "8/8" in captured.err


def test_infer_tasks_are_named_for_the_dashboard(cluster_client, shard_url, run_infer):
    from distributed import get_task_stream

    with get_task_stream(cluster_client) as stream:
        result = run_infer(shard_url, partition_mb=1.0)
    keys = [str(task["key"]) for task in stream.data]
    named = sorted(k for k in keys if k.startswith("astrokit-infer-"))
    # one task per partition, named astrokit-infer-<run>-NNNNN, the same run id for all
    assert len(named) == result.summary["partitions"] == 8
    assert [k.rsplit("-", 1)[1] for k in named] == [f"{i:05d}" for i in range(8)]
    assert len({k.rsplit("-", 1)[0] for k in named}) == 1


def test_infer_command_reports_a_bad_checkpoint_in_one_line(
    shard_url, tiny_model_url, tmp_path, capsys
):
    import torch

    # a checkpoint whose stored configuration cannot be built (num_heads does not divide
    # embed_dim): the CLI prints one error line naming the file and exits 2, no traceback
    payload = torch.load(tiny_model_url.removeprefix("file://"), weights_only=True)
    payload["config"]["num_heads"] = 5
    bad = tmp_path / "bad-config.pt"
    torch.save(payload, bad)
    rc = cli_main(["infer", shard_url, "--model", str(bad), "--out", str(tmp_path / "o")])
    assert rc == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("astrokit infer:")]
    assert len(lines) == 1 and "Traceback" not in err
    assert "bad-config.pt" in lines[0] and "num_heads" in lines[0]

    # a configuration error raised as ConfigError itself is caught the same way
    from unittest import mock

    from astrokit.models.astromae import ConfigError

    with mock.patch(
        "astrokit.inference.infer", side_effect=ConfigError("unknown model config 'huge'")
    ):
        rc = cli_main(["infer", shard_url, "--model", tiny_model_url, "--no-progress"])
    assert rc == 2
    assert capsys.readouterr().err.strip() == "astrokit infer: error: unknown model config 'huge'"
