"""The scikit-learn digits: a small data set that ships with scikit-learn, so it needs no download.

1,797 grey 8x8 images of handwritten digits with values 0..16. It is the default data set of examples
and smoke tests: every method runs on it in seconds on a CPU.
"""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_digits as sklearn_digits
from sklearn.model_selection import train_test_split

from .base import ArrayDataset, DataBundle

__all__ = ["load_digits"]


def load_digits(*, form: str = "features", test_size: int = 500, seed: int = 0) -> DataBundle:
    """The scikit-learn digits with a fixed stratified train/test split.

    Parameters
    ----------
    form : {'features', 'images'}, default='features'
        ``'features'``: (N, 64) float32 in [0, 1]; ``'images'``: (N, 8, 8, 1) uint8 in [0, 255].
    test_size : int, default=500
        Number of test samples (the rest, 1,297 by default, is the training set).
    seed : int, default=0
        Seed of the split; the same seed always gives the same split.

    Returns
    -------
    DataBundle
        Labels int64 in ``[0, 10)``, classes ``"0"`` .. ``"9"``.

    Raises
    ------
    ValueError
        Unknown ``form``, or ``test_size`` that leaves fewer than 10 samples on either side.

    Examples
    --------
    >>> bundle = load_digits()
    >>> bundle.train.x.shape, bundle.test.x.shape
    ((1297, 64), (500, 64))
    """
    if form not in ("features", "images"):
        raise ValueError(f"form must be 'features' or 'images', got {form!r}.")
    data = sklearn_digits()
    n = len(data.target)
    if (
        isinstance(test_size, bool)
        or not isinstance(test_size, (int, np.integer))
        or not 10 <= test_size <= n - 10
    ):
        raise ValueError(f"test_size must be an integer in [10, {n - 10}], got {test_size!r}.")
    # The raw values are integers 0..16.
    if form == "features":
        x = (data.data / 16.0).astype(np.float32)
    else:
        x = np.round(data.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    y = data.target.astype(np.int64)
    train_idx, test_idx = train_test_split(
        np.arange(n), test_size=int(test_size), stratify=y, random_state=seed
    )
    # Sorted indices keep the original order inside each split, which makes the split easy to inspect.
    train_idx, test_idx = np.sort(train_idx), np.sort(test_idx)
    classes = tuple(str(d) for d in range(10))
    return DataBundle(
        train=ArrayDataset(x[train_idx], y[train_idx], classes, name="digits-train"),
        test=ArrayDataset(x[test_idx], y[test_idx], classes, name="digits-test"),
    )
