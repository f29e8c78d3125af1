"""Image data sets read from disk one item at a time: Clothing1M, WebVision mini, image folders, CSV lists.

These are too large to hold in memory (Clothing1M has a million images), so each is an
:class:`ImageListDataset`: a list of image paths and labels whose items are decoded with Pillow when
requested, resized and center-cropped to a fixed size. Small ones can be read fully into an
:class:`~noisy_labels.data.base.ArrayDataset` with :func:`to_array_dataset`.

Pillow is an optional dependency (``pip install noisy-labels[images]``), imported only when an image is read.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .._validation import check_labels, check_same_length
from .base import ArrayDataset
from .download import missing_files_error
from .features import encode_labels

__all__ = [
    "IMAGE_EXTENSIONS",
    "CLOTHING1M_CLASSES",
    "ImageListDataset",
    "read_image",
    "to_array_dataset",
    "load_clothing1m",
    "load_webvision_mini",
    "load_image_folder",
    "load_image_csv",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
CLOTHING1M_CLASSES = (
    "T-Shirt", "Shirt", "Knitwear", "Chiffon", "Sweater", "Hoodie", "Windbreaker",
    "Jacket", "Downcoat", "Suit", "Shawl", "Dress", "Vest", "Underwear",
)  # fmt: skip


# ----------------------------------------------------------------------------------------------------
# Reading one image
# ----------------------------------------------------------------------------------------------------


def _pil_image():
    try:
        from PIL import Image
    except ImportError as err:
        raise ImportError("reading image files needs Pillow: pip install noisy-labels[images]") from err
    return Image


def read_image(
    path: str | Path, image_size: int | None = None, *, resize: int | None = None, mode: str = "RGB"
) -> np.ndarray:
    """Decode an image, resize its shorter side to ``resize`` and center-crop it to a square.

    Parameters
    ----------
    path : str or Path
        Any format Pillow reads.
    image_size : int, optional
        Side of the square output; ``None`` keeps the image as it is.
    resize : int, optional
        Shorter side before cropping; default ``image_size`` (the crop then only trims the longer side).
    mode : {'RGB', 'L'}, default='RGB'
        Color mode; ``'L'`` gives one gray channel.

    Returns
    -------
    ndarray of shape (H, W, C) uint8

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        Pillow cannot decode the file; ``resize < image_size``.
    ImportError
        Pillow is not installed.
    """
    image_cls = _pil_image()
    if image_size is not None and resize is not None and resize < image_size:
        raise ValueError(f"resize ({resize}) must be >= image_size ({image_size}).")
    try:
        with image_cls.open(path) as im:
            if image_size is not None:
                # JPEG can decode directly at a reduced scale: much faster for large photos (Clothing1M).
                im.draft(mode, (resize or image_size, resize or image_size))
            im = im.convert(mode)
    except FileNotFoundError:
        raise FileNotFoundError(f"image not found: {path}") from None
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot decode image {path}: {err}") from err
    if image_size is not None:
        im = _resize_center_crop(im, image_size, resize or image_size, image_cls)
    arr = np.asarray(im, dtype=np.uint8)
    return arr[..., None] if arr.ndim == 2 else arr


def _resize_center_crop(im, size: int, shorter: int, image_cls):
    w, h = im.size
    scale = shorter / min(w, h)
    new_w, new_h = max(size, round(w * scale)), max(size, round(h * scale))
    if (new_w, new_h) != (w, h):
        im = im.resize((new_w, new_h), image_cls.BILINEAR)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    return im.crop((left, top, left + size, top + size))


# ----------------------------------------------------------------------------------------------------
# The lazy data set
# ----------------------------------------------------------------------------------------------------


class ImageListDataset(Dataset):
    """Images listed by path, decoded on access; items are ``(image, label, index)``.

    Parameters
    ----------
    paths : sequence of str or Path, length N
        Image files.
    labels : array-like of shape (N,)
        Integer labels in ``[0, len(classes))``.
    classes : sequence of str
        Class names, index = label.
    image_size : int or None, default=224
        Items are ``image_size`` x ``image_size`` center crops; ``None`` keeps original sizes.
    resize : int, optional
        Shorter side before the crop (e.g. 256 with ``image_size=224``); default ``image_size``.
    mode : {'RGB', 'L'}, default='RGB'
        Three color channels or one gray channel.
    as_tensor : bool, default=True
        Return the image as a uint8 torch tensor (C, H, W); ``False`` gives a numpy array (H, W, C).
    transform : callable, optional
        Applied to the image after conversion (e.g. augmentation).
    name : str
        Short name used in reports.

    Attributes
    ----------
    labels : ndarray of shape (N,) int64
    classes : tuple of str
    """

    def __init__(
        self,
        paths: Sequence[str | Path],
        labels,
        classes: Sequence[str],
        *,
        image_size: int | None = 224,
        resize: int | None = None,
        mode: str = "RGB",
        as_tensor: bool = True,
        transform: Callable | None = None,
        name: str = "",
    ) -> None:
        if mode not in ("RGB", "L"):
            raise ValueError(f"mode must be 'RGB' or 'L', got {mode!r}.")
        self.paths = [str(p) for p in paths]
        self.classes = tuple(str(c) for c in classes)
        self.labels = check_labels(labels, len(self.classes), name=f"{name or 'image list'} labels")
        check_same_length(paths=self.paths, labels=self.labels)
        self.image_size, self.resize, self.mode = image_size, resize, mode
        self.as_tensor, self.transform, self.name = as_tensor, transform, name

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        pixels = read_image(self.paths[index], self.image_size, resize=self.resize, mode=self.mode)
        image: np.ndarray | torch.Tensor = pixels
        if self.as_tensor:
            image = torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.labels[index]), int(index)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def with_labels(self, labels) -> ImageListDataset:
        """The same images with other labels (e.g. noisy ones); the files are not touched."""
        clone = object.__new__(ImageListDataset)
        clone.__dict__.update(self.__dict__)
        clone.labels = check_labels(labels, len(self.classes), name=f"{self.name or 'image list'} labels")
        check_same_length(paths=self.paths, labels=clone.labels)
        return clone

    def __repr__(self) -> str:
        return f"ImageListDataset({self.name or 'unnamed'}: {len(self)} images, {self.num_classes} classes)"


def to_array_dataset(
    dataset: ImageListDataset, *, max_bytes: int = 2**31, name: str | None = None
) -> ArrayDataset:
    """Read every image of ``dataset`` into memory.

    Parameters
    ----------
    dataset : ImageListDataset
        Must have a fixed ``image_size`` so that all images share one shape.
    max_bytes : int, default=2**31
        Refuse data sets whose images would take more memory than this.
    name : str, optional
        Name of the result; default the dataset's.

    Returns
    -------
    ArrayDataset
        Images (N, S, S, C) uint8 with ``S = image_size``, the same labels and classes.

    Raises
    ------
    ValueError
        ``image_size`` is None, or the images would exceed ``max_bytes``.
    """
    if dataset.image_size is None:
        raise ValueError("to_array_dataset needs a fixed image_size so that all images have one shape.")
    channels = 3 if dataset.mode == "RGB" else 1
    size = dataset.image_size
    needed = len(dataset) * size * size * channels
    if needed > max_bytes:
        raise ValueError(
            f"{len(dataset)} images of {size}x{size}x{channels} need {needed / 2**30:.1f} GiB, over "
            f"max_bytes={max_bytes / 2**30:.1f} GiB; use the lazy dataset, a smaller image_size, or a larger "
            "max_bytes."
        )
    x = np.empty((len(dataset), size, size, channels), dtype=np.uint8)
    for i, path in enumerate(dataset.paths):
        x[i] = read_image(path, size, resize=dataset.resize, mode=dataset.mode)
    return ArrayDataset(
        x, dataset.labels.copy(), dataset.classes, name=dataset.name if name is None else name
    )


# ----------------------------------------------------------------------------------------------------
# List files
# ----------------------------------------------------------------------------------------------------


def _read_pairs(path: Path) -> list[tuple[str, int]]:
    """Lines ``<relative path> <integer label>`` (Clothing1M, WebVision); errors name the line."""
    pairs = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
                raise ValueError(
                    f"{path}, line {number}: expected '<path> <integer label>', got {line.strip()!r}."
                )
            pairs.append((parts[0], int(parts[1])))
    return pairs


def _read_keys(path: Path) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


def _check_first_exists(paths: list[str], what: str) -> None:
    # A wrong root shows up here instead of in the first training batch; one stat, not a million.
    if paths and not Path(paths[0]).is_file():
        raise FileNotFoundError(f"{what}: the first listed image {paths[0]} does not exist; is root right?")


def _require(root: Path, files: Sequence[str], what: str, hint: str) -> None:
    missing = [f for f in files if not (root / f).is_file()]
    if missing:
        raise missing_files_error(what, root, missing, hint=hint)


# ----------------------------------------------------------------------------------------------------
# Clothing1M
# ----------------------------------------------------------------------------------------------------

_CLOTHING1M_FILES = (
    "noisy_label_kv.txt",
    "clean_label_kv.txt",
    "noisy_train_key_list.txt",
    "clean_train_key_list.txt",
    "clean_val_key_list.txt",
    "clean_test_key_list.txt",
)


def _labelled(root: Path, keys_file: str, kv: dict[str, int], kv_file: str, **options) -> ImageListDataset:
    keys = _read_keys(root / keys_file)
    unknown = [k for k in keys if k not in kv]
    if unknown:
        raise ValueError(
            f"{root / keys_file}: {len(unknown)} key(s) have no label in {kv_file} (e.g. {unknown[0]})."
        )
    labels = np.fromiter((kv[k] for k in keys), dtype=np.int64, count=len(keys))
    check_labels(labels, len(CLOTHING1M_CLASSES), name=f"labels of {keys_file} (from {kv_file})")
    paths = [str(root / k) for k in keys]
    dataset = ImageListDataset(paths, labels, CLOTHING1M_CLASSES, **options)
    _check_first_exists(paths, f"Clothing1M {keys_file}")
    return dataset


def load_clothing1m(
    root: str | Path, *, image_size: int | None = 224, resize: int | None = 256, **options
) -> dict[str, ImageListDataset]:
    """Clothing1M (Xiao et al., CVPR 2015) in its official layout, as lazy datasets.

    Parameters
    ----------
    root : str or Path
        Folder holding ``images/`` and the six list files (``noisy_label_kv.txt``, ``clean_label_kv.txt``,
        ``noisy_train_key_list.txt``, ``clean_train_key_list.txt``, ``clean_val_key_list.txt``,
        ``clean_test_key_list.txt``); ``*_kv.txt`` lines are ``images/0/00/xxx.jpg 4``.
    image_size, resize : int, default=224, 256
        Shorter side resized to ``resize``, then a centered ``image_size`` square.
    **options
        Passed to :class:`ImageListDataset` (``as_tensor``, ``transform``, ``mode``).

    Returns
    -------
    dict of str to ImageListDataset
        ``noisy_train`` (about 1M images, noisy labels), ``clean_train`` (47,570), ``val`` (14,313) and
        ``test`` (10,526), the last three with clean labels; 14 classes :data:`CLOTHING1M_CLASSES`.

    Raises
    ------
    FileNotFoundError
        A list file or the first image of a list is missing.
    ValueError
        Malformed lines, keys without a label, or labels outside ``[0, 14)``.
    """
    root = Path(root).expanduser()
    _require(root, _CLOTHING1M_FILES, "Clothing1M", "Clothing1M is distributed by its authors on request.")
    noisy_kv, clean_kv = (dict(_read_pairs(root / f)) for f in ("noisy_label_kv.txt", "clean_label_kv.txt"))
    options.update(image_size=image_size, resize=resize)
    splits = {
        "noisy_train": ("noisy_train_key_list.txt", noisy_kv, "noisy_label_kv.txt"),
        "clean_train": ("clean_train_key_list.txt", clean_kv, "clean_label_kv.txt"),
        "val": ("clean_val_key_list.txt", clean_kv, "clean_label_kv.txt"),
        "test": ("clean_test_key_list.txt", clean_kv, "clean_label_kv.txt"),
    }
    return {
        split: _labelled(root, keys, kv, kv_file, name=f"clothing1m-{split}", **options)
        for split, (keys, kv, kv_file) in splits.items()
    }


# ----------------------------------------------------------------------------------------------------
# WebVision 1.0, mini (first 50 classes, Google images)
# ----------------------------------------------------------------------------------------------------


def _webvision_classes(root: Path, num_classes: int) -> tuple[str, ...]:
    synsets = root / "info" / "synsets.txt"
    if not synsets.is_file():
        return tuple(str(c) for c in range(num_classes))
    lines = _read_keys(synsets)[:num_classes]
    if len(lines) < num_classes:
        raise ValueError(f"{synsets} lists {len(lines)} classes, fewer than num_classes={num_classes}.")
    return tuple(lines)


def _list_split(
    list_file: Path, image_dir: Path, num_classes: int, classes, name: str, **options
) -> ImageListDataset:
    pairs = [(p, y) for p, y in _read_pairs(list_file) if y < num_classes]
    if not pairs:
        raise ValueError(f"{list_file} lists no image with a label below {num_classes}.")
    check_labels([y for _, y in pairs], num_classes, name=f"labels in {list_file}")
    dataset = ImageListDataset(
        [image_dir / p for p, _ in pairs], [y for _, y in pairs], classes, name=name, **options
    )
    _check_first_exists(dataset.paths, str(list_file))
    return dataset


def load_webvision_mini(
    root: str | Path,
    *,
    num_classes: int = 50,
    image_size: int | None = 224,
    resize: int | None = 256,
    imagenet_val: str | Path | None = None,
    **options,
) -> dict[str, ImageListDataset]:
    """WebVision 1.0 (Li et al., 2017), first ``num_classes`` classes of the Google subset, as lazy datasets.

    The "mini" WebVision protocol of most noisy-label papers (DivideMix and after): 50 classes, Google
    images only, evaluated on the WebVision validation images and on ImageNet's validation images of the
    same classes.

    Parameters
    ----------
    root : str or Path
        Folder holding ``info/train_filelist_google.txt`` (lines ``google/q0001/xxx.jpg 0``, paths relative
        to ``root``), ``info/val_filelist.txt`` (lines ``xxx.jpg 0``, images in ``val_images_256/``) and
        optionally ``info/synsets.txt`` for class names.
    num_classes : int, default=50
        Keep the images with labels below this.
    image_size, resize : int, default=224, 256
        Shorter side resized to ``resize``, then a centered ``image_size`` square.
    imagenet_val : str or Path, optional
        A list file of ILSVRC2012 validation images, lines ``<path> <label>`` with paths relative to the
        list's folder and labels in WebVision's (= ImageNet's) class order; adds the ``imagenet_val`` split.
    **options
        Passed to :class:`ImageListDataset`.

    Returns
    -------
    dict of str to ImageListDataset
        ``train`` (noisy web labels), ``val``, and ``imagenet_val`` when given.

    Raises
    ------
    FileNotFoundError
        A list file or the first image of a list is missing.
    ValueError
        Malformed lines or negative labels.
    """
    root = Path(root).expanduser()
    files = ("info/train_filelist_google.txt", "info/val_filelist.txt")
    _require(
        root,
        files,
        "WebVision 1.0",
        "Get WebVision 1.0 (resized images) from https://data.vision.ee.ethz.ch/cvl/webvision/.",
    )
    classes = _webvision_classes(root, num_classes)
    options.update(image_size=image_size, resize=resize)
    splits = {
        "train": _list_split(root / files[0], root, num_classes, classes, "webvision-train", **options),
        "val": _list_split(
            root / files[1], root / "val_images_256", num_classes, classes, "webvision-val", **options
        ),
    }
    if imagenet_val is not None:
        listing = Path(imagenet_val).expanduser()
        if not listing.is_file():
            raise FileNotFoundError(f"no ImageNet validation list at {listing}.")
        splits["imagenet_val"] = _list_split(
            listing, listing.parent, num_classes, classes, "imagenet-val", **options
        )
    return splits


# ----------------------------------------------------------------------------------------------------
# Generic folders and CSV lists
# ----------------------------------------------------------------------------------------------------


def load_image_folder(
    root: str | Path,
    *,
    classes: Sequence[str] | None = None,
    extensions: Sequence[str] = IMAGE_EXTENSIONS,
    **options,
) -> ImageListDataset:
    """Images stored as ``root/<class name>/<file>``; classes sorted by name, files sorted within a class.

    Parameters
    ----------
    root : str or Path
        One subfolder per class.
    classes : sequence of str, optional
        Use these class names (and this label order) instead of all subfolders, e.g. to give a test
        folder the training set's labels.
    extensions : sequence of str
        File suffixes counted as images (case-insensitive).
    **options
        Passed to :class:`ImageListDataset` (``image_size``, ``resize``, ``mode``, ...).

    Raises
    ------
    FileNotFoundError
        ``root`` or a requested class folder does not exist, or there are no images.
    ValueError
        Fewer than two classes.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"no image folder at {root}.")
    found = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    classes = tuple(classes) if classes is not None else tuple(found)
    absent = [c for c in classes if c not in found]
    if absent:
        raise FileNotFoundError(f"{root} has no folder for class(es) {absent}.")
    suffixes = {e.lower() for e in extensions}
    paths, labels = [], []
    for label, name in enumerate(classes):
        files = sorted(p for p in (root / name).iterdir() if p.is_file() and p.suffix.lower() in suffixes)
        paths += files
        labels += [label] * len(files)
    if not paths:
        raise FileNotFoundError(
            f"{root} holds no images ({', '.join(sorted(suffixes))}) in class subfolders."
        )
    options.setdefault("name", root.name)
    return ImageListDataset(paths, labels, classes, **options)


_HEADER_WORDS = {
    "path",
    "file",
    "filename",
    "filepath",
    "image",
    "img",
    "label",
    "labels",
    "class",
    "target",
    "y",
}


def load_image_csv(path: str | Path, *, classes: Sequence[str] | None = None, **options) -> ImageListDataset:
    """Images listed in a CSV file of ``path,label`` rows (a header row is optional).

    Parameters
    ----------
    path : str or Path
        The CSV. Image paths are relative to its folder (absolute paths are kept). Labels are integers, or
        class names mapped to indices in sorted order (see the result's ``classes``).
    classes : sequence of str, optional
        Class names in label order; fixes the mapping of names (or names integer labels).
    **options
        Passed to :class:`ImageListDataset` (``image_size``, ``resize``, ``mode``, ...).

    Raises
    ------
    FileNotFoundError
        No CSV at ``path``.
    ValueError
        A row without exactly two fields, no rows, or labels out of range.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"no CSV file at {path}.")
    with open(path, newline="", encoding="utf-8") as f:
        rows = [row for row in csv.reader(f) if row and any(cell.strip() for cell in row)]
    if (
        rows
        and {cell.strip().lower() for cell in rows[0]} & _HEADER_WORDS
        and not (path.parent / rows[0][0]).is_file()
    ):
        rows = rows[1:]
    if not rows:
        raise ValueError(f"{path} lists no images.")
    for number, row in enumerate(rows, 1):
        if len(row) != 2:
            raise ValueError(f"{path}: row {number} has {len(row)} fields, expected 'path,label': {row}.")
    labels, names = encode_labels(np.array([row[1].strip() for row in rows]), classes)
    paths = [path.parent / row[0].strip() for row in rows]
    options.setdefault("name", path.stem)
    return ImageListDataset(paths, labels, names, **options)
