import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from noisy_labels.metrics import (
    best_and_last,
    cleanness_auc,
    label_accuracy,
    noise_rate,
    roc_auc,
    topk_accuracy,
    transition_error,
)


def test_topk_accuracy_by_hand():
    scores = np.array([[0.1, 0.6, 0.3], [0.5, 0.3, 0.2], [0.2, 0.3, 0.5], [0.4, 0.4, 0.2]])
    labels = np.array([2, 1, 2, 1])
    # sample 0: label 2 is second; 1: label 1 second; 2: first; 3: tied first (counts as first).
    assert topk_accuracy(scores, labels) == pytest.approx(0.5)
    assert topk_accuracy(scores, labels, k=(1, 2, 3)) == pytest.approx((0.5, 1.0, 1.0))
    assert topk_accuracy(torch.tensor(scores), torch.tensor(labels), k=2) == pytest.approx(1.0)


def test_topk_rejects_bad_shapes():
    with pytest.raises(ValueError, match="shape mismatch"):
        topk_accuracy(np.zeros((3, 4)), [0, 1])
    with pytest.raises(ValueError, match="exceeds"):
        topk_accuracy(np.zeros((3, 4)), [0, 1, 2], k=5)
    with pytest.raises(ValueError, match="outside"):
        topk_accuracy(np.zeros((2, 4)), [0, 4])


def test_label_accuracy_hard_and_soft():
    clean = np.array([0, 1, 2, 2, 1])
    assert label_accuracy([0, 1, 1, 2, 0], clean) == pytest.approx(0.6)
    soft = np.eye(3)[[0, 1, 1, 2, 0]] * 0.7 + 0.1
    assert label_accuracy(soft, clean) == pytest.approx(0.6)
    assert noise_rate([0, 1, 1, 2, 0], clean) == pytest.approx(0.4)


def test_roc_auc_matches_sklearn_with_ties():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, size=300).astype(float)  # many ties
    target = rng.random(300) < 0.4
    assert roc_auc(scores, target) == pytest.approx(roc_auc_score(target, scores), abs=1e-12)


def test_roc_auc_by_hand():
    # positives 0.9, 0.4; negatives 0.5, 0.1 -> pairs won: (0.9>0.5, 0.9>0.1, 0.4<0.5, 0.4>0.1) = 3/4
    assert roc_auc([0.9, 0.5, 0.4, 0.1], [True, False, True, False]) == pytest.approx(0.75)
    assert np.isnan(roc_auc([0.1, 0.2], [True, True]))


def test_cleanness_auc_perfect_and_inverted():
    clean = np.array([0, 1, 2, 0, 1, 2])
    noisy = np.array([0, 1, 0, 0, 2, 2])  # samples 2 and 4 are mislabelled
    good = np.array([0.9, 0.8, 0.1, 0.7, 0.2, 0.95])
    assert cleanness_auc(good, noisy, clean) == pytest.approx(1.0)
    assert cleanness_auc(-good, noisy, clean) == pytest.approx(0.0)


def test_transition_error_norms():
    true = np.array([[0.8, 0.2], [0.0, 1.0]])
    est = np.array([[0.7, 0.3], [0.1, 0.9]])
    assert transition_error(est, true) == pytest.approx(0.4 / 2.0)
    assert transition_error(est, true, norm="l1") == pytest.approx(0.1)
    assert transition_error(est, true, norm="frobenius") == pytest.approx(0.2)
    with pytest.raises(ValueError, match="square"):
        transition_error(np.zeros((2, 3)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="norm"):
        transition_error(est, true, norm="max")


def test_best_and_last():
    assert best_and_last([0.2, 0.9, 0.5]) == (0.9, 0.5)
    with pytest.raises(ValueError):
        best_and_last([])
