"""Evaluation metrics for learning with noisy labels (numpy in, numpy out).

Everything takes numpy arrays or torch tensors (converted on entry) and returns Python floats, so the
engine, the reports and users' own pipelines all compute the same numbers; :func:`rank_issues` is the
library's one ranking of suspected label issues (an index array).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from ._validation import check_labels, check_same_length


def _to_numpy(a) -> np.ndarray:
    if hasattr(a, "detach"):  # torch tensor, without importing torch here
        a = a.detach().float().cpu().numpy() if a.is_floating_point() else a.detach().cpu().numpy()
    return np.asarray(a)


def topk_accuracy(scores, labels, k: int | Sequence[int] = 1) -> float | tuple[float, ...]:
    """Fraction of samples whose label is among the ``k`` highest scores.

    Parameters
    ----------
    scores : array of shape (N, C)
        Logits or probabilities.
    labels : array of shape (N,)
    k : int or sequence of int
        One ``k`` returns a float, several return a tuple in the same order.

    Examples
    --------
    >>> topk_accuracy([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2]], [2, 0], k=(1, 2))
    (0.5, 1.0)
    """
    scores = _to_numpy(scores)
    if scores.ndim != 2:
        raise ValueError(f"scores must have shape (N, C), got {scores.shape}.")
    labels = check_labels(_to_numpy(labels), scores.shape[1])
    check_same_length(scores=scores, labels=labels)
    ks = (k,) if isinstance(k, int) else tuple(k)
    if max(ks) > scores.shape[1]:
        raise ValueError(f"k={max(ks)} exceeds the number of classes {scores.shape[1]}.")
    # Rank of the true class = number of classes scoring strictly higher (ties count in the sample's favour).
    true_score = scores[np.arange(len(labels)), labels]
    rank = (scores > true_score[:, None]).sum(axis=1)
    result = tuple(float((rank < kk).mean()) for kk in ks)
    return result[0] if isinstance(k, int) else result


def label_accuracy(corrected, clean_labels) -> float:
    """Accuracy of corrected (purified) labels against the clean ones.

    ``corrected`` is hard labels ``(N,)`` or soft labels ``(N, C)`` (scored by their argmax).
    """
    corrected = _to_numpy(corrected)
    clean = check_labels(_to_numpy(clean_labels), name="clean_labels")
    if corrected.ndim == 2:
        corrected = corrected.argmax(axis=1)
    corrected = check_labels(corrected, name="corrected labels")
    check_same_length(corrected=corrected, clean_labels=clean)
    return float((corrected == clean).mean())


def noise_rate(noisy_labels, clean_labels) -> float:
    """Fraction of labels that differ from the clean ones."""
    return 1.0 - label_accuracy(noisy_labels, clean_labels)


def roc_auc(scores, positives) -> float:
    """Area under the ROC curve of ``scores`` for a boolean target (Mann-Whitney U, ties counted half)."""
    scores = np.asarray(_to_numpy(scores), dtype=np.float64)
    positives = np.asarray(_to_numpy(positives), dtype=bool)
    check_same_length(scores=scores, positives=positives)
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores contain NaN or inf.")
    n_pos = int(positives.sum())
    n_neg = len(positives) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")  # undefined with a single class, e.g. a noise-free set
    ranks = _average_ranks(scores)
    u = ranks[positives].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks with tied values sharing their average rank."""
    order = np.argsort(values, kind="mergesort")
    sorted_vals = values[order]
    # Boundaries of runs of equal values.
    starts = np.flatnonzero(np.r_[True, sorted_vals[1:] != sorted_vals[:-1]])
    ends = np.r_[starts[1:], len(values)]
    avg = (starts + ends + 1) / 2.0  # mean of ranks starts+1 .. ends
    ranks = np.empty(len(values))
    ranks[order] = np.repeat(avg, ends - starts)
    return ranks


def cleanness_auc(cleanness, noisy_labels, clean_labels) -> float:
    """ROC-AUC of per-sample cleanness scores for telling clean samples from mislabelled ones.

    A sample is *clean* when its given (noisy) label equals its true label; a higher cleanness score
    should mean "more likely clean". 1.0 is a perfect ranking, 0.5 chance. NaN when no label is noisy.
    """
    noisy = check_labels(_to_numpy(noisy_labels), name="noisy_labels")
    clean = check_labels(_to_numpy(clean_labels), name="clean_labels")
    check_same_length(cleanness=_to_numpy(cleanness), noisy_labels=noisy, clean_labels=clean)
    return roc_auc(cleanness, noisy == clean)


def transition_error(
    estimated, true, *, norm: Literal["relative_l1", "l1", "frobenius"] = "relative_l1"
) -> float:
    """Error of an estimated transition matrix ``T[i, j] = P(noisy=j | clean=i)``.

    Parameters
    ----------
    estimated, true : arrays of shape (C, C)
    norm : {'relative_l1', 'l1', 'frobenius'}, default='relative_l1'
        ``relative_l1`` is ``sum|T_hat - T| / sum|T|`` (the estimation error of Xia et al. 2019 and
        Yao et al. 2020, Dual-T); ``l1`` the mean absolute entry error; ``frobenius`` ``||T_hat - T||_F``.
    """
    est = np.asarray(_to_numpy(estimated), dtype=np.float64)
    ref = np.asarray(_to_numpy(true), dtype=np.float64)
    if est.shape != ref.shape or est.ndim != 2 or est.shape[0] != est.shape[1]:
        raise ValueError(
            f"transition matrices must be square and of equal shape, got {est.shape} and {ref.shape}."
        )
    diff = est - ref
    if norm == "relative_l1":
        return float(np.abs(diff).sum() / np.abs(ref).sum())
    if norm == "l1":
        return float(np.abs(diff).mean())
    if norm == "frobenius":
        return float(np.sqrt((diff**2).sum()))
    raise ValueError(f"norm must be 'relative_l1', 'l1' or 'frobenius', got {norm!r}.")


def best_and_last(history: Sequence[float]) -> tuple[float, float]:
    """Best and last value of a per-epoch accuracy curve (the papers' "best" and "last" columns)."""
    values = [v for v in history if v is not None and not np.isnan(v)]
    if not values:
        raise ValueError("history has no finite values.")
    return float(max(values)), float(values[-1])


def rank_issues(given: np.ndarray, corrected: np.ndarray, quality: np.ndarray) -> np.ndarray:
    """Indices whose corrected label differs from the given one, lowest label quality first (stable).

    The one ranking rule of the library (estimator, ``find_label_issues``, ``noisy-labels purify``).

    >>> rank_issues(np.array([0, 1, 1, 0]), np.array([1, 1, 0, 1]), np.array([0.4, 0.9, 0.1, 0.4])).tolist()
    [2, 0, 3]
    """
    flagged = np.flatnonzero(corrected != given)
    return flagged[np.argsort(quality[flagged], kind="stable")].astype(np.int64)
