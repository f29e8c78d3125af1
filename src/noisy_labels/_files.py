"""File writes: atomic ones (a killed process leaves the old file or the new one, never a torn one), and
figures."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["CHECKPOINT", "atomic_write_bytes", "save_figure"]

# A run directory's checkpoint: engine.checkpoint writes it, models.init reads a network from it.
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


def save_figure(fig: Figure, path: str | Path, *, dpi: int) -> Path:
    """Lay out ``fig``, write it to ``path`` (making its folder) and close it; returns the path."""
    import matplotlib.pyplot as plt  # an optional dependency: imported only where a figure is drawn

    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
