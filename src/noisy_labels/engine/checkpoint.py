"""Atomic checkpoints and run directories.

A checkpoint is written to a temporary file in the same folder and renamed over the old one, so a run
killed at any moment leaves either the previous checkpoint or the new one, never a torn file.
Checkpoints hold only tensors and plain Python values and are read with ``weights_only=True``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

CHECKPOINT = "checkpoint.pt"


def atomic_write_bytes(path: Path, write) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, fsync it, then rename it to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


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


def prepare_run_dir(run_dir: Path, *, resume: bool, overwrite: bool) -> None:
    """Create ``run_dir``; refuse to touch an existing non-empty one unless resuming or overwriting."""
    if resume:
        if not (run_dir / "config.yaml").exists():
            raise FileNotFoundError(f"cannot resume: {run_dir} holds no run (no config.yaml).")
        return
    if run_dir.exists() and any(run_dir.iterdir()):
        if not overwrite:
            raise FileExistsError(
                f"run directory {run_dir} exists and is not empty; pass --overwrite to "
                "replace it or --resume to continue it."
            )
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
