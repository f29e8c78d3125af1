"""One place for input validation at public entry points.

Every check raises ``ValueError`` or ``TypeError`` with a message that names the offending input and
says how to fix it, so bad data fails loudly instead of giving a silently wrong answer.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def check_labels(labels, num_classes: int | None = None, *, name: str = "labels") -> np.ndarray:
    """Return ``labels`` as a 1-D int64 array with values in ``[0, num_classes)``.

    Raises
    ------
    TypeError
        Float labels with fractional parts, strings, or objects.
    ValueError
        Not 1-D, empty, negative, or ``>= num_classes``.
    """
    arr = np.asarray(labels)
    if arr.dtype.kind in "USO":
        raise TypeError(
            f"{name} must be integers 0..C-1, got dtype {arr.dtype}; map class names to integers first "
            "(e.g. with sklearn.preprocessing.LabelEncoder)."
        )
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of class indices, got shape {arr.shape}.")
    if arr.size == 0:
        raise ValueError(f"{name} is empty.")
    if arr.dtype.kind == "b":
        raise TypeError(f"{name} must be integer class indices, got booleans.")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} contains NaN or inf.")
        if not np.all(arr == np.round(arr)):
            raise TypeError(
                f"{name} must be integer class indices, got non-integral floats "
                f"(e.g. {arr[arr != np.round(arr)][0]})."
            )
    arr = arr.astype(np.int64)
    if arr.min() < 0:
        raise ValueError(f"{name} contains negative values (min {arr.min()}); labels must lie in [0, C).")
    if num_classes is not None:
        check_num_classes(num_classes)
        if arr.max() >= num_classes:
            raise ValueError(
                f"{name} contains {arr.max()}, outside [0, {num_classes}); "
                f"num_classes={num_classes} is too small or the labels are 1-based."
            )
    return arr


def check_num_classes(num_classes: int) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}.")
    return int(num_classes)


def check_features(x, *, name: str = "features", ndim: int | Sequence[int] = 2) -> np.ndarray:
    """Return ``x`` as a float array after checking its shape and that every value is finite."""
    arr = np.asarray(x)
    allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
    if arr.ndim not in allowed:
        hint = " (reshape a single feature column with x.reshape(-1, 1))" if arr.ndim == 1 else ""
        raise ValueError(
            f"{name} must have {' or '.join(map(str, allowed))} dimensions, got shape {arr.shape}{hint}."
        )
    if arr.shape[0] == 0:
        raise ValueError(f"{name} has no rows.")
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"{name} must be numeric, got dtype {arr.dtype}.")
    if arr.dtype.kind == "f":
        bad = ~np.isfinite(arr)
        if bad.any():
            row = int(np.argwhere(bad)[0][0])
            raise ValueError(
                f"{name} contains {int(bad.sum())} NaN/inf values (first in row {row}); impute or drop them."
            )
    return arr


def check_same_length(**arrays) -> int:
    """Check that all named arrays have the same first dimension; return it."""
    lengths = {k: len(v) for k, v in arrays.items() if v is not None}
    if len(set(lengths.values())) > 1:
        detail = ", ".join(f"{k}: {n}" for k, n in lengths.items())
        raise ValueError(f"shape mismatch: these must have the same number of rows ({detail}).")
    return next(iter(lengths.values()))


def check_rate(rate: float, *, name: str = "rate") -> float:
    if not isinstance(rate, (int, float, np.floating)) or not 0.0 <= float(rate) <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1], got {rate!r}.")
    return float(rate)


def check_every_class_present(labels: np.ndarray, num_classes: int, *, name: str = "clean labels") -> None:
    counts = np.bincount(labels, minlength=num_classes)
    missing = np.flatnonzero(counts == 0)
    if missing.size:
        raise ValueError(
            f"{name} have no sample of class(es) {missing.tolist()}; every class needs at least one trusted "
            "sample (enlarge the clean set or drop those classes)."
        )
