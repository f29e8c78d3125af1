"""NoisyLabelClassifier: scikit-learn's estimator checks, its tool chain, every feature method, errors."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from noisy_labels.methods import get_method_class
from noisy_labels.sklearn import AUTO_METHOD, NoisyLabelClassifier, feature_methods

# Few epochs and a larger step keep every estimator check well under a second; the checks' data sets are
# a few hundred points at most.
FAST = {"epochs": 15, "batch_size": 32, "lr": 0.05, "random_state": 0}


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: small ops, one thread


# ------------------------------------------------------------------------------- scikit-learn checks
# All ~55 checks that apply to a classifier run; none is skipped (check_array_api_input skips itself
# unless SCIPY_ARRAY_API is set, as for every estimator without array-API support).
@parametrize_with_checks([NoisyLabelClassifier(**FAST)])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


# ------------------------------------------------------------------------------------ a noisy problem
@pytest.fixture(scope="module")
def digits():
    """Digits with 30% of the training labels replaced by another class, and a class-balanced clean set."""
    x, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(y))
    test, clean, train = order[:300], order[300:400], order[400:]
    noisy = y[train].copy()
    flip = rng.random(len(train)) < 0.3
    noisy[flip] = (noisy[flip] + rng.integers(1, 10, flip.sum())) % 10
    return {
        "x": x[train],
        "y": noisy,
        "true": y[train],
        "x_clean": x[clean],
        "y_clean": y[clean],
        "x_test": x[test],
        "y_test": y[test],
    }


@pytest.fixture(scope="module")
def fitted(digits):
    return NoisyLabelClassifier(epochs=20, random_state=0).fit(digits["x"], digits["y"])


def test_ranks_flipped_labels_first_and_beats_the_given_labels(fitted, digits):
    wrong = digits["y"] != digits["true"]
    assert fitted.method_ == AUTO_METHOD
    assert roc_auc_score(wrong, -fitted.cleanness_) > 0.97
    k = int(wrong.sum())
    assert wrong[np.argsort(fitted.cleanness_)[:k]].mean() > 0.9
    assert wrong[fitted.label_issues_].mean() > 0.7  # precision of the flagged set
    assert wrong[fitted.label_issues_].sum() / k > 0.9  # recall
    assert (fitted.purified_labels_ == digits["true"]).mean() > 0.85 > (digits["y"] == digits["true"]).mean()
    assert fitted.score(digits["x_test"], digits["y_test"]) > 0.85


def test_fitted_attributes(fitted, digits):
    n = len(digits["y"])
    assert fitted.cleanness_.shape == (n,) and fitted.purified_labels_.shape == (n,)
    issues = fitted.label_issues_
    assert issues.dtype == np.int64 and len(np.unique(issues)) == len(issues)
    np.testing.assert_array_equal(fitted.purified_labels_[issues] != digits["y"][issues], True)
    assert np.all(np.diff(fitted.cleanness_[issues]) >= 0)  # most suspicious first
    flagged = np.zeros(n, bool)
    flagged[issues] = True
    np.testing.assert_array_equal(flagged, fitted.purified_labels_ != digits["y"])
    proba = fitted.predict_proba(digits["x_test"])
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(fitted.classes_[proba.argmax(1)], fitted.predict(digits["x_test"]))


def test_string_labels_map_through_classes(digits):
    names = np.array([f"digit-{c}" for c in range(10)])
    clf = NoisyLabelClassifier(epochs=5, random_state=0).fit(digits["x"], names[digits["y"]])
    assert clf.classes_.tolist() == sorted(names.tolist())
    assert set(clf.predict(digits["x_test"])) <= set(names)
    assert set(clf.purified_labels_) <= set(names)


def test_repeatable_and_leaves_global_random_state_alone(digits):
    torch.manual_seed(123)
    np.random.seed(123)
    expected_torch, expected_np = torch.rand(1), np.random.rand()
    torch.manual_seed(123)
    np.random.seed(123)
    a = NoisyLabelClassifier(epochs=3, random_state=7).fit(digits["x"], digits["y"])
    assert torch.rand(1) == expected_torch and np.random.rand() == expected_np
    b = NoisyLabelClassifier(epochs=3, random_state=7).fit(digits["x"], digits["y"])
    np.testing.assert_array_equal(a.cleanness_, b.cleanness_)
    np.testing.assert_array_equal(a.predict_proba(digits["x_test"]), b.predict_proba(digits["x_test"]))


def test_clone_pickle_pipeline_cross_val_score(fitted, digits):
    copy = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(
        copy.predict_proba(digits["x_test"]), fitted.predict_proba(digits["x_test"])
    )
    np.testing.assert_array_equal(copy.label_issues_, fitted.label_issues_)
    assert copy.network_.ctx is None  # no training data inside the pickle
    fresh = clone(fitted)
    assert fresh.get_params() == fitted.get_params() and not hasattr(fresh, "classes_")
    pipe = make_pipeline(StandardScaler(), NoisyLabelClassifier(epochs=5, random_state=0))
    scores = cross_val_score(pipe, digits["x"], digits["y"], cv=3)
    # accuracy against the held-out noisy labels: chance is 0.1, and 30% wrong labels cap it near 0.7
    assert scores.shape == (3,) and np.all(scores > 0.4)


def test_clean_set_with_a_meta_method_and_with_auto(digits):
    args = (digits["x"], digits["y"], digits["x_clean"], digits["y_clean"])
    dmlp = NoisyLabelClassifier("dmlp", epochs=5, random_state=0, method_params={"epochs": 20}).fit(*args)
    wrong = digits["y"] != digits["true"]
    assert dmlp.method_ == "dmlp" and dmlp.cleanness_.shape == (len(wrong),)
    assert roc_auc_score(wrong, -dmlp.cleanness_) > 0.9
    auto = NoisyLabelClassifier(epochs=5, random_state=0).fit(*args)  # elr, trained on both sets
    assert auto.method_ == AUTO_METHOD and auto.cleanness_.shape == (len(wrong),)


# -------------------------------------------------------------------------------- every feature method
@pytest.mark.parametrize("name", feature_methods())
def test_every_feature_method_fits_predicts_and_pickles(name):
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(3, 8)) * 3
    y = np.arange(240) % 3
    x = (centres[y] + rng.normal(size=(240, 8))).astype(np.float32)
    noisy = np.where(rng.random(240) < 0.2, (y + 1) % 3, y)
    clean = {}
    if get_method_class(name).requires_meta:
        yc = np.arange(30) % 3
        clean = {"X_clean": centres[yc] + rng.normal(size=(30, 8)), "y_clean": yc}
    clf = NoisyLabelClassifier(name, epochs=2, batch_size=32, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. a method's warm-up longer than 2 epochs
        clf.fit(x, noisy, **clean)
    proba = clf.predict_proba(x[:10])
    assert proba.shape == (10, 3) and np.allclose(proba.sum(1), 1.0, atol=1e-5)
    assert clf.cleanness_.shape == (240,) and np.isfinite(clf.cleanness_).all()
    assert set(clf.label_issues_.tolist()) <= set(range(240))
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_allclose(again.predict_proba(x[:10]), proba)


# --------------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        (lambda d: {**d, "X": d["X"][:-1]}, ValueError, "same number of rows"),
        (lambda d: {**d, "X": d["X"][:, 0]}, ValueError, "Reshape your data"),
        (
            lambda d: {**d, "X": np.where(np.arange(d["X"].size).reshape(d["X"].shape) == 7, np.nan, d["X"])},
            ValueError,
            "NaN",
        ),
        (lambda d: {**d, "y_clean": np.full(len(d["y_clean"]), 99)}, ValueError, "never occur in y"),
        (lambda d: {**d, "y_clean": None}, ValueError, "both X_clean and y_clean"),
        (lambda d: {**d, "X_clean": d["X_clean"][:, :3]}, ValueError, "same columns"),
        (lambda d: {**d, "y": np.zeros(len(d["y"]))}, ValueError, "one class"),
        (lambda d: {**d, "y": np.linspace(0, 1, len(d["y"]))}, ValueError, "Unknown label type"),
    ],
)
def test_clear_errors(digits, change, error, match):
    d = {
        "X": digits["x"][:100],
        "y": digits["y"][:100],
        "X_clean": digits["x_clean"],
        "y_clean": digits["y_clean"],
    }
    with pytest.raises(error, match=match):
        NoisyLabelClassifier(epochs=1).fit(**change(d))


def test_method_errors(digits):
    x, y = digits["x"][:100], digits["y"][:100]
    with pytest.raises(ValueError, match="needs a trusted clean set"):
        NoisyLabelClassifier("dmlp").fit(x, y)
    with pytest.raises(ValueError, match="unknown method 'nope'"):
        NoisyLabelClassifier("nope").fit(x, y)
    with pytest.raises(ValueError, match="unknown config key"):
        NoisyLabelClassifier("elr", method_params={"betta": 0.5}).fit(x, y)
    clf = NoisyLabelClassifier(epochs=1).fit(x, y)
    with pytest.raises(ValueError, match="expecting 64 features"):
        clf.predict(x[:, :10])


def test_methods_take_the_estimators_noise_rate_as_known(digits):
    from noisy_labels.methods.dividemix import default_lambda_u

    x, noisy = digits["x"], digits["y"]
    for rate in (None, 0.35):
        coteaching = NoisyLabelClassifier(method="coteaching", noise_rate=rate, epochs=1, random_state=0)
        assert coteaching.fit(x, noisy).network_.forget_rate == (0.2 if rate is None else rate)
    dividemix = NoisyLabelClassifier(method="dividemix", noise_rate=0.35, epochs=1, random_state=0)
    assert dividemix.fit(x, noisy).network_.lambda_u == default_lambda_u(10, "symmetric", 0.35)
