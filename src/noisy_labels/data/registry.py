"""One entry point for in-memory data sets: :func:`load_dataset` by name or path, and :func:`describe`.

Names: ``digits`` (embedded, the default), ``mnist``, ``cifar10``, ``cifar100``, ``cifar10_features``.
Paths: an ``.npz``/``.npy`` features file, a folder of class subfolders (optionally split into
``train/`` and ``test/``), or a ``.csv`` list of ``path,label`` rows; images are read into memory at a
fixed size. Large lazy data sets (Clothing1M, WebVision) have their own loaders in :mod:`.lazy`.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from .base import ArrayDataset, DataBundle
from .cifar import load_cifar10, load_cifar100
from .digits import load_digits
from .features import load_cifar10_features, load_features
from .lazy import load_image_csv, load_image_folder, to_array_dataset
from .mnist import load_mnist

__all__ = ["KNOWN_DATASETS", "default_data_root", "load_dataset", "describe"]


def default_data_root() -> Path:
    """``$NOISY_LABELS_DATA`` if set, else ``~/.cache/noisy_labels/data``: where downloads go by default."""
    return Path(os.environ.get("NOISY_LABELS_DATA", "~/.cache/noisy_labels/data")).expanduser()


# ----------------------------------------------------------------------------------------------------
# Loaders by name. Each adapter takes (root, download, **options) and declares its options explicitly,
# so that a misspelt option is reported with the list of valid ones.
# ----------------------------------------------------------------------------------------------------


def _digits(
    root: Path, download: bool, *, form: str = "features", test_size: int = 500, seed: int = 0
) -> DataBundle:
    return load_digits(form=form, test_size=test_size, seed=seed)  # embedded: root and download unused


def _mnist(root: Path, download: bool, *, check_sizes: bool = True) -> DataBundle:
    return load_mnist(root, download=download, check_sizes=check_sizes)


def _cifar10(
    root: Path, download: bool, *, human_labels: str | Path | None = None, check_sizes: bool = True
) -> DataBundle:
    return load_cifar10(root, download=download, human_labels=human_labels, check_sizes=check_sizes)


def _cifar100(
    root: Path, download: bool, *, human_labels: str | Path | None = None, check_sizes: bool = True
) -> DataBundle:
    return load_cifar100(root, download=download, human_labels=human_labels, check_sizes=check_sizes)


def _cifar10_features(root: Path, download: bool) -> DataBundle:
    if download:
        raise ValueError("cifar10_features cannot be downloaded; pass the shared data folder as root.")
    return load_cifar10_features(root)


#: Name -> loader adapter ``(root, download, **options) -> DataBundle``.
KNOWN_DATASETS: dict[str, Callable[..., DataBundle]] = {
    "digits": _digits,
    "mnist": _mnist,
    "cifar10": _cifar10,
    "cifar100": _cifar100,
    "cifar10_features": _cifar10_features,
}


# ----------------------------------------------------------------------------------------------------
# Loaders by path
# ----------------------------------------------------------------------------------------------------


def _features_file(
    path: Path, download: bool, *, labels=None, classes: Sequence[str] | None = None
) -> DataBundle:
    return load_features(path, labels=labels, classes=classes)


@dataclass(frozen=True, kw_only=True)
class _ImageDecoding:
    """How the image-file sources (a folder tree, a CSV list) decode each image.

    The sources take their options as one of these dataclasses, whose fields (in order) are the valid ones.
    """

    image_size: int = 32
    resize: int | None = None
    mode: str = "RGB"

    def listing_options(self) -> dict[str, Any]:
        """The decoding options, as :func:`.load_image_folder` and :func:`.load_image_csv` take them."""
        return {f.name: getattr(self, f.name) for f in fields(_ImageDecoding)}


# ``max_bytes`` (the cap on the memory of all images read) is not in the base: it comes last, after a
# source's own options, as the message of an unknown option lists them.
@dataclass(frozen=True, kw_only=True)
class _FolderOptions(_ImageDecoding):
    max_bytes: int = 2**31


@dataclass(frozen=True, kw_only=True)
class _CsvOptions(_ImageDecoding):
    classes: Sequence[str] | None = None
    max_bytes: int = 2**31


def _image_folder(path: Path, download: bool, **options: Any) -> DataBundle:
    settings = _FolderOptions(**options)

    def folder(root: Path, **listing: Any) -> Any:
        return load_image_folder(root, **settings.listing_options(), **listing)

    train_dir = path / "train"
    if not (train_dir.is_dir() and any(p.is_dir() for p in train_dir.iterdir())):
        return DataBundle(train=to_array_dataset(folder(path), max_bytes=settings.max_bytes))
    train = to_array_dataset(folder(train_dir, name=f"{path.name}-train"), max_bytes=settings.max_bytes)
    test_dir = next((path / d for d in ("test", "val") if (path / d).is_dir()), None)
    test = None
    if test_dir is not None:
        # Only the training classes that the test folder has; labels keep the training indices.
        listed = folder(test_dir, classes=train.classes, name=f"{path.name}-test")
        test = to_array_dataset(listed, max_bytes=settings.max_bytes)
    return DataBundle(train=train, test=test)


def _csv_list(path: Path, download: bool, **options: Any) -> DataBundle:
    settings = _CsvOptions(**options)
    listed = load_image_csv(path, classes=settings.classes, **settings.listing_options())
    return DataBundle(train=to_array_dataset(listed, max_bytes=settings.max_bytes))


#: What declares the options of the path loaders that take theirs as a dataclass (the others: their
#: keyword-only parameters).
_OPTIONS_OF: dict[Callable[..., DataBundle], type[_ImageDecoding]] = {
    _image_folder: _FolderOptions,
    _csv_list: _CsvOptions,
}


def _path_loader(path: Path) -> Callable[..., DataBundle]:
    if path.is_dir():
        return _image_folder
    if path.suffix in (".npz", ".npy"):
        return _features_file
    if path.suffix == ".csv":
        return _csv_list
    raise ValueError(
        f"{path}: cannot tell the format; expected .npz, .npy, .csv, or a folder of class subfolders."
    )


def _check_options(what: str, loader: Callable, options: dict) -> None:
    params = inspect.signature(_OPTIONS_OF.get(loader, loader)).parameters
    valid = [name for name, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for {what}; valid options: {valid or 'none'}.")


def load_dataset(
    name: str | Path, root: str | Path | None = None, *, download: bool = False, **options
) -> DataBundle:
    """Load an in-memory data set by name or path.

    Parameters
    ----------
    name : str or Path
        One of ``digits``, ``mnist``, ``cifar10``, ``cifar100``, ``cifar10_features``; or a path to an
        ``.npz``/``.npy`` features file, a ``.csv`` list of ``path,label`` rows, or a folder of class
        subfolders (optionally ``train/`` and ``test/`` or ``val/`` inside).
    root : str or Path, optional
        Data folder for named data sets; default :func:`default_data_root`. Ignored for ``digits``
        and paths.
    download : bool, default=False
        Fetch missing official files (``mnist``, ``cifar10``, ``cifar100``).
    **options
        Loader options, e.g. ``form='images'`` (digits), ``human_labels=path`` (cifar10/cifar100),
        ``labels=path`` (an ``.npy`` features file), ``image_size=64`` (folders and CSVs).

    Returns
    -------
    DataBundle

    Raises
    ------
    ValueError
        An unknown name (the message lists the known ones), an unknown option, or bad data.
    FileNotFoundError
        A path or the data set's files do not exist.
    """
    key = str(name)
    if key in KNOWN_DATASETS:
        loader, target, what = (
            KNOWN_DATASETS[key],
            Path(root).expanduser() if root else default_data_root(),
            key,
        )
    else:
        path = Path(key).expanduser()
        if not path.exists():
            if path.suffix or os.sep in key or "/" in key:
                raise FileNotFoundError(f"no data set file or folder at {path}.")
            raise ValueError(
                f"unknown data set {key!r}; known names: {', '.join(KNOWN_DATASETS)}, or a path to an "
                ".npz/.npy features file, a .csv list, or an image folder."
            )
        loader, target, what = _path_loader(path), path, str(path)
    _check_options(what, loader, options)
    return loader(target, download, **options)


# ----------------------------------------------------------------------------------------------------
# A short human summary
# ----------------------------------------------------------------------------------------------------


def _split_line(label: str, ds: ArrayDataset) -> str:
    shape = "x".join(map(str, ds.x.shape[1:]))
    kind = f"images {shape} {ds.x.dtype}" if ds.is_image else f"features {ds.x.shape[1]}-d {ds.x.dtype}"
    return f"{label}: {len(ds)} samples, {kind}"


def _counts(ds: ArrayDataset) -> str:
    counts = np.bincount(ds.y, minlength=ds.num_classes)
    if ds.num_classes <= 20:
        return ", ".join(f"{c} {n}" for c, n in zip(ds.classes, counts, strict=True))
    low, high = counts.argmin(), counts.argmax()
    return f"min {counts[low]} ({ds.classes[low]}), max {counts[high]} ({ds.classes[high]})"


def _reference(name: str, sets: dict[str, np.ndarray]) -> str | None:
    """The label set a set is compared with: ``clean`` (``clean_coarse`` for coarse sets), if present."""
    ref = "clean_coarse" if name.endswith("coarse") else "clean"
    return ref if ref in sets and ref != name and len(sets[ref]) == len(sets[name]) else None


def describe(bundle: DataBundle) -> str:
    """A short human summary: sizes, shapes, classes, class counts, and label sets with their noise rates.

    The noise rate of a label set is the fraction of training samples whose label differs from the
    ``clean`` set (``clean_coarse`` for coarse sets), else from the training labels; coarse sets without
    a clean reference show their number of distinct values only.

    Examples
    --------
    >>> print(describe(load_digits()).splitlines()[0])
    train: 1297 samples, features 64-d float32
    """
    train = bundle.train
    lines = [_split_line("train", train)]
    if bundle.test is not None:
        lines.append(_split_line("test", bundle.test))
    names = ", ".join(train.classes[:12]) + (", ..." if train.num_classes > 12 else "")
    lines.append(f"classes ({train.num_classes}): {names}")
    lines.append(f"train class counts: {_counts(train)}")
    for name, labels in bundle.label_sets.items():
        ref = _reference(name, bundle.label_sets)
        if ref is not None:
            lines.append(
                f"label set {name}: {np.mean(labels != bundle.label_sets[ref]):.1%} differ from {ref}"
            )
        elif not name.endswith("coarse") and len(labels) == len(train):
            lines.append(
                f"label set {name}: {np.mean(labels != train.y):.1%} differ from the training labels"
            )
        else:  # e.g. CIFAR-100 superclasses: another label space, nothing to compare with
            lines.append(f"label set {name}: {len(labels)} labels, {len(np.unique(labels))} distinct values")
    return "\n".join(lines)
