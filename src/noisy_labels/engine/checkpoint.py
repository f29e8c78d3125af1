"""Atomic checkpoints and run directories.

A checkpoint is written to a temporary file in the same folder and renamed over the old one, so a run
killed at any moment leaves either the previous checkpoint or the new one, never a torn file.
Checkpoints hold only tensors and plain Python values and are read with ``weights_only=True``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch

# re-exported: engine.run and tests/crash_run.py use them from here
from .._files import CHECKPOINT, atomic_write_bytes


def save_checkpoint(run_dir: Path, state: dict[str, Any]) -> None:
    atomic_write_bytes(run_dir / CHECKPOINT, lambda f: torch.save(state, f))


def load_checkpoint(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / CHECKPOINT
    if not path.exists():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a foreign or damaged file: say which
        raise ValueError(f"cannot read checkpoint {path}: {exc}") from exc


def write_json(path: Path, obj: Any) -> None:
    text = json.dumps(obj, indent=2, sort_keys=False)
    atomic_write_bytes(path, lambda f: f.write(text.encode()))


# Everything a run writes into its directory; --overwrite removes these and nothing else.
RUN_FILES = frozenset(
    {
        "config.yaml",
        "noise.json",
        "environment.json",
        "split.npz",
        "metrics.jsonl",
        CHECKPOINT,
        "summary.json",
        "cleanness.npy",
        "corrected_labels.npy",
    }
)
RUN_FOLDERS = frozenset({"tensorboard"})


def _is_run_entry(path: Path) -> bool:
    """A file or folder a run writes (with the temporary files of an interrupted atomic write)."""
    if path.is_symlink():
        return False
    if path.is_dir():
        return path.name in RUN_FOLDERS
    return path.name in RUN_FILES or (path.name.startswith(".") and path.name.endswith(".tmp"))


def check_run_dir(run_dir: Path, *, resume: bool, overwrite: bool) -> None:
    """Refuse, before anything is written or deleted, a ``run_dir`` this run may not use.

    A fresh run needs a missing or empty folder; ``overwrite`` also accepts a folder that is
    recognisably a run directory (only a run's own files, :data:`RUN_FILES`), never anything else;
    ``resume`` needs a run directory.
    """
    if resume:
        if not (run_dir / "config.yaml").is_file():
            raise FileNotFoundError(f"cannot resume: {run_dir} holds no run (no config.yaml).")
        return
    if run_dir.exists() and not run_dir.is_dir():
        raise FileExistsError(f"{run_dir} is a file, not a run directory.")
    if not run_dir.exists() or not any(run_dir.iterdir()):
        return
    if not overwrite:
        raise FileExistsError(
            f"run directory {run_dir} exists and is not empty; pass --overwrite to replace it or "
            "--resume to continue it."
        )
    foreign = sorted(p for p in run_dir.iterdir() if not _is_run_entry(p))
    if foreign:
        raise FileExistsError(
            f"--overwrite replaces only a run directory, and {run_dir} holds {foreign[0].name!r}, which no "
            "run writes; nothing was deleted. Choose another --out."
        )


def clear_run_dir(run_dir: Path) -> None:
    """Remove a run's own files from ``run_dir`` (after :func:`check_run_dir` allowed an overwrite)."""
    if not run_dir.is_dir():
        return
    for path in run_dir.iterdir():
        if _is_run_entry(path):
            shutil.rmtree(path) if path.is_dir() else path.unlink()
