"""Pool scoring in a reduced precision: each worker's parity guard, recorded per iteration."""

from __future__ import annotations

import json

import pytest
from toy_data import CLASSES

from astrokit.active import ActiveLearningLoop
from astrokit.active.models import default_model


@pytest.mark.parametrize(("tolerance", "chosen"), [(1.0, "bf16"), (0.0, "fp32")])
def test_scoring_precision_is_guarded_and_recorded(
    toy_pool, dask_client, tmp_path, tolerance, chosen
):
    model = default_model(
        len(CLASSES), seed=0, epochs=6, min_steps=40, num_threads=1,
        precision="bf16", parity_tolerance=tolerance,
    )  # fmt: skip
    loop = ActiveLearningLoop(
        toy_pool,
        f"file://{tmp_path}/run",
        strategy="bald",
        batch_size=25,
        seed_size=40,
        heldout=150,
        oracle="known",
        model=model,
        client=dask_client,
    )
    history = loop.run(2)
    assert history[0].score_precision is None  # the seed iteration scores nothing
    p = history[1].score_precision
    assert (p["requested"], p["chosen"]) == ("bf16", chosen)
    assert p["tasks_by_precision"] == {chosen: 4}  # one task per shard
    # one guard per worker that scored, on (up to) 128 unexcluded rows of its first shard
    assert 1 <= p["parity"]["workers"] <= 2 and 0 < p["parity"]["n"] <= 128 * 2
    assert p["parity"]["max_abs_diff"] > 0
    assert p["fallback"] is (chosen == "fp32") and p["parity"]["passed"] is (chosen == "bf16")
    if chosen == "fp32":
        assert p["reasons"][0].startswith("parity guard: bf16 max |dp|")
    # the learning curve on the store keeps it
    state = json.loads((tmp_path / "run" / "loop.json").read_text())
    assert state["history"][1]["score_precision"]["chosen"] == chosen
