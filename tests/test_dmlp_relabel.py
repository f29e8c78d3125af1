"""DMLP's relabelling rule: the calibrated default never makes labels worse, the paper's argmax stays."""

import json

import numpy as np
import pytest

from noisy_labels.purify import DMLPPurifier, hard_labels
from noisy_labels.purify.outputs import write_outputs
from noisy_labels.purify.pipeline import calibrate_threshold, relabel_by_margin, relabel_margin
from shared_settings import noisy_blobs

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: small ops, one thread

FAST = {"epochs": 30, "batch_size": 500, "exchange_every": 10, "eac_batch_size": 100}


@pytest.fixture(scope="module")
def low_noise():
    """8% noise on overlapping classes: a linear purifier (~80% right) is worse than the given labels."""
    return noisy_blobs(2000, 300, noise=0.08, scale=0.5)


@pytest.fixture(scope="module")
def high_noise():
    """60% noise on classes a linear purifier separates well."""
    return noisy_blobs(2000, 300, noise=0.6, scale=0.6)


def test_calibrated_rule_never_lowers_label_accuracy_where_the_paper_rule_does(low_noise):
    x, noisy, xv, yv, clean = low_noise
    given_acc = (noisy == clean).mean()
    paper = DMLPPurifier(**FAST, relabel="always").fit(x, noisy, xv, yv)
    calibrated = DMLPPurifier(**FAST).fit(x, noisy, xv, yv, true_labels=clean)
    assert (paper.hard_labels == clean).mean() < given_acc - 0.05  # the argmax makes labels worse here
    assert (calibrated.hard_labels == clean).mean() >= given_acc
    changed = calibrated.hard_labels != noisy
    assert 0 < changed.sum() < (paper.hard_labels != noisy).sum()
    # A changed label is the purified argmax, and right more often than the given one it replaced.
    np.testing.assert_array_equal(calibrated.hard_labels[changed], calibrated.soft_labels[changed].argmax(1))
    assert (calibrated.hard_labels == clean)[changed].mean() > (noisy == clean)[changed].mean()
    cal = calibrated.calibration
    assert 0 < cal["threshold"] < np.inf
    assert cal["probes"] == 4 * 22 and cal["wrong_probes"] == 44  # 30% of the 75 clean samples a class
    assert abs(cal["noise_rate"] - (1 - given_acc)) < 0.1
    # The probes stay inside the purifier: outputs and history cover the training samples only.
    assert calibrated.soft_labels.shape == (len(x), 4) and calibrated.hard_labels.shape == (len(x),)
    np.testing.assert_allclose(calibrated.cleanness, calibrated.soft_labels[np.arange(len(x)), noisy])
    argmax_acc = (calibrated.soft_labels.argmax(1) == clean).mean()
    assert calibrated.history[-1]["label_acc"] == pytest.approx(argmax_acc)


def test_calibrated_rule_still_corrects_most_wrong_labels_at_high_noise(high_noise):
    x, noisy, xv, yv, clean = high_noise
    wrong = noisy != clean
    paper = DMLPPurifier(**FAST, relabel="always").fit(x, noisy, xv, yv)
    calibrated = DMLPPurifier(**FAST).fit(x, noisy, xv, yv)
    assert wrong.mean() > 0.55
    assert (calibrated.hard_labels == clean)[wrong].mean() > 0.75
    assert (calibrated.hard_labels == clean).mean() > (paper.hard_labels == clean).mean() - 0.02
    assert calibrated.calibration["threshold"] < 3 and calibrated.calibration["noise_rate"] > 0.45


def test_paper_rule_and_keep_given_are_unchanged(low_noise):
    x, noisy, xv, yv, _ = low_noise
    paper = DMLPPurifier(**FAST, relabel="always").fit(x, noisy, xv, yv)
    np.testing.assert_array_equal(paper.hard_labels, paper.soft_labels.argmax(1))
    assert paper.calibration == {}
    # keep_given > 0 is the constant rule; it replaces the calibrated one (no probes are drawn).
    kept = DMLPPurifier(**FAST, keep_given=0.1).fit(x, noisy, xv, yv)
    np.testing.assert_array_equal(kept.soft_labels, paper.soft_labels)
    np.testing.assert_array_equal(kept.hard_labels, hard_labels(kept.soft_labels, noisy, 0.1))
    # keep_given is the margin rule at tau = -log(keep_given).
    np.testing.assert_array_equal(
        kept.hard_labels, relabel_by_margin(kept.soft_labels, noisy, -np.log(0.1) + 1e-9)
    )


def test_margin_and_relabel_by_margin():
    soft = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.5, 0.5, 0.0]], dtype=np.float32)
    given = np.array([0, 0, 1])
    m = relabel_margin(soft, given)
    np.testing.assert_allclose(m, [0.0, np.log(8.0), 0.0], rtol=1e-6)  # a tie keeps the given label
    assert relabel_by_margin(soft, given, 2.0).tolist() == [0, 2, 1]
    assert relabel_by_margin(soft, given, 2.1).tolist() == [0, 0, 1]
    assert relabel_by_margin(soft, given, np.inf).tolist() == given.tolist()
    assert np.isfinite(relabel_margin(np.array([[1.0, 0.0]], dtype=np.float32), np.array([1]))).all()


def _probe_set(n, fix_wrong, rng, c=3):
    """Probe soft labels: right probes keep their label; wrong ones are fixed with prob. ``fix_wrong``."""
    true = rng.integers(0, c, n)
    wrong = np.arange(n) < n // 2
    given = np.where(wrong, (true + 1) % c, true)
    top = np.where(wrong & (rng.random(n) < fix_wrong), true, given)
    soft = np.full((n, c), 0.01)
    soft[np.arange(n), top] = 0.98
    return soft, given, true


def test_calibration_keeps_every_label_when_the_purifier_cannot_tell():
    rng = np.random.default_rng(0)
    soft, given, true = _probe_set(200, fix_wrong=0.0, rng=rng)  # it never spots a wrong probe
    train_soft = np.full((500, 3), 1 / 3)
    cal = calibrate_threshold(soft, given, true, train_soft, rng.integers(0, 3, 500))
    assert cal["threshold"] == np.inf and cal["expected_gain"] == 0.0
    # Only right probes: no evidence of what a wrong label looks like.
    right = given == true
    cal = calibrate_threshold(soft[right], given[right], true[right], soft[right], given[right])
    assert cal["threshold"] == np.inf


def test_calibration_relabels_when_the_purifier_spots_wrong_labels():
    rng = np.random.default_rng(1)
    soft, given, true = _probe_set(200, fix_wrong=0.9, rng=rng)
    train_true = rng.integers(0, 3, 1000)
    train_given = np.where(np.arange(1000) < 600, (train_true + 1) % 3, train_true)  # 60% wrong
    train_soft = np.full((1000, 3), 0.01)
    train_soft[np.arange(1000), train_true] = 0.98
    cal = calibrate_threshold(soft, given, true, train_soft, train_given)
    assert cal["noise_rate"] == pytest.approx(0.6 / 0.9, abs=0.1)  # moments: 60% flagged, 90% of wrong
    assert cal["threshold"] < np.log(98) and cal["expected_relabelled"] == pytest.approx(0.6)


@pytest.mark.parametrize(
    ("kw", "message"), [({"relabel": "sometimes"}, "relabel"), ({"probe_fraction": 1.0}, "probe_fraction")]
)
def test_bad_relabel_params_are_rejected(low_noise, kw, message):
    x, noisy, xv, yv, _ = low_noise
    with pytest.raises(ValueError, match=message):
        DMLPPurifier(epochs=1, **kw).fit(x, noisy, xv, yv)


def test_too_small_a_clean_set_keeps_the_given_labels(low_noise):
    x, noisy, xv, yv, _ = low_noise
    one_each = np.array([np.flatnonzero(yv == k)[0] for k in range(4)])  # no class can spare a probe
    res = DMLPPurifier(**{**FAST, "epochs": 10}).fit(x, noisy, xv[one_each], yv[one_each])
    np.testing.assert_array_equal(res.hard_labels, noisy)
    assert res.calibration["threshold"] == np.inf


def test_purify_summary_records_the_calibration(low_noise, tmp_path):
    x, noisy, xv, yv, clean = low_noise
    res = DMLPPurifier(**{**FAST, "epochs": 10}).fit(x, noisy, xv, yv)
    summary = write_outputs(tmp_path, res, noisy, params={}, true_labels=clean)
    written = json.loads((tmp_path / "summary.json").read_text())
    assert set(written["calibration"]) >= {"threshold", "noise_rate", "expected_gain", "probes"}
    assert summary["changed"] == int((res.hard_labels != noisy).sum())


@pytest.mark.parametrize("fixture", ["low_noise", "high_noise"])
def test_estimated_error_of_the_purified_labels_matches_their_true_error(fixture, request):
    """The probes, weighted by the training set's share of wrong given labels, estimate its purified-label
    error (what DMLP-X's inner method then assumes); 88 probes here, so within a binomial spread."""
    x, noisy, xv, yv, clean = request.getfixturevalue(fixture)
    given_error = (noisy != clean).mean()
    result = DMLPPurifier(**FAST).fit(x, noisy, xv, yv, noise_rate=given_error)
    true_error = (result.hard_labels != clean).mean()
    assert result.estimated_error is not None and abs(result.estimated_error - true_error) < 0.06
    if fixture == "high_noise":
        assert given_error - result.estimated_error > 0.35
    paper = DMLPPurifier(**FAST, relabel="always").fit(x, noisy, xv, yv)  # the classifier's clean error
    assert paper.estimated_error is not None
    assert abs(paper.estimated_error - (paper.hard_labels != clean).mean()) < 0.04
    assert DMLPPurifier(**FAST, keep_given=0.1).fit(x, noisy, xv, yv).estimated_error is None
