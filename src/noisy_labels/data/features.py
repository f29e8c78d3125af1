"""Precomputed feature arrays: what practitioners bring, and the shared CIFAR-10 EfficientNet features.

Feature files are read with ``np.load(..., allow_pickle=False)``: ``.npz``/``.npy`` files may then hold
only plain arrays, never pickled objects, so loading cannot run code.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._validation import check_features, check_labels, check_same_length, infer_num_classes, read_user_file
from .base import ArrayDataset, DataBundle
from .cifar import CIFAR10_CLASSES
from .cifar_n import load_cifar10n

__all__ = ["encode_labels", "load_features", "load_cifar10_features", "CIFAR10_FEATURES_FILE"]

CIFAR10_FEATURES_FILE = "features/cifar10-efficientnet-lite0.npz"

# Accepted key names in a practitioner's .npz, first match wins.
_X_KEYS = ("x", "X", "features")
_Y_KEYS = ("y", "labels", "targets")
_X_TEST_KEYS = ("x_test", "X_test", "features_test")
_Y_TEST_KEYS = ("y_test", "labels_test", "targets_test")


def encode_labels(values, classes: Sequence[str] | None = None) -> tuple[np.ndarray, tuple[str, ...]]:
    """Turn labels that are integers or class names into int64 indices and class names.

    Parameters
    ----------
    values : array-like of shape (N,)
        Integer labels, or strings: class names, or integers written as text (unless they are all
        names in ``classes``).
    classes : sequence of str, optional
        Class names in label order. Without it, integer labels get names ``"0"`` .. ``str(max)`` and
        string labels get their sorted unique values.

    Returns
    -------
    labels : ndarray of shape (N,) int64
    classes : tuple of str

    Raises
    ------
    ValueError
        A name not in ``classes``, or integers outside ``[0, len(classes))``.

    Examples
    --------
    >>> encode_labels(["dog", "cat", "dog"])
    (array([1, 0, 1]), ('cat', 'dog'))
    """
    arr = np.asarray(values)
    if arr.dtype.kind in "US":
        strings = arr.astype(str)
        by_name = classes is not None and set(strings.tolist()) <= set(classes)
        if not by_name and all(s.strip().lstrip("-").isdigit() for s in strings):
            arr = strings.astype(np.int64)
        else:
            names = tuple(classes) if classes is not None else tuple(sorted(set(strings.tolist())))
            index = {name: i for i, name in enumerate(names)}
            unknown = sorted(set(strings.tolist()) - set(index))
            if unknown:
                raise ValueError(f"label name(s) {unknown[:5]} are not among the classes {list(names)[:10]}.")
            return np.array([index[s] for s in strings], dtype=np.int64), names
    k = infer_num_classes(None if classes is None else len(classes), labels=arr)
    labels = check_labels(arr, k)
    names = tuple(classes) if classes is not None else tuple(str(c) for c in range(k))
    return labels, names


def _pick(arrays, keys: tuple[str, ...], path: Path, required: bool):
    for key in keys:
        if key in arrays:
            return arrays[key]
    if required:
        raise ValueError(f"{path} has no key among {list(keys)}; found {sorted(arrays.keys())}.")
    return None


def _load_array(path: Path) -> Any:  # an array (.npy) or an NpzFile, a context manager (.npz)
    # object arrays need pickle, which is refused on purpose: store numbers, or class names as str arrays
    return read_user_file(path, "array file", lambda p: np.load(p, allow_pickle=False))


def _dataset(x, y, classes, name: str) -> ArrayDataset:
    x = check_features(x, name=f"{name} features", ndim=(2, 4))
    check_same_length(**{f"{name} features": x, f"{name} labels": y})
    # Keep uint8 images as they are; any other numbers become float32 features.
    x = x if (x.ndim == 4 and x.dtype == np.uint8) else x.astype(np.float32, copy=False)
    return ArrayDataset(x, y, classes, name=name)


def load_features(
    path: str | Path,
    *,
    labels: str | Path | np.ndarray | None = None,
    classes: Sequence[str] | None = None,
) -> DataBundle:
    """Load features and labels from an ``.npz`` file, or an ``.npy`` features file plus labels.

    Parameters
    ----------
    path : str or Path
        An ``.npz`` with features under ``x``/``X``/``features`` and labels under ``y``/``labels``/
        ``targets``; optionally a test split (``x_test``/``features_test`` and ``y_test``/``labels_test``)
        and ``classes`` (a str array). Or an ``.npy`` of features, shape (N, D) (or uint8 (N, H, W, C)).
    labels : str, Path or ndarray of shape (N,), optional
        The labels for an ``.npy`` features file: an ``.npy`` path or an array. Required for ``.npy``.
    classes : sequence of str, optional
        Class names; default from the file's ``classes`` key, else ``"0"`` .. ``"C-1"`` (C = largest
        label + 1), or the sorted names when the labels are strings.

    Returns
    -------
    DataBundle
        Features as float32 (N, D) (uint8 images stay uint8), labels int64.

    Raises
    ------
    FileNotFoundError
        A file is missing.
    ValueError
        Missing keys, pickled objects, NaN/inf features, mismatched lengths, or labels out of range.
    """
    path = Path(path).expanduser()
    if path.suffix == ".npz":
        if labels is not None:
            raise ValueError(f"{path} is an .npz, which holds its own labels; do not pass labels=.")
        with _load_array(path) as arrays:
            x, y = _pick(arrays, _X_KEYS, path, True), _pick(arrays, _Y_KEYS, path, True)
            x_test, y_test = (
                _pick(arrays, _X_TEST_KEYS, path, False),
                _pick(arrays, _Y_TEST_KEYS, path, False),
            )
            if classes is None and "classes" in arrays:
                classes = tuple(str(c) for c in arrays["classes"])
    elif path.suffix == ".npy":
        if labels is None:
            raise ValueError(
                f"{path} holds features only; pass labels= (an .npy file of labels or an array)."
            )
        x = _load_array(path)
        y = _load_array(Path(labels).expanduser()) if isinstance(labels, (str, Path)) else np.asarray(labels)
        x_test = y_test = None
    else:
        raise ValueError(f"{path}: expected an .npz or .npy file, got '{path.suffix}'.")
    if (x_test is None) != (y_test is None):
        raise ValueError(f"{path} has only one of the test features / test labels; provide both or neither.")
    if y_test is not None:
        # Encode train and test together so that both use the same class indices.
        both, classes = encode_labels(np.concatenate([np.asarray(y), np.asarray(y_test)]), classes)
        y, y_test = both[: len(y)], both[len(y) :]
    else:
        y, classes = encode_labels(y, classes)
    name = path.stem
    train = _dataset(x, y, classes, f"{name}-train")
    test = None if x_test is None else _dataset(x_test, y_test, classes, f"{name}-test")
    return DataBundle(train=train, test=test)


def load_cifar10_features(root: str | Path) -> DataBundle:
    """The shared CIFAR-10 EfficientNet-Lite0 features with the CIFAR-10N label sets.

    Parameters
    ----------
    root : str or Path
        The data folder holding ``features/cifar10-efficientnet-lite0.npz`` (keys ``train`` (50000, 1280)
        float16, ``test`` (10000, 1280), ``test_labels``) and ``cifar-n/CIFAR-10_human.pt``.

    Returns
    -------
    DataBundle
        ``train``: (50000, 1280) float32 with CIFAR-10N's clean labels; ``test``: (10000, 1280) float32;
        ``label_sets``: ``clean``, ``aggre``, ``random1..3``, ``worst``.

    Raises
    ------
    FileNotFoundError
        Either file is missing.
    ValueError
        Missing keys or sizes that do not match the label file.
    """
    root = Path(root).expanduser()
    path = root / CIFAR10_FEATURES_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"CIFAR-10 features not found: no {path}. Pass the shared data folder as root."
        )
    with _load_array(path) as arrays:
        missing = [k for k in ("train", "test", "test_labels") if k not in arrays]
        if missing:
            raise ValueError(f"{path} lacks the key(s) {missing}; found {sorted(arrays.keys())}.")
        x_train, x_test, y_test = arrays["train"], arrays["test"], arrays["test_labels"]
    sets = load_cifar10n(root)
    if len(x_train) != len(sets["clean"]):
        raise ValueError(f"{path}: {len(x_train)} training rows but {len(sets['clean'])} CIFAR-10N labels.")
    return DataBundle(
        train=_dataset(x_train, sets["clean"], CIFAR10_CLASSES, "cifar10-features-train"),
        test=_dataset(
            x_test,
            check_labels(y_test, 10, name=f"test_labels of {path}"),
            CIFAR10_CLASSES,
            "cifar10-features-test",
        ),
        label_sets=sets,
    )
