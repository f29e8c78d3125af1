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

from dataclasses import replace
from pathlib import Path

import numpy as np

from .._validation import check_labels, read_user_file
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
# Public loaders
# ----------------------------------------------------------------------------------------------------


def load_cifar10(
    root: str | Path,
    *,
    download: bool = False,
    human_labels: str | Path | None = None,
    check_sizes: bool = True,
) -> DataBundle:
    """Load CIFAR-10 from ``root/cifar-10-batches-py`` (the official python version).

    Parameters
    ----------
    root : str or Path
        Folder holding ``cifar-10-batches-py/`` (or that folder itself).
    download : bool, default=False
        Fetch and verify the official archive into ``root`` if the files are missing.
    human_labels : str or Path, optional
        ``CIFAR-10_human.pt`` (or its folder): attach the CIFAR-10N label sets (``clean``, ``aggre``,
        ``random1..3``, ``worst``) as ``label_sets``.
    check_sizes : bool, default=True
        Require the official sizes (10,000 images per batch); turn off for hand-made subsets.

    Returns
    -------
    DataBundle
        ``train``: images (50000, 32, 32, 3) uint8 in the original order (aligned with CIFAR-10N),
        ``test``: (10000, 32, 32, 3); labels int64 in ``[0, 10)``.

    Raises
    ------
    FileNotFoundError
        Files missing and ``download=False``; the message says where it looked.
    ValueError
        A corrupt or truncated batch, wrong array sizes, labels outside ``[0, 10)``, or human labels
        whose ``clean`` set is not aligned with the training labels.
    ConnectionError
        ``download=True`` while offline.
    """
    train_files = tuple(f"data_batch_{i}" for i in range(1, 6))
    files = (*train_files, "test_batch", "batches.meta")
    folder = _locate(root, "cifar-10-batches-py", files, "CIFAR-10", CIFAR10_URL, CIFAR10_MD5, download)
    classes = _read_names(folder / "batches.meta", "label_names")
    parts = []
    for name in (*train_files, "test_batch"):
        x, (y,) = _read_batch(folder / name, ("labels",))
        _check_expected(folder / name, len(x), 10000 if check_sizes else None)
        check_labels(y, len(classes), name=f"labels of {folder / name}")
        parts.append((x, y))
    x_train = np.concatenate([x for x, _ in parts[:5]])
    y_train = np.concatenate([y for _, y in parts[:5]])
    x_test, y_test = parts[5]
    bundle = DataBundle(
        train=ArrayDataset(x_train, y_train, classes, name="cifar10-train"),
        test=ArrayDataset(x_test, y_test, classes, name="cifar10-test"),
    )
    return bundle if human_labels is None else _attach(bundle, load_cifar10n(human_labels), human_labels)


def load_cifar100(
    root: str | Path,
    *,
    download: bool = False,
    human_labels: str | Path | None = None,
    check_sizes: bool = True,
) -> DataBundle:
    """Load CIFAR-100 from ``root/cifar-100-python`` (the official python version).

    Parameters
    ----------
    root : str or Path
        Folder holding ``cifar-100-python/`` (or that folder itself).
    download : bool, default=False
        Fetch and verify the official archive into ``root`` if the files are missing.
    human_labels : str or Path, optional
        ``CIFAR-100_human.pt`` (or its folder): attach the CIFAR-100N label sets (``clean``, ``noisy``,
        ``clean_coarse``, ``noisy_coarse``) as ``label_sets``.
    check_sizes : bool, default=True
        Require the official sizes (50,000 training and 10,000 test images).

    Returns
    -------
    DataBundle
        ``train``: images (50000, 32, 32, 3) uint8 with the 100 fine labels; ``test``: (10000, 32, 32, 3);
        ``label_sets["coarse"]``: the training images' superclass labels in ``[0, 20)`` (not a noisy
        version of the fine labels; test superclasses are ``cifar100_coarse_labels(bundle.test.y)``).

    Raises
    ------
    FileNotFoundError
        Files missing and ``download=False``; the message says where it looked.
    ValueError
        A corrupt or truncated file, wrong sizes, labels out of range, coarse labels that disagree
        with the official superclass map, or human labels not aligned with the training labels.
    ConnectionError
        ``download=True`` while offline.
    """
    folder = _locate(
        root, "cifar-100-python", ("train", "test", "meta"), "CIFAR-100", CIFAR100_URL, CIFAR100_MD5, download
    )
    classes = _read_names(folder / "meta", "fine_label_names")
    splits = {}
    for name, expected in (("train", 50000), ("test", 10000)):
        x, (fine, coarse) = _read_batch(folder / name, ("fine_labels", "coarse_labels"))
        _check_expected(folder / name, len(x), expected if check_sizes else None)
        check_labels(fine, 100, name=f"fine labels of {folder / name}")
        if not np.array_equal(cifar100_coarse_labels(fine), coarse):
            raise ValueError(
                f"{folder / name}: coarse labels disagree with the official CIFAR-100 superclass map."
            )
        splits[name] = (x, fine, coarse)
    x, y, coarse = splits["train"]
    bundle = DataBundle(
        train=ArrayDataset(x, y, classes, name="cifar100-train"),
        test=ArrayDataset(splits["test"][0], splits["test"][1], classes, name="cifar100-test"),
        label_sets={"coarse": coarse},
    )
    return bundle if human_labels is None else _attach(bundle, load_cifar100n(human_labels), human_labels)
