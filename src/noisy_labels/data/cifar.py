"""CIFAR-10 and CIFAR-100 from the official python format.

The official archives unpack to ``cifar-10-batches-py/`` (``data_batch_1..5``, ``test_batch``,
``batches.meta``) and ``cifar-100-python/`` (``train``, ``test``, ``meta``). Each batch is a pickled dict
whose ``data`` is a uint8 array of shape ``(N, 3072)``: the red, green and blue 32x32 planes of each image
one after the other. The pickles are read with the restricted unpickler of :mod:`.download`, so a file
can hold only dicts, lists, strings, numbers and numpy arrays.

CIFAR-100 also labels every image with one of 20 superclasses; noise protocols that flip labels within
a superclass need that map, so it is kept here as a constant (:data:`CIFAR100_FINE_TO_COARSE`) that is
available without the data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypedDict, Unpack

import numpy as np

from .._validation import check_labels, read_user_file
from ._docstrings import fill_docstring
from .base import ArrayDataset, DataBundle
from .cifar_n import load_cifar10n, load_cifar100n
from .download import download_file, extract_archive, missing_files_error, restricted_load

__all__ = [
    "CIFAR10_CLASSES",
    "CIFAR100_CLASSES",
    "CIFAR100_SUPERCLASSES",
    "CIFAR100_FINE_TO_COARSE",
    "cifar100_coarse_labels",
    "load_cifar10",
    "load_cifar100",
]

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR100_URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
CIFAR100_MD5 = "eb9058c3a382ffc7106e4002c42a8d85"

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

# The 20 superclasses and their 5 classes each, as listed on the CIFAR page; the names and the
# alphabetical order (= label index) are those of the official ``meta`` file.
_SUPERCLASS_MEMBERS = {
    "aquatic_mammals": ("beaver", "dolphin", "otter", "seal", "whale"),
    "fish": ("aquarium_fish", "flatfish", "ray", "shark", "trout"),
    "flowers": ("orchid", "poppy", "rose", "sunflower", "tulip"),
    "food_containers": ("bottle", "bowl", "can", "cup", "plate"),
    "fruit_and_vegetables": ("apple", "mushroom", "orange", "pear", "sweet_pepper"),
    "household_electrical_devices": ("clock", "keyboard", "lamp", "telephone", "television"),
    "household_furniture": ("bed", "chair", "couch", "table", "wardrobe"),
    "insects": ("bee", "beetle", "butterfly", "caterpillar", "cockroach"),
    "large_carnivores": ("bear", "leopard", "lion", "tiger", "wolf"),
    "large_man-made_outdoor_things": ("bridge", "castle", "house", "road", "skyscraper"),
    "large_natural_outdoor_scenes": ("cloud", "forest", "mountain", "plain", "sea"),
    "large_omnivores_and_herbivores": ("camel", "cattle", "chimpanzee", "elephant", "kangaroo"),
    "medium_mammals": ("fox", "porcupine", "possum", "raccoon", "skunk"),
    "non-insect_invertebrates": ("crab", "lobster", "snail", "spider", "worm"),
    "people": ("baby", "boy", "girl", "man", "woman"),
    "reptiles": ("crocodile", "dinosaur", "lizard", "snake", "turtle"),
    "small_mammals": ("hamster", "mouse", "rabbit", "shrew", "squirrel"),
    "trees": ("maple_tree", "oak_tree", "palm_tree", "pine_tree", "willow_tree"),
    "vehicles_1": ("bicycle", "bus", "motorcycle", "pickup_truck", "train"),
    "vehicles_2": ("lawn_mower", "rocket", "streetcar", "tank", "tractor"),
}

#: The 20 CIFAR-100 superclass names; index = coarse label.
CIFAR100_SUPERCLASSES: tuple[str, ...] = tuple(_SUPERCLASS_MEMBERS)
#: The 100 CIFAR-100 class names in label order (alphabetical, as in the official ``meta`` file).
CIFAR100_CLASSES: tuple[str, ...] = tuple(
    sorted(c for members in _SUPERCLASS_MEMBERS.values() for c in members)
)
#: ``CIFAR100_FINE_TO_COARSE[fine_label]`` is the superclass (coarse label) of a CIFAR-100 class.
CIFAR100_FINE_TO_COARSE: tuple[int, ...] = tuple(
    next(s for s, members in enumerate(_SUPERCLASS_MEMBERS.values()) if name in members)
    for name in CIFAR100_CLASSES
)


def cifar100_coarse_labels(fine_labels) -> np.ndarray:
    """Map CIFAR-100 class labels to superclass labels.

    Parameters
    ----------
    fine_labels : array-like of shape (N,)
        Labels in ``[0, 100)``.

    Returns
    -------
    ndarray of shape (N,) int64
        Labels in ``[0, 20)``.

    Examples
    --------
    >>> cifar100_coarse_labels([0, 1, 99]).tolist()
    [4, 1, 13]
    """
    fine = check_labels(fine_labels, 100, name="CIFAR-100 fine labels")
    return np.asarray(CIFAR100_FINE_TO_COARSE, dtype=np.int64)[fine]


# ----------------------------------------------------------------------------------------------------
# Reading one batch
# ----------------------------------------------------------------------------------------------------


def _read_pickle_dict(path: Path) -> dict:
    """A pickled dict with its keys as str (Python 2 files give str keys, Python 3 rebuilds give bytes)."""
    obj = read_user_file(path, "CIFAR python-format file", restricted_load)  # damaged: one line naming it
    if not isinstance(obj, dict):
        raise ValueError(
            f"{path} does not hold a dict (got {type(obj).__name__}); is it a CIFAR python-format file?"
        )
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _read_batch(path: Path, label_keys: tuple[str, ...]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Images (N, 32, 32, 3) uint8 and one label array per key from an official batch file."""
    batch = _read_pickle_dict(path)
    missing = [k for k in ("data", *label_keys) if k not in batch]
    if missing:
        raise ValueError(f"{path} lacks the key(s) {missing}; found {sorted(batch)}.")
    data = np.asarray(batch["data"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ValueError(f"{path}: 'data' must be uint8 of shape (N, 3072), got {data.dtype} {data.shape}.")
    labels = [np.asarray(batch[k], dtype=np.int64) for k in label_keys]
    for key, y in zip(label_keys, labels, strict=True):
        if y.shape != (len(data),):
            raise ValueError(f"{path}: '{key}' has shape {y.shape} but there are {len(data)} images.")
    # Stored as planes (N, C, H, W) flattened; the library keeps images channels-last.
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def _read_names(path: Path, key: str) -> tuple[str, ...]:
    meta = _read_pickle_dict(path)
    if key not in meta:
        raise ValueError(f"{path} lacks the key '{key}'; found {sorted(meta)}.")
    return tuple(n.decode("latin1") if isinstance(n, bytes) else str(n) for n in meta[key])


def _locate(
    root: str | Path, folder: str, files: tuple[str, ...], what: str, url: str, md5: str, download: bool
) -> Path:
    """The folder holding ``files``: ``root/folder``, or ``root`` itself when it is that folder."""
    root = Path(root).expanduser()
    for candidate in (root / folder, root):
        if all((candidate / f).is_file() for f in files):
            return candidate
    if download:
        archive = download_file(url, root, md5)
        extract_archive(archive, root)
        if all((root / folder / f).is_file() for f in files):
            return root / folder
    missing = [f for f in files if not (root / folder / f).is_file()]
    raise missing_files_error(what, root / folder, missing, url)


def _check_expected(path: Path, n: int, expected: int | None) -> None:
    if expected is not None and n != expected:
        raise ValueError(
            f"{path} holds {n} images, expected {expected}; the file is incomplete or not official."
        )


def _attach(bundle: DataBundle, sets: dict[str, np.ndarray], source) -> DataBundle:
    """Add human label sets after checking that they follow the training set's order."""
    if not np.array_equal(sets["clean"], bundle.train.y):
        agree = (
            float(np.mean(sets["clean"] == bundle.train.y))
            if len(sets["clean"]) == len(bundle.train)
            else 0.0
        )
        raise ValueError(
            f"the clean labels of {source} do not match the training labels (agreement {agree:.1%}); the "
            "training set is not in the original order the human labels refer to."
        )
    return replace(bundle, label_sets={**bundle.label_sets, **sets})


# ----------------------------------------------------------------------------------------------------
# The two official layouts, read by one loader
# ----------------------------------------------------------------------------------------------------


def _check_cifar10_labels(path: Path, labels: list[np.ndarray], num_names: int) -> None:
    (y,) = labels
    check_labels(y, num_names, name=f"labels of {path}")


def _check_cifar100_labels(path: Path, labels: list[np.ndarray], num_names: int) -> None:
    # 100 fine classes whatever the meta file lists: the official superclass map covers exactly those.
    fine, coarse = labels
    check_labels(fine, 100, name=f"fine labels of {path}")
    if not np.array_equal(cifar100_coarse_labels(fine), coarse):
        raise ValueError(f"{path}: coarse labels disagree with the official CIFAR-100 superclass map.")


@dataclass(frozen=True)
class _ArchiveLayout:
    """What an official CIFAR python archive holds and how its labels are checked."""

    name: str  # as in messages: "CIFAR-10"
    folder: str  # what the archive unpacks to
    train_files: tuple[str, ...]
    test_file: str
    meta_file: str
    names_key: str  # the meta file's key listing the class names
    label_keys: tuple[str, ...]  # read from every batch, the class labels first
    extra_label_sets: tuple[str, ...]  # names in ``label_sets`` for the training labels of label_keys[1:]
    train_size: int  # official images per training file
    test_size: int
    check_labels: Callable[[Path, list[np.ndarray], int], None]  # (file, its labels, number of class names)
    source: Callable[[], tuple[str, str]]  # (URL, MD5), looked up per call: a patched constant takes effect
    human_labels: Callable[[str | Path], dict[str, np.ndarray]]  # the CIFAR-N reader

    @property
    def files(self) -> tuple[str, ...]:
        return (*self.train_files, self.test_file, self.meta_file)

    @property
    def dataset_name(self) -> str:
        return self.name.lower().replace("-", "")  # "cifar10": names the splits "cifar10-train", ...


_CIFAR10 = _ArchiveLayout(
    name="CIFAR-10",
    folder="cifar-10-batches-py",
    train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
    test_file="test_batch",
    meta_file="batches.meta",
    names_key="label_names",
    label_keys=("labels",),
    extra_label_sets=(),
    train_size=10000,
    test_size=10000,
    check_labels=_check_cifar10_labels,
    source=lambda: (CIFAR10_URL, CIFAR10_MD5),
    human_labels=load_cifar10n,
)
_CIFAR100 = _ArchiveLayout(
    name="CIFAR-100",
    folder="cifar-100-python",
    train_files=("train",),
    test_file="test",
    meta_file="meta",
    names_key="fine_label_names",
    label_keys=("fine_labels", "coarse_labels"),
    extra_label_sets=("coarse",),
    train_size=50000,
    test_size=10000,
    check_labels=_check_cifar100_labels,
    source=lambda: (CIFAR100_URL, CIFAR100_MD5),
    human_labels=load_cifar100n,
)


def _read_checked(
    layout: _ArchiveLayout, path: Path, num_names: int, expected: int | None
) -> tuple[np.ndarray, list[np.ndarray]]:
    x, labels = _read_batch(path, layout.label_keys)
    _check_expected(path, len(x), expected)
    layout.check_labels(path, labels, num_names)
    return x, labels


def _joined(arrays: list[np.ndarray]) -> np.ndarray:
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)  # one file: no copy of its images


def _load_official(
    layout: _ArchiveLayout,
    root: str | Path,
    *,
    download: bool = False,
    human_labels: str | Path | None = None,
    check_sizes: bool = True,
) -> DataBundle:
    """What a public loader returns for the official archive ``layout`` describes."""
    folder = _locate(root, layout.folder, layout.files, layout.name, *layout.source(), download)
    classes = _read_names(folder / layout.meta_file, layout.names_key)
    train = [
        _read_checked(layout, folder / name, len(classes), layout.train_size if check_sizes else None)
        for name in layout.train_files
    ]
    x_test, (y_test, *_) = _read_checked(
        layout, folder / layout.test_file, len(classes), layout.test_size if check_sizes else None
    )
    x_train = _joined([x for x, _ in train])
    y_train, *extra = [
        _joined(list(per_key)) for per_key in zip(*(labels for _, labels in train), strict=True)
    ]
    bundle = DataBundle(
        train=ArrayDataset(x_train, y_train, classes, name=f"{layout.dataset_name}-train"),
        test=ArrayDataset(x_test, y_test, classes, name=f"{layout.dataset_name}-test"),
        label_sets=dict(zip(layout.extra_label_sets, extra, strict=True)),
    )
    if human_labels is None:
        return bundle
    return _attach(bundle, layout.human_labels(human_labels), human_labels)


# ----------------------------------------------------------------------------------------------------
# Public loaders
# ----------------------------------------------------------------------------------------------------

_LOADER_DOC = """Load {name} from ``root/{folder}`` (the official python version).

    Parameters
    ----------
    root : str or Path
        Folder holding ``{folder}/`` (or that folder itself).
    download : bool, default=False
        Fetch and verify the official archive into ``root`` if the files are missing.
    human_labels : str or Path, optional
        ``{name}_human.pt`` (or its folder): attach the {name}N label sets
        ({human_sets}) as ``label_sets``.
    check_sizes : bool, default=True
        Require the official sizes ({sizes});
        turn off for hand-made subsets.

    Returns
    -------
    DataBundle
        {returns}

    Raises
    ------
    FileNotFoundError
        Files missing and ``download=False``; the message says where it looked.
    ValueError
        A corrupt or truncated file, wrong array sizes, labels out of range,{more_errors}
        or human labels whose ``clean`` set is not aligned with the training labels.
    ConnectionError
        ``download=True`` while offline.
    """


class LoaderOptions(TypedDict, total=False):
    """The CIFAR loaders' keyword options (documented in each loader)."""

    download: bool
    human_labels: str | Path | None
    check_sizes: bool


def _loader_doc(layout: _ArchiveLayout, human_sets: str, returns: str, more_errors: str = "") -> Callable:
    """:data:`_LOADER_DOC` filled for the archive ``layout`` describes."""
    sizes = f"{layout.train_size:,} images per training file and {layout.test_size:,} test images"
    return fill_docstring(
        _LOADER_DOC,
        name=layout.name,
        folder=layout.folder,
        human_sets=human_sets,
        sizes=sizes,
        returns=returns,
        more_errors=more_errors,
    )


@_loader_doc(
    _CIFAR10,
    human_sets="``clean``, ``aggre``, ``random1..3``, ``worst``",
    returns="``train``: images (50000, 32, 32, 3) uint8 in the original order (aligned with CIFAR-10N),\n"
    "``test``: (10000, 32, 32, 3); labels int64 in ``[0, 10)``.",
)
def load_cifar10(root: str | Path, **options: Unpack[LoaderOptions]) -> DataBundle:
    return _load_official(_CIFAR10, root, **options)


@_loader_doc(
    _CIFAR100,
    human_sets="``clean``, ``noisy``, ``clean_coarse``, ``noisy_coarse``",
    returns="``train``: images (50000, 32, 32, 3) uint8 with the 100 fine labels in ``[0, 100)``; ``test``:\n"
    '(10000, 32, 32, 3); ``label_sets["coarse"]``: the training images\' superclass labels in ``[0, 20)``\n'
    "(not a noisy version of the fine labels; test superclasses are\n"
    "``cifar100_coarse_labels(bundle.test.y)``).",
    more_errors="\ncoarse labels that disagree with the official superclass map,",
)
def load_cifar100(root: str | Path, **options: Unpack[LoaderOptions]) -> DataBundle:
    return _load_official(_CIFAR100, root, **options)
