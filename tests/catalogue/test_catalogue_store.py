"""Catalogues through the store on both backends (file:// and the S3 server on loopback)."""

from __future__ import annotations

import numpy as np
import pytest

from astrokit.catalogue import CatalogueSpec, MissingColumnError, plan_catalogue, read_spec_arrays
from astrokit.survey_catalogue import ERROR_COLUMNS, MAG_COLUMNS, Z_COLUMN, write_catalogue

SPEC = CatalogueSpec(MAG_COLUMNS, ERROR_COLUMNS, Z_COLUMN)


@pytest.mark.parametrize("name", ["cat.parquet", "cat.csv", "cat.fits"])
def test_read_and_plan_through_the_store(any_store, catalogue_columns, name):
    cols = {k: v[:500] for k, v in catalogue_columns.items()}
    url = write_catalogue(
        any_store.join(f"users/test/{name}"), cols, store=any_store, row_group_size=100
    )
    plan = plan_catalogue(url, SPEC, partition_rows=200, store=any_store)
    assert sum(p["rows"] for p in plan["partitions"]) == plan["total_rows"] == 500
    part = plan["partitions"][1]
    got = read_spec_arrays(url, SPEC, start=part["start"], stop=part["stop"], store=any_store)
    want = np.stack([cols[c][part["start"] : part["stop"]] for c in MAG_COLUMNS], axis=1)
    np.testing.assert_allclose(got["mags"], want, rtol=1e-6)
    assert list(got["ids"]) == list(cols["id"][part["start"] : part["stop"]])
    with pytest.raises(MissingColumnError, match="'flux_g'"):
        plan_catalogue(url, CatalogueSpec("mag_u,flux_g"), store=any_store)


def test_train_and_infer_on_the_s3_store(any_store, catalogue_columns, cluster_client, train_model):
    from astrokit.catalogue_inference import infer_catalogue

    url = write_catalogue(
        any_store.join("users/test/cat.parquet"),
        {k: v[:1200] for k, v in catalogue_columns.items()},
        store=any_store,
        row_group_size=300,
    )
    model = any_store.join("users/test/model.pt")
    train_model(url, model, epochs=2, batch_size=64, store=any_store)
    result = infer_catalogue(
        url,
        model=model,
        out=any_store.join("users/test/pred"),
        client=cluster_client,  # the store (with its credentials) travels to the workers
        store=any_store,
        partition_rows=300,
        progress=False,
    )
    s = result.summary
    assert s["complete"] and s["n_predictions"] == 1200 and s["missing"] == 0
    assert any_store.exists(result.catalog_url)
