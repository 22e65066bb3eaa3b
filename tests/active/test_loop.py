"""The loop end to end on a real local Dask cluster: scoring, checkpoints, resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from toy_data import CLASSES, small_model

from astrokit.active import (
    ActiveLearningLoop,
    CallableOracle,
    KnownLabelsOracle,
    LoopConfigError,
    OracleError,
)
from astrokit.active.scoring import TASK_PREFIX

BATCH = 25


def make_loop(pool, url, client, *, strategy="entropy", oracle="known", seed=0, **kw):
    return ActiveLearningLoop(
        pool,
        url,
        strategy=strategy,
        batch_size=BATCH,
        seed_size=40,
        heldout=150,
        oracle=oracle,
        model=small_model(len(pool.classes), seed),
        seed=seed,
        client=client,
        **kw,
    )


def labels_on_disk(state_dir: Path) -> list[dict]:
    records = []
    for path in sorted((state_dir / "labels").glob("it-*.json")):
        records += json.loads(path.read_text())["records"]
    return records


class Interrupt(RuntimeError):
    """What the flaky oracle raises (a kernel dying mid-batch)."""


def test_loop_runs_scores_on_the_cluster_and_checkpoints(toy_pool, dask_client, tmp_path):
    from distributed import get_task_stream

    loop = make_loop(toy_pool, f"file://{tmp_path}/run", dask_client, strategy="bald")
    with get_task_stream(dask_client) as stream:
        history = loop.run(3)
    keys = [str(task["key"]) for task in stream.data]
    assert [r.iteration for r in history] == [0, 1, 2]
    assert [r.n_labelled for r in history] == [40, 65, 90]
    assert [r.strategy for r in history] == ["seed", "bald", "bald"]
    assert all(0.0 <= r.accuracy <= 1.0 and 0.0 <= r.f1_macro <= 1.0 for r in history)
    assert all(sum(r.batch_classes.values()) == r.n_queried for r in history)
    assert history[1].score_seconds > 0 and history[0].score_seconds == 0
    # queried spectra are never held-out ones and never asked twice
    assert len(loop.labels) == 90
    assert not set(loop.labels) & set(loop._heldout_indices.tolist())
    # the store holds everything needed to resume
    state = json.loads((tmp_path / "run" / "loop.json").read_text())
    assert state["iteration"] == 3 and state["phase"] == "query"
    assert len(state["history"]) == 3
    assert sorted(p.name for p in (tmp_path / "run" / "models").iterdir()) == [
        "it-00000.pt",
        "it-00001.pt",
        "it-00002.pt",
    ]
    on_disk = labels_on_disk(tmp_path / "run")
    assert len(on_disk) == 90 and {r["label"] for r in on_disk} <= set(CLASSES)
    assert {int(r["index"]): r["label"] for r in on_disk} == loop.labels
    # one named scoring task per shard and iteration (none for the random seed iteration)
    scoring = sorted(k.rsplit("-", 1)[0] for k in keys if k.startswith(TASK_PREFIX))
    assert scoring == [f"{TASK_PREFIX}-it{i:02d}-{s:05d}" for i in (1, 2) for s in range(4)]
    # both workers took part
    assert len({task["worker"] for task in stream.data}) == 2


def test_uncertainty_sampling_queries_the_uncertain_spectra(toy_pool, dask_client, tmp_path):
    loop = make_loop(
        toy_pool, f"file://{tmp_path}/run", dask_client, strategy="entropy", selection="top"
    )
    loop.run(1)
    # after the seed iteration, score everything here to know the right answer
    from astrokit.active.strategies import entropy

    candidates = np.setdiff1d(np.arange(toy_pool.total_rows), loop._excluded())
    flux = toy_pool.get_rows(candidates, keys=("flux",))["flux"]
    expected = candidates[np.lexsort((candidates, -entropy(loop.model.predict_proba(flux))))]
    result = loop.step()
    assert result.status == "trained"
    queried = sorted(int(r["index"]) for r in loop.checkpoint.load_labels(1))
    assert queried == sorted(expected[:BATCH].tolist())


def test_power_acquisition_on_the_cluster_is_the_single_process_draw(
    toy_pool, dask_client, tmp_path
):
    """The per-shard draws merged on the client give the batch one process would draw."""
    from astrokit.active.strategies import entropy, power_keys

    seed = 3
    loop = make_loop(toy_pool, f"file://{tmp_path}/run", dask_client, seed=seed, beta=2.0)
    assert (loop.selection, loop.beta) == ("power", 2.0)
    loop.run(1)
    excluded = loop._excluded()
    probs = loop.model.predict_proba(
        toy_pool.get_rows(np.arange(toy_pool.total_rows), keys=("flux",))["flux"]
    )
    scores = entropy(probs)
    keys = np.concatenate(
        [
            # the documented seeding: (loop seed, iteration, shard), one draw per shard row
            np.random.default_rng([seed, 1, i]).gumbel(size=shard.rows)
            for i, shard in enumerate(toy_pool.shards)
        ]
    )
    keys = power_keys(scores, 2.0, keys)
    keys[excluded] = -np.inf
    expected = np.lexsort((np.arange(keys.size), -keys))[:BATCH]
    top = np.lexsort((np.arange(scores.size), -np.where(keys > -np.inf, scores, -np.inf)))
    loop.step()
    queried = sorted(int(r["index"]) for r in loop.checkpoint.load_labels(1))
    assert queried == sorted(expected.tolist())
    # a draw, not the top scores: it reaches below the top-k (but never into the excluded)
    assert set(queried) != set(top[:BATCH].tolist())
    assert not set(queried) & set(excluded.tolist())


def test_a_loop_keeps_its_selection_rule(toy_pool, dask_client, tmp_path):
    url = f"file://{tmp_path}/run"
    make_loop(toy_pool, url, dask_client, selection="top")
    with pytest.raises(LoopConfigError, match="selection: stored 'top', given 'power'"):
        make_loop(toy_pool, url, dask_client)
    assert (
        ActiveLearningLoop.resume(url, model=small_model(4, 0), client=dask_client).selection
        == "top"
    )
    with pytest.raises(LoopConfigError, match="selection must be one of power, top"):
        make_loop(toy_pool, f"file://{tmp_path}/other", dask_client, selection="best")
    with pytest.raises(LoopConfigError, match=r"beta .* must be a positive number, got 0\.0"):
        make_loop(toy_pool, f"file://{tmp_path}/other", dask_client, beta=0)


def test_resume_after_an_oracle_dies_mid_batch_loses_nothing(toy_pool, dask_client, tmp_path):
    url = f"file://{tmp_path}/run"
    known = KnownLabelsOracle(pool=toy_pool)
    answered = []

    def flaky(query):
        if query.iteration == 1 and len(answered) == 7:
            raise Interrupt("kernel died")
        answered.append(query.id)
        return known.label(query)

    loop = make_loop(toy_pool, url, dask_client, oracle=CallableOracle(flaky))
    loop.run(1)
    answered.clear()
    with pytest.raises(Interrupt):
        loop.run(3)
    # seven labels of iteration 1 are on the store although the iteration never finished
    assert len(loop.checkpoint.load_labels(1)) == 7
    batch_ids = [q.id for q in loop.batch]
    del loop

    resumed = ActiveLearningLoop.resume(
        url, oracle="known", model=small_model(4, 0), client=dask_client
    )
    assert resumed.iteration == 1 and resumed.phase == "label"
    assert [q.id for q in resumed.batch] == batch_ids  # the same batch, not a new query
    assert [q.id for q in resumed.pending] == batch_ids[7:]
    assert len(resumed.labels) == 40 + 7
    history = resumed.run(3)
    assert [r.n_labelled for r in history] == [40, 65, 90]
    first_seven = answered[:7]
    on_disk = labels_on_disk(tmp_path / "run")
    assert [r["id"] for r in on_disk if r["iteration"] == 1][:7] == first_seven

    # and the resumed run made exactly the choices an uninterrupted one makes
    straight = make_loop(toy_pool, f"file://{tmp_path}/straight", dask_client)
    straight.run(3)
    assert straight.labels == resumed.labels
    assert [r.accuracy for r in straight.history] == pytest.approx(
        [r.accuracy for r in history], abs=1e-9
    )


def test_resume_after_a_crash_during_training_retrains(toy_pool, dask_client, tmp_path):
    url = f"file://{tmp_path}/run"
    loop = make_loop(toy_pool, url, dask_client, strategy="random")
    loop.run(1)

    def boom(*args, **kwargs):
        raise Interrupt("out of memory while training")

    loop.model.fit = boom
    with pytest.raises(Interrupt):
        loop.step()
    labelled = dict(loop.labels)
    resumed = make_loop(toy_pool, url, dask_client, strategy="random")
    assert resumed.phase == "train" and resumed.labels == labelled
    record = resumed.step().record
    assert record.iteration == 1 and record.n_labelled == 65


def test_a_different_loop_on_the_same_state_url_is_refused(toy_pool, dask_client, tmp_path):
    url = f"file://{tmp_path}/run"
    make_loop(toy_pool, url, dask_client)
    with pytest.raises(LoopConfigError, match="strategy: stored 'entropy', given 'margin'"):
        make_loop(toy_pool, url, dask_client, strategy="margin")


def test_oracle_answers_are_validated(toy_pool, dask_client, tmp_path):
    loop = make_loop(toy_pool, f"file://{tmp_path}/run", dask_client, oracle=lambda q: "quasar")
    with pytest.raises(OracleError, match=r"'quasar'.*not one of"):
        loop.step()
    assert loop.checkpoint.load_labels(0) == []


def test_skips_are_recorded_and_never_asked_again(toy_pool, dask_client, tmp_path):
    known = KnownLabelsOracle(pool=toy_pool)
    loop = make_loop(
        toy_pool,
        f"file://{tmp_path}/run",
        dask_client,
        strategy="margin",
        oracle=lambda q: None if q.index % 3 == 0 else known.label(q),
    )
    history = loop.run(3)
    skipped = {int(r["index"]) for r in labels_on_disk(tmp_path / "run") if r["label"] is None}
    assert skipped == loop.skipped and skipped
    assert sum(r.n_skipped for r in history) == len(skipped)
    assert not skipped & set(loop.labels)
    assert history[-1].n_labelled == 90 - len(skipped)


def test_an_exhausted_pool_stops_the_loop(tmp_path, dask_client):
    from toy_data import write_toy_pool

    pool = write_toy_pool(f"file://{tmp_path}/pool", 60, per_shard=30)
    loop = ActiveLearningLoop(
        pool,
        f"file://{tmp_path}/run",
        batch_size=25,
        heldout=10,
        model=small_model(4, 0),
        client=dask_client,
    )
    history = loop.run(10)
    assert [r.n_labelled for r in history] == [25, 50]
    assert loop.step().status == "exhausted"


def test_heldout_needs_labels(tmp_path, dask_client, toy_pool):
    from astrokit.active.pool import build_pool

    unlabelled = build_pool(
        f"file://{tmp_path}/pool",
        [{"flux": np.zeros((5, 128), np.float32), "ids": np.array(list("abcde"))}],
        classes=["a", "b"],
        grid=toy_pool.grid,
    )
    with pytest.raises(LoopConfigError, match="has no labels"):
        ActiveLearningLoop(unlabelled, f"file://{tmp_path}/run", heldout=2, oracle="human")


def test_a_scikit_learn_model_and_a_separate_heldout_pool(toy_pool, dask_client, tmp_path):
    from sklearn.ensemble import RandomForestClassifier
    from toy_data import write_toy_pool

    heldout = write_toy_pool(f"file://{tmp_path}/heldout", 90, seed=7, per_shard=45)
    loop = ActiveLearningLoop(
        toy_pool,
        f"file://{tmp_path}/run",
        strategy="bald",  # a forest's trees are the samples
        batch_size=BATCH,
        seed_size=40,
        heldout=heldout.url,
        model=RandomForestClassifier(n_estimators=12, random_state=0),
        client=dask_client,
    )
    history = loop.run(3)
    assert [r.n_labelled for r in history] == [40, 65, 90]
    assert 0.0 <= history[-1].accuracy <= 1.0
    state = json.loads((tmp_path / "run" / "loop.json").read_text())
    assert state["config"]["heldout"]["url"] == heldout.url
    assert loop.evaluate()["accuracy"] == pytest.approx(history[-1].accuracy)


def _mlp(n_pixels: int, n_classes: int, seed: int):
    import torch

    # a generic module: no embed/head split, so MC dropout runs full stochastic passes
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(n_pixels, 32),
        torch.nn.ReLU(),
        torch.nn.Dropout(0.3),
        torch.nn.Linear(32, n_classes),
    )


@pytest.mark.parametrize("strategy", ["entropy", "bald"])
def test_a_plain_torch_module_runs_in_the_loop(toy_pool, dask_client, tmp_path, strategy):
    from astrokit.active.models import TorchClassifier

    n_classes = len(toy_pool.classes)
    loop = ActiveLearningLoop(
        toy_pool,
        f"file://{tmp_path}/run",
        strategy=strategy,
        batch_size=BATCH,
        seed_size=40,
        heldout=150,
        model=_mlp(toy_pool.grid.n, n_classes, 0),
        client=dask_client,
    )
    assert isinstance(loop.model, TorchClassifier)
    loop.model.num_threads = 1  # tiny net: a second thread only waits on the shared machine
    history = loop.run(2)
    assert [r.n_labelled for r in history] == [40, 65]
    assert [r.strategy for r in history] == ["seed", strategy]
    assert all(0.0 <= r.accuracy <= 1.0 for r in history)
    assert history[1].score_seconds > 0
    assert len(loop.checkpoint.load_labels(1)) == BATCH
    # the stored weights restore into a fresh module of the same shape
    resumed = ActiveLearningLoop.resume(
        f"file://{tmp_path}/run", model=_mlp(toy_pool.grid.n, n_classes, 5), client=dask_client
    )
    x = toy_pool.get_rows(np.arange(10), keys=("flux",))["flux"]
    np.testing.assert_allclose(
        resumed.model.predict_proba(x), loop.model.predict_proba(x), rtol=1e-5
    )


class TinyCentroidClassifier:
    """A hand-written classifier with only fit and predict_proba (no get_params, no sklearn)."""

    def __init__(self, temperature: float = 1.0) -> None:
        self.temperature = temperature

    def fit(self, x, y):
        self.classes_ = np.unique(y)
        self.centroids_ = np.stack([x[y == c].mean(axis=0) for c in self.classes_])
        return self

    def predict_proba(self, x):
        d = ((x[:, None, :] - self.centroids_[None]) ** 2).sum(axis=2)
        logits = -(d - d.min(axis=1, keepdims=True)) / self.temperature
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)


def test_a_hand_written_fit_predict_proba_classifier(toy_pool, dask_client, tmp_path):
    from astrokit.active.models import SklearnClassifier

    template = TinyCentroidClassifier()
    loop = ActiveLearningLoop(
        toy_pool,
        f"file://{tmp_path}/run",
        strategy="margin",
        batch_size=BATCH,
        seed_size=40,
        heldout=150,
        model=template,
        client=dask_client,
    )
    assert isinstance(loop.model, SklearnClassifier)
    history = loop.run(2)
    assert [r.n_labelled for r in history] == [40, 65]
    assert 0.0 <= history[-1].accuracy <= 1.0
    assert history[1].score_seconds > 0  # its predict_proba scored the pool on the workers
    assert loop.evaluate()["accuracy"] == pytest.approx(history[-1].accuracy)
    # the loop trains its own copy: the object passed in is never fitted
    assert not hasattr(template, "centroids_")
