"""One place for input validation at public entry points.

Every check raises ``ValueError`` or ``TypeError`` with a message that names the offending input and
says how to fix it, so bad data fails loudly instead of giving a silently wrong answer.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np

T = TypeVar("T")


class InputFileError(ValueError):
    """A user's file that cannot be read as what it should be; the message names the file."""


def read_user_file(path: str | Path, what: str, reader: Callable[[Path], T]) -> T:
    """``reader(path)``, with any failure to read the file turned into one line that names it.

    The one place through which the library reads a file a user gave (arrays, configs, lists of
    paths): an empty, truncated or corrupted file, a binary file where text belongs, or a YAML file
    with tags the safe loader refuses all become an :class:`InputFileError` (a ``ValueError``)
    saying which file and what is wrong, instead of the reader's own traceback.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{what} not found: {p}" + (" (a folder)" if p.is_dir() else ""))
    try:
        return reader(p)
    except (InputFileError, FileNotFoundError):
        raise
    except Exception as exc:  # noqa: BLE001 - any failure here is a problem of the user's file
        raise InputFileError(f"cannot read {what} {p}: {_problem(exc)}") from exc


def _problem(exc: Exception) -> str:
    """What went wrong while reading a file, as one short line."""
    if isinstance(exc, EOFError):
        return "the file is empty or truncated."
    if isinstance(exc, zipfile.BadZipFile):
        return "not a valid .npz archive (damaged or truncated)."
    if isinstance(exc, UnicodeDecodeError):
        return "not a UTF-8 text file (binary content)."
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


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


def infer_num_classes(num_classes: int | None = None, **labels) -> int:
    """The class count ``K``: ``num_classes`` if given, else ``max + 1`` over the ``labels`` arrays.

    Without ``num_classes``, labels with gaps are refused: ``{0..9, 15}`` would make 16 classes of which
    5 never occur, and noise or relabelling would then move samples into those empty classes. The
    message names the labels that create the gap and the arrays (keyword names) that hold them.

    >>> infer_num_classes(y=[0, 1, 2, 1])
    3
    >>> infer_num_classes(4, y=[0, 1])
    4
    """
    if num_classes is not None:
        return check_num_classes(num_classes)
    arrays = {name: check_labels(v, name=name) for name, v in labels.items() if v is not None}
    present = np.unique(np.concatenate(list(arrays.values())))
    k = int(present.max()) + 1
    missing = np.setdiff1d(np.arange(k), present)
    if missing.size:
        beyond = present[present > missing[0]]
        holders = " and ".join(name for name, v in arrays.items() if np.isin(v, beyond).any())
        raise ValueError(
            f"{holders} hold label(s) {_few(beyond)} but class(es) {_few(missing)} have no sample: labels "
            "must be 0..K-1 with every class present. Give the class count (num_classes / --num-classes) "
            "if the empty classes are real, or map the labels to 0..K-1 first."
        )
    return check_num_classes(k)


def _few(values, limit: int = 8) -> str:
    shown = ", ".join(str(int(v)) for v in values[:limit])
    return f"[{shown}{', ...' if len(values) > limit else ''}]"


def check_num_classes(num_classes: int) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}.")
    return int(num_classes)


def check_features(x, *, name: str = "features", ndim: int | Sequence[int] = 2) -> np.ndarray:
    """Return ``x`` as a float array after checking its shape and that every value is finite."""
    arr = np.asarray(x)
    allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
    if arr.ndim not in allowed:
        hint = (
            "; Reshape your data with x.reshape(-1, 1) if it holds a single feature or x.reshape(1, -1) if "
            "it is a single sample"
            if arr.ndim == 1
            else ""
        )
        raise ValueError(
            f"{name} must have {' or '.join(map(str, allowed))} dimensions, got shape {arr.shape}{hint}."
        )
    if arr.shape[0] == 0:
        raise ValueError(f"{name} has no rows.")
    if arr.ndim == 2 and arr.shape[1] == 0:
        raise ValueError(f"{name} has 0 feature(s) (shape={arr.shape}) while a minimum of 1 is required.")
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
    return next(iter(lengths.values()), 0)


def check_same_columns(**arrays) -> None:
    """Check that all named arrays (None skipped) have the same shape after the first dimension."""
    shapes = {k: tuple(v.shape[1:]) for k, v in arrays.items() if v is not None}
    if len(set(shapes.values())) > 1:
        detail = ", ".join(f"{k}: {s}" for k, s in shapes.items())
        raise ValueError(f"feature shape mismatch: these must have the same columns ({detail}).")


def check_choice(key: str, value, allowed, *, error: type[Exception] = ValueError) -> None:
    """Raise ``error`` naming the option ``key``, its value and the allowed values.

    >>> check_choice("dmlp.targets", "hard", ("hard", "soft"))
    >>> check_choice("dmlp.targets", "sharp", ("hard", "soft"))
    Traceback (most recent call last):
    ValueError: dmlp.targets must be one of hard, soft, got 'sharp'.
    """
    if value not in allowed:
        raise error(f"{key} must be one of {', '.join(map(str, allowed))}, got {value!r}.")


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


def check_known_classes(labels, known, *, name: str = "y_clean", reference: str = "y") -> None:
    """Check that every value of ``labels`` occurs in ``known`` (the classes seen in ``reference``)."""
    values = np.unique(np.asarray(labels))
    unseen = values[~np.isin(values, np.asarray(known))]
    if unseen.size:
        raise ValueError(
            f"{name} contains class(es) {unseen.tolist()[:10]} that never occur in {reference}; the model "
            f"can only learn classes present in {reference} (add samples of them or drop them from {name})."
        )


def check_integer_class_labels(labels, *, name: str = "labels", min_classes: int = 2) -> np.ndarray:
    """``labels`` as int64 class indices ``0..K-1`` (cleanlab's convention), with fixes for the usual slips.

    Raises
    ------
    TypeError
        String or object labels (class names): map them to integers first.
    ValueError
        Negative labels, or fewer than ``min_classes`` distinct classes.
    """
    arr = np.asarray(labels)
    if arr.dtype.kind in "USO":
        example = arr.ravel()[0] if arr.size else ""
        raise TypeError(
            f"{name} must be integer class indices 0..K-1 (as in cleanlab), got {arr.dtype} values such as "
            f"{example!r}; map class names to integers first, e.g. "
            "`labels = sklearn.preprocessing.LabelEncoder().fit_transform(names)`, or use "
            "noisy_labels.sklearn.NoisyLabelClassifier, which accepts any hashable labels."
        )
    arr = check_labels(arr, name=name)
    if len(np.unique(arr)) < min_classes:
        raise ValueError(f"{name} hold only one class ({arr[0]}); label issues need at least two classes.")
    return arr


def check_feature_matrix(x, *, name: str = "X") -> np.ndarray:
    """A 2-D feature matrix as float32, checked the way scikit-learn estimators are expected to check it.

    Object arrays of numbers are converted; sparse matrices, complex values, 1-D input, no rows or no
    columns, and NaN/inf are errors whose messages say what to do.
    """
    if hasattr(x, "tocsr") or type(x).__module__.startswith("scipy.sparse"):
        raise TypeError(
            f"{name} is a sparse matrix; sparse input is not supported: pass {name}.toarray() (dense)."
        )
    arr = np.asarray(x)
    if arr.dtype.kind == "O":
        arr = arr.astype(np.float64)  # TypeError naming the value when an entry is not a number
    if arr.dtype.kind == "c":
        raise ValueError(f"Complex data not supported: {name} has dtype {arr.dtype}; pass real features.")
    arr = check_features(arr, name=name, ndim=2)
    if arr.shape[1] == 0:
        raise ValueError(
            f"Found array with 0 feature(s) (shape={arr.shape}) while a minimum of 1 is required: "
            f"{name} has no columns."
        )
    return arr.astype(np.float32, copy=False)


def check_class_target(y, *, name: str = "y") -> np.ndarray:
    """Classification labels (any hashable values) as a 1-D array, with scikit-learn's conventions.

    A column vector ``(N, 1)`` is flattened with a ``DataConversionWarning``; other shapes, NaN/inf and
    continuous (regression) targets are errors.
    """
    from sklearn.utils import assert_all_finite
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import column_or_1d

    if y is None:
        raise ValueError(
            f"this classifier requires {name} to be passed, but the target {name} is None; "
            f"pass the given labels as {name}."
        )
    arr = column_or_1d(y, warn=True)
    if arr.dtype.kind in "fc":
        assert_all_finite(arr, input_name=name)
    if arr.size == 0:
        raise ValueError(f"{name} is empty.")
    check_classification_targets(arr)
    return arr
