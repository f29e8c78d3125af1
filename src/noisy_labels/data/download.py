"""Getting the official files onto disk and reading their containers safely.

Every loader follows the same pattern: look for the official files under ``root``; if they are missing,
fail with a message that says where we looked and how to fetch them (``download=True``, or ``--download``
on the command line); when asked to download, fetch from the official URL, check the MD5 published for it,
and extract without letting an archive write outside its destination.

The official CIFAR batches (and the CIFAR-N ``.pt`` files) are pickles. :func:`restricted_loads` reads them
with an allowlist of the few globals those files use (numpy's array reconstruction and ``_codecs.encode``),
so a file can never make the loader import or call anything else.
"""

from __future__ import annotations

import codecs
import gzip
import hashlib
import io
import os
import pickle
import shutil
import tarfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np

__all__ = [
    "md5sum",
    "check_md5",
    "fetch_url",
    "download_file",
    "extract_archive",
    "missing_files_error",
    "restricted_loads",
    "restricted_load",
]


# ----------------------------------------------------------------------------------------------------
# Checksums and fetching
# ----------------------------------------------------------------------------------------------------


def md5sum(path: str | Path, *, chunk_size: int = 1 << 20) -> str:
    """The hexadecimal MD5 digest of a file, read in chunks so large archives need little memory."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_md5(path: str | Path, expected: str) -> None:
    """Check that the file at ``path`` has MD5 ``expected``.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValueError
        The checksum differs (a truncated download or a different file).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"cannot verify {path}: no such file.")
    actual = md5sum(path)
    if actual != expected.lower():
        raise ValueError(
            f"MD5 mismatch for {path}: expected {expected}, got {actual}. The file is incomplete or not the "
            "official one; delete it and download again."
        )


def fetch_url(url: str, dest: Path) -> None:
    """Copy ``url`` to ``dest``. The only function that touches the network (tests replace it).

    Raises
    ------
    ConnectionError
        The URL could not be read (offline, proxy, server down).
    """
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(dest, "wb") as out:
            shutil.copyfileobj(response, out)
    except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
        raise ConnectionError(
            f"could not download {url} ({err}). If this machine is offline, download the file elsewhere "
            f"and place it at {dest}."
        ) from err


def download_file(url: str, root: str | Path, md5: str, *, filename: str | None = None) -> Path:
    """Download ``url`` into ``root`` unless a file with the right MD5 is already there.

    The download goes to a ``.part`` file that is renamed only after its checksum matched, so an
    interrupted download never leaves a file that looks complete.

    Parameters
    ----------
    url : str
        The official address.
    root : str or Path
        Destination folder (created if needed).
    md5 : str
        The published MD5 of the file.
    filename : str, optional
        Name to save under; default the last part of the URL.

    Returns
    -------
    Path
        The verified file.

    Raises
    ------
    ConnectionError
        Offline or the server did not answer.
    ValueError
        The downloaded file has the wrong checksum (it is deleted).
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    target = root / (filename or url.rsplit("/", 1)[-1])
    if target.is_file() and md5sum(target) == md5.lower():
        return target
    part = target.with_name(target.name + ".part")
    fetch_url(url, part)
    try:
        check_md5(part, md5)
    except ValueError:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, target)
    return target


# ----------------------------------------------------------------------------------------------------
# Safe extraction
# ----------------------------------------------------------------------------------------------------


def _check_member(member: tarfile.TarInfo, dest: Path, archive: Path) -> None:
    # Only plain files and folders, and only inside dest: links, devices and "../" names are how a
    # malicious archive writes elsewhere.
    if not (member.isfile() or member.isdir()):
        raise ValueError(f"{archive}: refusing to extract {member.name!r} (not a regular file or folder).")
    target = (dest / member.name).resolve()
    if member.name.startswith(("/", "\\")) or not target.is_relative_to(dest):
        raise ValueError(f"{archive}: refusing to extract {member.name!r}, which points outside {dest}.")


def extract_archive(archive: str | Path, dest: str | Path) -> Path:
    """Extract a ``.tar``/``.tar.gz`` archive into ``dest``, refusing any member that would escape it.

    Raises
    ------
    ValueError
        A member is a link or device, has an absolute name, or contains ``..`` leading outside ``dest``;
        or the archive is corrupt. Nothing is extracted in that case.
    """
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    dest = dest.resolve()
    try:
        with tarfile.open(archive) as tar:
            members = tar.getmembers()
            for member in members:
                _check_member(member, dest, archive)
            if hasattr(tarfile, "data_filter"):
                tar.extractall(dest, members=members, filter="data")
            else:  # pragma: no cover - Python < 3.11.4 without extraction filters
                tar.extractall(dest, members=members)
    except (tarfile.TarError, EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise ValueError(
            f"cannot extract {archive}: {err}. The archive is corrupt; delete it and retry."
        ) from err
    return dest


def missing_files_error(
    what: str, where: Path, missing: Iterable[str], url: str | None = None, *, hint: str | None = None
) -> FileNotFoundError:
    """The error raised when a data set is not on disk: where we looked, what is missing, how to get it."""
    missing = list(missing)
    shown = ", ".join(missing[:6]) + (f", ... ({len(missing)} files)" if len(missing) > 6 else "")
    if hint is None and url:
        hint = (
            f"Pass download=True (command line: --download) to fetch it from {url}, or put the files there."
        )
    hint = hint or "Place the official files there."
    return FileNotFoundError(f"{what} not found in {where} (missing: {shown}). {hint}")


# ----------------------------------------------------------------------------------------------------
# Restricted unpickling
# ----------------------------------------------------------------------------------------------------

# numpy 1.x pickles name the array rebuilder numpy.core.multiarray._reconstruct, numpy 2.x names it
# numpy._core.multiarray._reconstruct; take the function from numpy itself instead of importing either.
_NP_RECONSTRUCT = np.ndarray.__reduce__(np.zeros(1))[0]

_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _NP_RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _NP_RECONSTRUCT,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    # Protocol-2 pickles written by Python 3 store bytes as _codecs.encode(text, "latin1").
    ("_codecs", "encode"): codecs.encode,
}


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that builds only builtin containers, str/bytes/numbers and numpy arrays."""

    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"global {module}.{name} is not allowed: data files may hold only dicts, lists, "
                "strings, numbers and numpy arrays"
            ) from None

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("persistent references (e.g. torch tensors) are not supported here")


def restricted_loads(data: bytes, *, source: str | Path = "<bytes>", encoding: str = "latin1"):
    """Unpickle ``data`` allowing only builtin containers, str, bytes, numbers and numpy arrays.

    ``encoding="latin1"`` reads Python 2 pickles (the official CIFAR files) including their numpy arrays.

    Raises
    ------
    ValueError
        The pickle is truncated or corrupt, or it references anything outside the allowlist; the message
        names ``source``.
    """
    try:
        return _RestrictedUnpickler(io.BytesIO(data), encoding=encoding).load()
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        IndexError,
        KeyError,
        AttributeError,
    ) as err:
        raise ValueError(
            f"cannot read {source}: not a valid data pickle ({type(err).__name__}: {err})."
        ) from err


def restricted_load(path: str | Path, *, encoding: str = "latin1"):
    """:func:`restricted_loads` on the contents of the file at ``path``."""
    path = Path(path)
    return restricted_loads(path.read_bytes(), source=path, encoding=encoding)
