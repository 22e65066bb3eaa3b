"""Train -> infer on a synthetic catalogue, on a real local Dask cluster, row for row."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from astrokit.survey_catalogue import ERROR_COLUMNS, MAG_COLUMNS, Z_COLUMN

BANDS = ",".join(MAG_COLUMNS)
ERRORS = ",".join(ERROR_COLUMNS)


def test_training_reports_metrics_per_epoch_and_stops_early(trained_model):
    _, result = trained_model
    assert 1 <= result.metrics["best_epoch"] <= result.metrics["epochs_run"] <= 6
    for entry in result.history:
        for key in ("val_nll", "val_sigma_mad", "val_bias", "val_outlier_fraction"):
            assert np.isfinite(entry[key]), key
        assert 0 <= entry["val_coverage_68"] <= 1 and entry["val_crps_mean"] > 0
    val = result.metrics["val"]
    # better than predicting the mean, even after a few epochs of a tiny network
    assert val["sigma_mad"] < 0.7 * result.metrics["baseline_mean"]["sigma_mad"]
    skipped = result.metrics["skipped"]
    assert skipped["bad_magnitude"] > 0 and skipped["bad_error"] > 0
    assert skipped["no_redshift"] > 0
    assert result.metrics["n_train"] + result.metrics["n_val"] + result.metrics["n_skipped"] == 2000


def test_early_stopping_keeps_the_best_epoch(tmp_path, catalogue_url, train_model):
    result = train_model(
        catalogue_url,
        (tmp_path / "m.pt").as_uri(),
        errors=None,  # no errors: the model then uses magnitudes and colours only
        epochs=60,
        patience=2,
        lr=5e-2,  # large steps: validation loss stalls early, so patience triggers
    )
    runs = result.metrics["epochs_run"]
    assert runs < 60
    best = min(result.history, key=lambda e: e["val_nll"])
    assert result.metrics["best_epoch"] == best["epoch"] == runs - 2
    assert result.config["use_errors"] is False


def test_infer_every_row_exactly_once_with_intervals(
    tmp_path, catalogue_url, catalogue_columns, trained_model, cluster_client
):
    from astrokit.catalogue import CatalogueSpec, screen_photometry
    from astrokit.catalogue_inference import infer_catalogue
    from astrokit.models.photometry import (
        load_photometry_checkpoint,
        predict_mixture,
        summarise_mixture,
    )

    model_url, _ = trained_model
    out = (tmp_path / "pred").as_uri()
    result = infer_catalogue(
        catalogue_url,
        model=model_url,  # columns default to those the model was trained on
        out=out,
        client=cluster_client,
        partition_rows=300,  # 400-row groups -> 5 ranges; the last one split over 2 threads
        progress=False,
    )
    s = result.summary
    assert s["complete"], s["problems"]
    assert s["input_kind"] == "catalogue" and s["partitions"] == 6 and s["workers"] == 2
    assert (s["n_rows"], s["n_predictions"], s["missing"], s["duplicates"]) == (2000, 2000, 0, 0)
    cat = result.to_pandas()
    assert sorted(cat["row"]) == list(range(2000))
    assert list(cat.sort_values("row")["id"]) == list(catalogue_columns["id"])

    # bad rows: reported with their reason, no prediction; the same rows the policy names
    spec = CatalogueSpec(MAG_COLUMNS, ERROR_COLUMNS, Z_COLUMN)
    mags = np.stack([catalogue_columns[c] for c in MAG_COLUMNS], axis=1)
    errs = np.stack([catalogue_columns[c] for c in ERROR_COLUMNS], axis=1)
    status, _ = screen_photometry(mags, errs, spec)
    cat = cat.sort_values("row").reset_index(drop=True)
    assert list(cat["status"]) == list(status)
    bad = cat[cat["status"] != "ok"]
    assert len(bad) == s["n_bad"] > 0 and bad["z_pred"].isna().all()
    assert bad["error"].str.len().gt(0).all()
    assert s["bad_by_status"] == bad["status"].value_counts().to_dict()

    # good rows: the interval holds the median, and the values are the model's, exactly
    good = cat[cat["status"] == "ok"]
    assert (good["z_lo"] <= good["z_pred"]).all() and (good["z_pred"] <= good["z_hi"]).all()
    ckpt = load_photometry_checkpoint(model_url)
    ok = status == "ok"
    w, m, sd = predict_mixture(ckpt.model, mags[ok], errs[ok])
    want = summarise_mixture(w, m, sd, catalogue_columns[Z_COLUMN][ok])
    np.testing.assert_allclose(good["z_pred"], want["z_pred"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(good["z_hi"], want["z_hi"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.stack(good["pz_weight"]), w, rtol=1e-5, atol=1e-6)

    # metrics over labelled good rows: the point metrics and the uncertainty ones
    labelled = good[np.isfinite(good["z_true"])]
    metrics = s["metrics"]
    assert metrics["n"] == len(labelled) < len(good)  # rows without z_spec are predicted only
    assert 0.4 < metrics["coverage_68"] < 0.95
    assert sum(metrics["pit"]["counts"]) == len(labelled)
    assert metrics["crps_mean"] == pytest.approx(labelled["crps"].mean(), rel=1e-4)
    on_disk = json.loads((tmp_path / "pred" / "summary.json").read_text())
    assert on_disk["metrics"]["coverage_68"] == metrics["coverage_68"]


def test_resume_recomputes_only_what_is_missing(
    tmp_path, catalogue_url, trained_model, cluster_client
):
    from astrokit.catalogue_inference import infer_catalogue

    model_url, _ = trained_model
    out = tmp_path / "pred"
    kwargs = dict(model=model_url, out=out.as_uri(), client=cluster_client, progress=False)
    first = infer_catalogue(catalogue_url, partition_rows=300, **kwargs)
    assert first.summary["partitions_computed"] == 6
    again = infer_catalogue(catalogue_url, partition_rows=300, **kwargs)
    assert (again.summary["partitions_computed"], again.summary["partitions_resumed"]) == (0, 6)
    (out / "pred-00003.parquet").unlink()
    third = infer_catalogue(catalogue_url, partition_rows=300, **kwargs)
    assert (third.summary["partitions_computed"], third.summary["partitions_resumed"]) == (1, 5)
    assert third.summary["complete"] and third.summary["n_predictions"] == 2000
    pd.testing.assert_frame_equal(first.to_pandas(), third.to_pandas())


def test_csv_and_fits_catalogues_with_other_column_names(
    tmp_path, catalogue_columns, trained_model, cluster_client
):
    from astrokit.catalogue_inference import infer_catalogue
    from astrokit.survey_catalogue import write_catalogue

    model_url, _ = trained_model
    renamed = {
        k.replace("mag_", "").replace("magerr_", "err_"): v for k, v in catalogue_columns.items()
    }
    renamed = {k: v[:500] for k, v in renamed.items() if k not in ("id", "z_spec")}
    for name in ("c.csv", "c.fits"):
        url = write_catalogue((tmp_path / name).as_uri(), renamed)
        result = infer_catalogue(
            url,
            model=model_url,
            out=(tmp_path / f"out-{name}").as_uri(),
            bands="u,g,r,i,z",
            errors="err_u,err_g,err_r,err_i,err_z",
            client=cluster_client,
            partition_rows=200,
            progress=False,
        )
        s = result.summary
        assert s["complete"] and s["n_predictions"] == 500 and s["metrics"] is None
        cat = result.to_pandas()
        assert list(cat["id"]) == [str(i) for i in range(500)]  # no id column: the row number


def test_catalogue_without_redshifts_uses_the_models_columns(
    tmp_path, catalogue_columns, trained_model, cluster_client
):
    from astrokit.catalogue import MissingColumnError
    from astrokit.catalogue_inference import infer_catalogue
    from astrokit.survey_catalogue import write_catalogue

    model_url, _ = trained_model
    cols = {k: v[:300] for k, v in catalogue_columns.items() if k != Z_COLUMN}
    url = write_catalogue((tmp_path / "no-z.parquet").as_uri(), cols)
    result = infer_catalogue(
        url, model=model_url, out=(tmp_path / "o").as_uri(), client=cluster_client, progress=False
    )
    s = result.summary
    assert s["complete"] and s["n_predictions"] == 300 and s["metrics"] is None
    assert s["columns"]["z_column"] is None
    assert result.to_pandas()["z_true"].isna().all()
    with pytest.raises(MissingColumnError, match="'z_spec' \\(redshift\\)"):  # named: required
        infer_catalogue(url, model=model_url, out=(tmp_path / "p").as_uri(), z_column=Z_COLUMN)


def test_missing_column_and_wrong_model_fail_before_any_task(
    tmp_path, catalogue_url, trained_model
):
    from astrokit.catalogue import CatalogueError, MissingColumnError
    from astrokit.catalogue_inference import infer_catalogue
    from astrokit.models.checkpoint import CheckpointFormatError

    model_url, _ = trained_model
    out = tmp_path / "never"
    with pytest.raises(MissingColumnError, match=r"'mag_y'.*the file has: id, ra, dec"):
        infer_catalogue(
            catalogue_url,
            model=model_url,
            out=out.as_uri(),
            bands="mag_u,mag_g,mag_r,mag_i,mag_y",
            errors=ERRORS,
            progress=False,
        )
    with pytest.raises(CatalogueError, match="trained on 5 bands"):
        infer_catalogue(
            catalogue_url, model=model_url, out=out.as_uri(), bands="mag_u,mag_g", progress=False
        )
    assert not list(out.glob("pred-*"))
    not_a_model = tmp_path / "x.pt"
    import torch

    torch.save({"model": "astromae", "config": {}, "state_dict": {}}, not_a_model)
    with pytest.raises(CheckpointFormatError, match="astromae checkpoint, not a photometry"):
        infer_catalogue(catalogue_url, model=str(not_a_model), out=out.as_uri(), progress=False)


def test_cli_train_and_infer(tmp_path, catalogue_url, capsys, cluster_client):
    from astrokit.cli import main

    ckpt = (tmp_path / "cli.pt").as_uri()
    rc = main(
        [
            "train",
            catalogue_url,
            "--out",
            ckpt,
            "--bands",
            BANDS,
            "--errors",
            ERRORS,
            "--z-column",
            Z_COLUMN,
            "--epochs",
            "2",
        ]
    )
    trained = json.loads(capsys.readouterr().out)
    assert rc == 0 and trained["epochs_run"] == 2 and "coverage_68" in trained["val"]
    rc = main(
        [
            "infer",
            catalogue_url,
            "--model",
            ckpt,
            "--out",
            (tmp_path / "cli-out").as_uri(),
            "--scheduler",
            cluster_client.scheduler.address,
            "--no-progress",
        ]
    )
    summary = json.loads(capsys.readouterr().out)
    assert rc == 0 and summary["complete"] and summary["n_predictions"] == 2000
    bands = "mag_u,mag_g,mag_r,mag_i,nope"
    rc = main(["infer", catalogue_url, "--model", ckpt, "--bands", bands, "--errors", ERRORS])
    err = capsys.readouterr().err
    assert rc == 2 and "no column 'nope'" in err and "the file has:" in err
