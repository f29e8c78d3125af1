"""Label issues from features, in cleanlab's shapes: a boolean mask, ranked indices, per-sample scores.

:func:`find_label_issues` answers what ``cleanlab.filter.find_label_issues`` answers (which given labels
are likely wrong), from the features themselves instead of out-of-fold predicted probabilities: a
noisy-label method (:class:`~noisy_labels.sklearn.NoisyLabelClassifier`) is trained on the features and
its view of each given label is the answer. A cleanlab user swaps

    issues = cleanlab.filter.find_label_issues(labels=labels, pred_probs=pred_probs)

for

    issues = noisy_labels.find_label_issues(features=features, labels=labels)

and gets the same kinds of output. Labels are integer class indices ``0..K-1`` here, as in cleanlab.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._validation import (
    check_integer_class_labels,
    check_known_classes,
    check_labels,
    infer_num_classes,
)
from .metrics import rank_issues  # re-exported: part of this module's public names

__all__ = ["RANKED_BY", "find_label_issues", "get_label_quality_scores", "rank_issues"]

#: Accepted ``return_indices_ranked_by`` values. ``self_confidence`` (cleanlab's default ranking, the
#: probability of the given label) is an alias of ``label_quality``, which is the method's estimate of it.
RANKED_BY = ("label_quality", "self_confidence")


def find_label_issues(
    *,
    features,
    labels,
    clean_features=None,
    clean_labels=None,
    method: str = "auto",
    return_indices_ranked_by: str | None = None,
    random_state: int | None = 0,
    num_classes: int | None = None,
    **params: Any,
) -> np.ndarray:
    """Find the samples whose given label is likely wrong, from their features.

    All arguments are keyword-only: cleanlab's positional order is ``(labels, pred_probs)``, and
    ``features`` passed where labels were expected would be a silent mix-up.

    Parameters
    ----------
    features : array-like of shape (N, D)
        One feature vector (embedding) per sample; no NaN.
    labels : array-like of shape (N,)
        The given labels as integers ``0..K-1`` (map class names with
        ``sklearn.preprocessing.LabelEncoder`` first, or use the estimator, which accepts any labels).
    clean_features, clean_labels : array-like of shape (M, D) and (M,), optional
        A small set whose labels are trusted, of classes present in ``labels``.
    method : str, default="auto"
        A method that fits feature vectors (see :class:`~noisy_labels.sklearn.NoisyLabelClassifier`).
    return_indices_ranked_by : {None, 'label_quality', 'self_confidence'}, default=None
        None returns a boolean mask; otherwise the indices of the flagged samples, most likely mislabelled
        first (lowest label quality). ``self_confidence`` is accepted for cleanlab users (an alias).
    random_state : int or None, default=0
        Seeds the training (the default gives the same answer every call).
    num_classes : int, optional
        The class count ``K``. Without it, labels with gaps (``{0..9, 12}``) are refused: a label no
        class between it and the others has is more often a slip than a class.
    **params
        Other :class:`~noisy_labels.sklearn.NoisyLabelClassifier` parameters (``epochs``, ``method_params``,
        ...).

    Returns
    -------
    ndarray
        ``(N,)`` bool, True for a likely label issue (the method's corrected label differs from the given
        one); or int64 indices of those samples ranked as asked.

    Raises
    ------
    TypeError
        String labels, or positional arguments.
    ValueError
        Features and labels of different lengths, 1-D or NaN features, a clean set with classes that never
        occur in ``labels``, or an unknown ``return_indices_ranked_by``.

    See Also
    --------
    get_label_quality_scores : the per-sample scores behind the ranking.
    noisy_labels.sklearn.NoisyLabelClassifier : mask, ranking, scores and corrected labels from one fit.

    Examples
    --------
    >>> import numpy as np
    >>> import noisy_labels
    >>> rng = np.random.default_rng(0)
    >>> features = np.r_[rng.normal(-2, 1, (60, 2)), rng.normal(2, 1, (60, 2))]
    >>> labels = np.r_[np.zeros(60, int), np.ones(60, int)]
    >>> labels[:3] = 1  # three mistakes
    >>> ranked = noisy_labels.find_label_issues(features=features, labels=labels, epochs=10,
    ...     batch_size=20, lr=0.05, return_indices_ranked_by="label_quality")
    >>> sorted(ranked[:3].tolist())
    [0, 1, 2]
    """
    if return_indices_ranked_by is not None and return_indices_ranked_by not in RANKED_BY:
        raise ValueError(
            f"return_indices_ranked_by must be None or one of {', '.join(RANKED_BY)}, got "
            f"{return_indices_ranked_by!r} (cleanlab's other rankings need its own predicted probabilities)."
        )
    clf = _fit(features, labels, clean_features, clean_labels, method, random_state, num_classes, params)
    if return_indices_ranked_by is None:
        mask = np.zeros(len(clf.cleanness_), dtype=bool)
        mask[clf.label_issues_] = True
        return mask
    return clf.label_issues_


def get_label_quality_scores(
    *,
    features,
    labels,
    clean_features=None,
    clean_labels=None,
    method: str = "auto",
    random_state: int | None = 0,
    num_classes: int | None = None,
    **params: Any,
) -> np.ndarray:
    """Per-sample label quality, higher = more likely correct (as ``cleanlab.rank.get_label_quality_scores``).

    Parameters are those of :func:`find_label_issues`. The score is the method's own estimate (for the
    default ``elr``: the temporal ensemble of the network's predictions evaluated at the given label, a
    probability); sorting it ascending gives the full ranking, of which :func:`find_label_issues` returns
    the flagged head.

    Returns
    -------
    ndarray of shape (N,) float64

    Examples
    --------
    >>> import numpy as np
    >>> from noisy_labels import get_label_quality_scores
    >>> rng = np.random.default_rng(0)
    >>> features = np.r_[rng.normal(-2, 1, (60, 2)), rng.normal(2, 1, (60, 2))]
    >>> labels = np.r_[np.zeros(60, int), np.ones(60, int)]
    >>> labels[0] = 1
    >>> scores = get_label_quality_scores(features=features, labels=labels, epochs=10, batch_size=20, lr=0.05)
    >>> int(np.argmin(scores)), scores.shape
    (0, (120,))
    """
    return _fit(
        features, labels, clean_features, clean_labels, method, random_state, num_classes, params
    ).cleanness_


def _fit(features, labels, clean_features, clean_labels, method, random_state, num_classes, params):
    from .sklearn import NoisyLabelClassifier

    labels = check_integer_class_labels(labels, name="labels")
    # gaps in 0..K-1 are refused unless the count is given; with it, labels must lie below it
    check_labels(labels, infer_num_classes(num_classes, labels=labels), name="labels")
    if clean_labels is not None:
        clean_labels = check_integer_class_labels(clean_labels, name="clean_labels", min_classes=1)
        check_known_classes(clean_labels, np.unique(labels), name="clean_labels", reference="labels")
    clf = NoisyLabelClassifier(method, random_state=random_state, **params)
    return clf.fit(features, labels, clean_features, clean_labels)
