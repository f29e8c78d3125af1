"""CIFAR-10N and CIFAR-100N: real human label noise for the CIFAR training sets.

The official files (``CIFAR-10_human.pt``, ``CIFAR-100_human.pt``) are torch zip archives holding a pickled
dict of numpy arrays, one label per training image in the original CIFAR order. They are read with
``torch.load(weights_only=True)`` and an allowlist of just numpy's array reconstruction, array and integer
dtype types; where that torch path is unavailable (older torch), the ``data.pkl`` member of the zip is read
with the restricted unpickler of :mod:`.download`. Either way a file cannot run code.

Reference: Wei et al., "Learning with Noisy Labels Revisited: A Study Using Real-World Human
Annotations", ICLR 2022.
"""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._validation import check_labels
from ._docstrings import F, fill_docstring
from .download import restricted_loads

__all__ = ["CIFAR10N_KEYS", "CIFAR100N_KEYS", "load_cifar10n", "load_cifar100n", "read_label_file"]

#: Official key -> our name, CIFAR-10N. ``worse_label`` is the "worst" set of the paper.
CIFAR10N_KEYS = {
    "clean_label": "clean",
    "aggre_label": "aggre",
    "random_label1": "random1",
    "random_label2": "random2",
    "random_label3": "random3",
    "worse_label": "worst",
}
#: Official key -> our name, CIFAR-100N (the coarse keys are optional).
CIFAR100N_KEYS = {
    "clean_label": "clean",
    "noisy_label": "noisy",
    "clean_coarse_label": "clean_coarse",
    "noisy_coarse_label": "noisy_coarse",
}
_NUM_TRAIN = 50000


def _torch_load(path: Path) -> dict:
    """``torch.load(weights_only=True)`` allowing numpy's array reconstruction and integer dtypes only."""
    reconstruct = np.ndarray.__reduce__(np.zeros(1))[0]
    int_dtypes = [type(np.dtype(t)) for t in ("i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8")]
    # Files written with numpy 1.x name the rebuilder numpy.core.multiarray._reconstruct; numpy 2 moved it.
    allow: list[Any] = [
        (reconstruct, "numpy.core.multiarray._reconstruct"),
        (reconstruct, "numpy._core.multiarray._reconstruct"),
        np.ndarray,
        np.dtype,
        *int_dtypes,
    ]
    with torch.serialization.safe_globals(allow):
        return torch.load(path, map_location="cpu", weights_only=True)


def _zip_pickle_load(path: Path) -> dict:
    """Read the pickled object of a torch zip archive with the restricted unpickler, without torch."""
    with zipfile.ZipFile(path) as archive:
        names = [n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
        if not names:
            raise ValueError(f"{path} is a zip but has no data.pkl member; is it a torch .pt file?")
        return restricted_loads(archive.read(names[0]), source=f"{path}:{names[0]}", encoding="utf-8")


def read_label_file(path: str | Path) -> dict[str, np.ndarray]:
    """Read a CIFAR-N style ``.pt`` file: a dict of label arrays, values as int64 arrays.

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        Not a torch zip archive, corrupt, references anything but numpy arrays, or not a dict.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no CIFAR-N label file at {path}.")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path} is not a torch zip archive (truncated, or saved in the legacy format).")
    try:
        obj = _torch_load(path)
    except (AttributeError, TypeError):  # torch without safe_globals / (object, name) entries
        obj = _zip_pickle_load(path)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(f"cannot read {path}: {err}") from err
    if not isinstance(obj, dict):
        raise ValueError(f"{path} holds a {type(obj).__name__}, expected a dict of label arrays.")
    return {str(k): np.asarray(v) for k, v in obj.items()}


@dataclass(frozen=True)
class _HumanLabelFile:
    """One official CIFAR-N file: its name, how its keys become our label sets, and what those are."""

    filename: str
    keys: dict[str, str]  # official key -> our name
    required: tuple[str, ...]  # the official keys it must have
    ranges: dict[str, int]  # our name -> number of classes
    sets_doc: str  # the label sets, as its loader's docstring describes them

    @property
    def dataset(self) -> str:
        return self.filename.removesuffix("_human.pt")  # "CIFAR-10"


_CIFAR10N = _HumanLabelFile(
    filename="CIFAR-10_human.pt",
    keys=CIFAR10N_KEYS,
    required=tuple(CIFAR10N_KEYS),
    ranges=dict.fromkeys(CIFAR10N_KEYS.values(), 10),
    sets_doc="``clean``, ``aggre`` (9.0% noisy), ``random1``/``random2``/``random3`` (about 17-18%),\n"
    "``worst`` (40.2%); all in ``[0, 10)``.",
)
_CIFAR100N = _HumanLabelFile(
    filename="CIFAR-100_human.pt",
    keys=CIFAR100N_KEYS,
    required=("clean_label", "noisy_label"),
    ranges={"clean": 100, "noisy": 100, "clean_coarse": 20, "noisy_coarse": 20},
    sets_doc="``clean`` and ``noisy`` (40.2% noisy) in ``[0, 100)``; ``clean_coarse`` and ``noisy_coarse``\n"
    "in ``[0, 20)`` when the file has them.",
)


def _convert(path: Path, raw: dict, spec: _HumanLabelFile) -> dict:
    missing = [k for k in spec.required if k not in raw]
    if missing:
        raise ValueError(
            f"{path} lacks the key(s) {missing}; found {sorted(raw)}. Is it the right CIFAR-N file?"
        )
    out = {}
    for key, name in spec.keys.items():
        if key not in raw:
            continue
        labels = check_labels(raw[key], spec.ranges[name], name=f"'{key}' of {path}")
        if len(labels) != _NUM_TRAIN:
            raise ValueError(
                f"'{key}' of {path} has {len(labels)} labels, expected {_NUM_TRAIN} (one per training image)."
            )
        out[name] = labels
    return out


def _resolve(path: str | Path, filename: str) -> Path:
    path = Path(path).expanduser()
    if path.is_dir():
        for candidate in (path / filename, path / "cifar-n" / filename):
            if candidate.is_file():
                return candidate
        raise FileNotFoundError(
            f"{filename} not found in {path} or {path / 'cifar-n'}; get it from "
            "https://github.com/UCSC-REAL/cifar-10-100n (data/) and place it there."
        )
    return path


def _load(spec: _HumanLabelFile, path: str | Path) -> dict[str, np.ndarray]:
    resolved = _resolve(path, spec.filename)
    return _convert(resolved, read_label_file(resolved), spec)


_LOADER_DOC = """The {dataset}N human label sets, aligned with the {dataset} training set's original order.

    Parameters
    ----------
    path : str or Path
        ``{filename}``, or a folder holding it (directly or in ``cifar-n/``).

    Returns
    -------
    dict of str to ndarray of shape (50000,) int64
        {sets}

    Raises
    ------
    FileNotFoundError, ValueError
        Missing file, unreadable file, missing keys, wrong lengths or labels out of range.
    """


def _documented(spec: _HumanLabelFile) -> Callable[[F], F]:
    return fill_docstring(_LOADER_DOC, dataset=spec.dataset, filename=spec.filename, sets=spec.sets_doc)


@_documented(_CIFAR10N)
def load_cifar10n(path: str | Path) -> dict[str, np.ndarray]:
    return _load(_CIFAR10N, path)


@_documented(_CIFAR100N)
def load_cifar100n(path: str | Path) -> dict[str, np.ndarray]:
    return _load(_CIFAR100N, path)
