"""MNIST from the official idx files (``train-images-idx3-ubyte.gz`` and friends).

The idx format is a 4-byte magic number (two zero bytes, a type code, the number of dimensions), one
big-endian int32 per dimension, then the raw values. :func:`read_idx` checks all of it against the file
size, so a truncated or mislabelled file fails with its name instead of producing garbage images.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from .._validation import check_labels, read_user_file
from .base import ArrayDataset, DataBundle
from .download import download_file, missing_files_error

__all__ = ["MNIST_URL", "MNIST_FILES", "read_idx", "load_mnist"]

MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
#: File name -> published MD5.
MNIST_FILES = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}

# idx type code -> numpy dtype (values are big-endian in the file).
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _read_bytes(path: Path) -> bytes:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            return f.read()
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise ValueError(f"cannot read {path}: corrupt or truncated gzip ({err}).") from err


def read_idx(path: str | Path, *, ndim: int | None = None) -> np.ndarray:
    """Read an idx file (optionally gzipped) into a native-endian array.

    Parameters
    ----------
    path : str or Path
        The file; ``.gz`` files are decompressed.
    ndim : int, optional
        The number of dimensions the file must have (3 for images, 1 for labels).

    Returns
    -------
    ndarray
        Shape as stored in the header, e.g. (60000, 28, 28) uint8 for MNIST training images.

    Raises
    ------
    ValueError
        Bad magic number, unknown type code, unexpected number of dimensions, or a data size that does
        not match the header; the message names the file.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x-idx1-ubyte"
    >>> _ = p.write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9]))
    >>> read_idx(p).tolist()
    [7, 8, 9]
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no idx file at {path}.")
    raw = read_user_file(path, "idx file", _read_bytes)  # a damaged .gz: one line naming it
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise ValueError(f"{path} is not an idx file: bad magic number {raw[:4].hex() or '(empty)'}.")
    dtype, dims = np.dtype(_IDX_TYPES[raw[2]]), raw[3]
    if ndim is not None and dims != ndim:
        raise ValueError(f"{path} has {dims} dimensions, expected {ndim}; is it the right file?")
    header = 4 + 4 * dims
    if len(raw) < header:
        raise ValueError(f"{path} is truncated inside its header.")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">i4", count=dims, offset=4))
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(
            f"{path}: header says shape {shape} ({expected} bytes of data) but the file holds "
            f"{len(raw) - header} bytes; the file is truncated or corrupt."
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def _locate(root: Path, download: bool) -> Path:
    for candidate in (root, root / "mnist", root / "MNIST" / "raw"):
        if all((candidate / f).is_file() for f in MNIST_FILES):
            return candidate
    if download:
        for name, md5 in MNIST_FILES.items():
            download_file(MNIST_URL + name, root, md5)
        return root
    raise missing_files_error("MNIST", root, [f for f in MNIST_FILES if not (root / f).is_file()], MNIST_URL)


def _split(folder: Path, prefix: str, expected: int | None, name: str) -> ArrayDataset:
    images = read_idx(folder / f"{prefix}-images-idx3-ubyte.gz", ndim=3)
    label_file = folder / f"{prefix}-labels-idx1-ubyte.gz"
    labels = check_labels(read_idx(label_file, ndim=1), 10, name=f"labels in {label_file}")
    if images.dtype != np.uint8 or images.shape[1:] != (28, 28):
        raise ValueError(
            f"{folder / prefix}-images: expected uint8 28x28 images, got {images.dtype} {images.shape}."
        )
    if len(images) != len(labels):
        raise ValueError(f"{folder}: {len(images)} {prefix} images but {len(labels)} labels.")
    if expected is not None and len(images) != expected:
        raise ValueError(f"{folder}: {len(images)} {prefix} images, expected {expected}; incomplete files?")
    classes = tuple(str(d) for d in range(10))
    return ArrayDataset(images[..., None], labels, classes, name=name)


def load_mnist(root: str | Path, *, download: bool = False, check_sizes: bool = True) -> DataBundle:
    """Load MNIST from the four official ``*-ubyte.gz`` files.

    Parameters
    ----------
    root : str or Path
        Folder holding the files (also looked for in ``root/mnist`` and ``root/MNIST/raw``).
    download : bool, default=False
        Fetch and verify the official files into ``root`` if they are missing.
    check_sizes : bool, default=True
        Require the official sizes (60,000 training and 10,000 test images).

    Returns
    -------
    DataBundle
        ``train``: images (60000, 28, 28, 1) uint8, ``test``: (10000, 28, 28, 1); labels int64 in
        ``[0, 10)``; classes ``"0"`` .. ``"9"``.

    Raises
    ------
    FileNotFoundError
        Files missing and ``download=False``; the message says where it looked.
    ValueError
        A corrupt or truncated file, a bad header, mismatched counts or labels outside ``[0, 10)``.
    ConnectionError
        ``download=True`` while offline.
    """
    folder = _locate(Path(root).expanduser(), download)
    return DataBundle(
        train=_split(folder, "train", 60000 if check_sizes else None, "mnist-train"),
        test=_split(folder, "t10k", 10000 if check_sizes else None, "mnist-test"),
    )
