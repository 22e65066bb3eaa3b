"""The labelling widget, driven through its methods and trait state, with a real loop."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from astrokit_widgets.labeller import LabellingWidget
from toy_data import CLASSES, small_model

from astrokit.active import ActiveLearningLoop, KnownLabelsOracle

BATCH = 6


def human_loop(pool, url, client):
    return ActiveLearningLoop(
        pool,
        url,
        strategy="entropy",
        batch_size=BATCH,
        seed_size=BATCH,
        heldout=100,
        oracle="human",
        model=small_model(len(pool.classes), 0),
        client=client,
    )


def stored(state_dir: Path, iteration: int) -> list[dict]:
    path = state_dir / "labels" / f"it-{iteration:05d}.json"
    return json.loads(path.read_text())["records"] if path.exists() else []


def test_labels_are_stored_at_once_with_skip_and_undo(toy_pool, dask_client, tmp_path):
    loop = human_loop(toy_pool, f"file://{tmp_path}/run", dask_client)
    widget = LabellingWidget(loop)
    assert widget.status == "awaiting_labels" and loop.awaiting_labels
    assert widget.batch_size == BATCH and widget.position == 0
    assert set(widget.class_buttons) == set(CLASSES)
    assert widget.viewer is not None and widget.viewer.spectra  # the spectrum is on screen
    assert str(widget.viewer.spectra[0].meta["id"]) == widget.current_id

    first = widget.current_id
    widget.class_buttons["emission"].click()  # exactly what a person's click does
    assert stored(tmp_path / "run", 0) == [
        {**stored(tmp_path / "run", 0)[0], "id": first, "label": "emission", "by": "human"}
    ]
    assert widget.position == 1 and widget.current_id != first

    second = widget.current_id
    widget.skip()
    assert [r["label"] for r in stored(tmp_path / "run", 0)] == ["emission", None]
    assert int(stored(tmp_path / "run", 0)[1]["index"]) in loop.skipped

    widget.undo()  # the skip is withdrawn and that spectrum comes back
    assert widget.current_id == second and widget.position == 1
    assert [r["id"] for r in stored(tmp_path / "run", 0)] == [first]
    assert not loop.skipped
    widget.undo()
    assert widget.current_id == first and stored(tmp_path / "run", 0) == []
    assert widget.answers == []
    widget.undo()
    assert "nothing to undo" in widget.error


def _shown(button) -> bool:
    return not button.disabled and button.layout.display != "none"


def test_a_finished_batch_waits_for_next_batch_and_stays_undoable(toy_pool, dask_client, tmp_path):
    truth = KnownLabelsOracle(pool=toy_pool)
    loop = human_loop(toy_pool, f"file://{tmp_path}/run", dask_client)
    widget = LabellingWidget(loop)  # default: no automatic retraining
    assert not _shown(widget.next_button)  # nothing to go on to while spectra wait
    seed_batch = [q.id for q in loop.batch]
    for _ in range(BATCH):
        query = loop.pending[0]
        assert query.id == widget.current_id
        widget.class_buttons[truth.label(query)].click()
    # the batch is answered but not trained on: the Next batch button appears
    assert widget.status == "batch_complete" and loop.iteration == 0 and not loop.history
    assert widget.current_index == -1 and widget.position == BATCH
    assert all(b.disabled for b in widget.class_buttons.values()) and widget.skip_button.disabled
    assert _shown(widget.next_button)
    assert "Next batch" in widget._message.value

    # the last answer can still be withdrawn, and given again
    last = seed_batch[-1]
    widget.undo_button.click()
    assert widget.status == "awaiting_labels" and widget.current_id == last
    assert widget.position == BATCH - 1 and not _shown(widget.next_button)
    assert [r["id"] for r in stored(tmp_path / "run", 0)] == seed_batch[:-1]
    widget.skip_button.click()
    assert widget.status == "batch_complete"
    assert stored(tmp_path / "run", 0)[-1]["label"] is None

    widget.next_button.click()  # retrains iteration 0, scores the pool for iteration 1
    assert widget.error == ""
    assert loop.iteration == 1 and len(loop.history) == 1
    assert loop.history[0].n_labelled == BATCH - 1  # the skipped one is not a label
    assert widget.status == "awaiting_labels" and widget.iteration == 1
    assert widget.position == 0 and widget.current_id not in seed_batch
    assert not _shown(widget.next_button)
    assert len(widget.answers) == BATCH
    assert (tmp_path / "run" / "models" / "it-00000.pt").exists()
    widget.undo()  # nothing of the trained batch can be undone any more
    assert "nothing to undo" in widget.error


def test_auto_continue_retrains_on_the_last_answer(toy_pool, dask_client, tmp_path):
    truth = KnownLabelsOracle(pool=toy_pool)
    loop = human_loop(toy_pool, f"file://{tmp_path}/run", dask_client)
    widget = LabellingWidget(loop, auto_continue=True)
    seed_batch = [q.id for q in loop.batch]
    for _ in range(BATCH):
        widget.label(truth.label(loop.pending[0]))
    # the last label trained iteration 0 and scored the pool for iteration 1 at once
    assert loop.iteration == 1 and loop.history[0].n_labelled == BATCH
    assert widget.status == "awaiting_labels" and widget.iteration == 1
    assert widget.position == 0 and widget.current_id not in seed_batch


def test_a_widget_not_started_starts_from_its_next_batch_button(toy_pool, dask_client, tmp_path):
    widget = LabellingWidget(
        human_loop(toy_pool, f"file://{tmp_path}/run", dask_client), start=False
    )
    assert widget.status == "idle" and widget.current_index == -1
    assert _shown(widget.next_button)
    widget.next_button.click()
    assert widget.status == "awaiting_labels" and widget.batch_size == BATCH


def test_a_new_widget_after_a_kernel_restart_carries_on(toy_pool, dask_client, tmp_path):
    url = f"file://{tmp_path}/run"
    widget = LabellingWidget(human_loop(toy_pool, url, dask_client))
    widget.label("absorption")
    widget.label("featureless")
    batch = [q.id for q in widget.loop.batch]
    del widget  # the kernel dies; only the store remains

    loop = ActiveLearningLoop.resume(
        url, oracle="human", model=small_model(4, 0), client=dask_client
    )
    again = LabellingWidget(loop)
    assert [q.id for q in loop.batch] == batch
    assert again.position == 2 and again.current_id == batch[2]
    assert [loop.labels[q.index] for q in loop.batch[:2]] == ["absorption", "featureless"]


def test_bad_use_is_reported_not_lost(toy_pool, dask_client, tmp_path):
    known = ActiveLearningLoop(
        toy_pool, f"file://{tmp_path}/known", heldout=None, model=small_model(4, 0)
    )
    with pytest.raises(ValueError, match="oracle='human'"):
        LabellingWidget(known)
    widget = LabellingWidget(human_loop(toy_pool, f"file://{tmp_path}/run", dask_client))
    with pytest.raises(ValueError, match="not one of the classes"):
        widget.label("quasar")
    with pytest.raises(RuntimeError, match="still need labels"):
        widget.next_batch()
    assert np.all([not b.disabled for b in widget.class_buttons.values()])
