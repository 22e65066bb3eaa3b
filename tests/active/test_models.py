"""Model adapters and the spectra CNN: learning, warm start, MC dropout, checkpoints."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from toy_data import CLASSES, small_model, toy_spectra

from astrokit.active.models import ModelError, SklearnClassifier, TorchClassifier, as_model
from astrokit.models.spectra_cnn import SpectraCNN


@pytest.fixture(scope="module")
def toy_data():
    x, names = toy_spectra(700, seed=11)
    y = np.array([CLASSES.index(n) for n in names])
    return x[:500], y[:500], x[500:], y[500:]


@pytest.fixture(scope="module")
def trained(toy_data):
    x, y, _, _ = toy_data
    model = small_model(4, seed=0)
    model.fit(x, y)
    return model


def test_cnn_shapes_and_input_errors():
    net = SpectraCNN(4)
    assert net(torch.zeros(3, 128)).shape == (3, 4)
    assert net(torch.zeros(2, 1, 300)).shape == (2, 4)
    with pytest.raises(ValueError, match="expected input"):
        net(torch.zeros(2, 3, 128))
    with pytest.raises(ValueError, match="kernel_size"):
        SpectraCNN(4, kernel_size=4)


def test_cnn_learns_the_toy_classes(trained, toy_data):
    _, _, xt, yt = toy_data
    accuracy = np.mean(trained.predict_proba(xt).argmax(axis=1) == yt)
    majority = np.mean(yt == np.bincount(yt).argmax())
    assert accuracy > max(0.8, majority + 0.2), accuracy


def test_probabilities_are_distributions(trained, toy_data):
    probs = trained.predict_proba(toy_data[2][:50])
    assert probs.shape == (50, 4)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_mc_dropout_samples_vary_and_predict_proba_does_not(trained, toy_data):
    x = toy_data[2][:40]
    samples = trained.predict_proba_samples(x, 8)
    assert samples.shape == (8, 40, 4)
    assert np.std(samples, axis=0).max() > 1e-3  # dropout is on
    np.testing.assert_array_equal(trained.predict_proba(x), trained.predict_proba(x))
    # dropout is switched off again afterwards
    assert not any(m.training for m in trained.module.modules())


def test_state_round_trip_restores_identical_predictions(trained, toy_data):
    fresh = small_model(4, seed=99)
    fresh.set_state(trained.get_state())
    x = toy_data[2][:30]
    np.testing.assert_allclose(fresh.predict_proba(x), trained.predict_proba(x), rtol=1e-6)
    assert fresh.n_fits == trained.n_fits


def test_warm_start_continues_and_cold_start_resets(toy_data):
    x, y, _, _ = toy_data
    first = small_model(4, seed=1)
    first.fit(x[:60], y[:60])
    reference = first.module.state_dict()

    model = small_model(4, seed=1)
    model.fit(x[:60], y[:60])
    model.fit(x[:60], y[:60])  # warm start: moves on from the first fit's weights
    assert any(not torch.equal(model.module.state_dict()[k], reference[k]) for k in reference)
    model.n_fits = 0  # same seed schedule as the first fit...
    model.fit(x[:60], y[:60], warm_start=False)  # ...from the initial weights: identical
    for key, value in model.module.state_dict().items():
        torch.testing.assert_close(value, reference[key])


def test_warm_fits_shrink_and_perturb_reproducibly(toy_data):
    x, y, _, _ = toy_data
    models = [small_model(4, seed=2) for _ in range(2)]
    plain = small_model(4, seed=2)
    plain.shrink, plain.perturb = 1.0, 0.0
    for model in (*models, plain):
        model.fit(x[:60], y[:60])
        model.fit(x[:80], y[:80])
    # the same seed retrains to the same weights (a resumed loop trains as the first run did)
    for key, value in models[0].module.state_dict().items():
        torch.testing.assert_close(value, models[1].module.state_dict()[key])
    # and shrink-and-perturb changed what a plain warm start gives
    a, b = models[0].module.state_dict(), plain.module.state_dict()
    assert any(not torch.equal(a[k], b[k]) for k in a if a[k].is_floating_point())


def test_training_options_are_checked():
    net = SpectraCNN(4)
    with pytest.raises(ValueError, match="schedule must be 'cosine' or 'constant'"):
        TorchClassifier(net, 4, schedule="step")
    with pytest.raises(ValueError, match="shrink=0"):
        TorchClassifier(net, 4, shrink=0)


def test_pickled_model_drops_training_only_state(trained):
    clone = pickle.loads(pickle.dumps(trained))
    assert clone._initial_state is None and clone.num_threads is None
    x = np.zeros((2, 128), np.float32)
    np.testing.assert_allclose(clone.predict_proba(x), trained.predict_proba(x), rtol=1e-6)


def test_fit_rejects_bad_labels(trained):
    with pytest.raises(ValueError, match=r"labels must be in \[0, 4\)"):
        trained.fit(np.zeros((2, 128)), np.array([0, 7]))


def test_sklearn_adapter_expands_unseen_classes_and_bald_needs_an_ensemble(toy_data):
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    x, y, xt, _ = toy_data
    keep = y != 2  # class 2 never labelled yet
    logistic = as_model(LogisticRegression(max_iter=200), 4)
    assert isinstance(logistic, SklearnClassifier)
    logistic.fit(x[keep], y[keep])
    probs = logistic.predict_proba(xt[:10])
    assert probs.shape == (10, 4) and np.all(probs[:, 2] == 0)
    with pytest.raises(ModelError, match="not an ensemble"):
        logistic.predict_proba_samples(xt[:10], 5)

    forest = as_model(RandomForestClassifier(n_estimators=6, random_state=0), 4)
    forest.fit(x[keep], y[keep])
    samples = forest.predict_proba_samples(xt[:10], 6)
    assert samples.shape == (6, 10, 4)
    restored = SklearnClassifier(RandomForestClassifier(), 4)
    restored.set_state(forest.get_state())
    np.testing.assert_allclose(restored.predict_proba(xt[:5]), forest.predict_proba(xt[:5]))


def test_as_model_accepts_modules_and_rejects_nonsense():
    assert isinstance(as_model(SpectraCNN(3), 3), TorchClassifier)
    with pytest.raises(ModelError, match="cannot use str"):
        as_model("resnet", 4)
    net_without_dropout = TorchClassifier(torch.nn.Sequential(torch.nn.Linear(128, 4)), 4)
    with pytest.raises(ModelError, match="no dropout"):
        net_without_dropout.predict_proba_samples(np.zeros((2, 128), np.float32), 3)


class _MeanClassifier:
    """Only fit and predict_proba: the smallest classifier the loop accepts."""

    def fit(self, x, y):
        self.classes_ = np.unique(y)
        self.prior_ = np.bincount(y)[self.classes_] / len(y)
        return self

    def predict_proba(self, x):
        return np.tile(self.prior_, (len(x), 1))


def test_as_model_duck_types_fit_predict_proba_and_copies(toy_data):
    from sklearn.linear_model import LogisticRegression

    x, y, xt, _ = toy_data
    mine = _MeanClassifier()
    adapter = as_model(mine, 4)
    assert isinstance(adapter, SklearnClassifier) and adapter.estimator is not mine  # deepcopy
    adapter.fit(x[:50], y[:50])
    assert adapter.predict_proba(xt[:3]).shape == (3, 4) and not hasattr(mine, "prior_")
    assert isinstance(as_model(_MeanClassifier, 4).estimator, _MeanClassifier)  # a factory
    # scikit-learn estimators are cloned: same parameters, not fitted
    logistic = LogisticRegression(C=0.5, max_iter=50)
    wrapped = as_model(logistic, 4).estimator
    assert wrapped is not logistic and wrapped.get_params() == logistic.get_params()
    # an adapter is used as is, not wrapped again
    assert as_model(adapter, 4) is adapter
