"""Run a backbone over a data set in batches and save the features as a feature file.

A feature file is an ``.npz`` that :func:`noisy_labels.data.features.load_features` reads back as a
data set (``x``, ``y``, ``x_test``, ``y_test``, ``classes``), so its features can be trained on
(``noisy-labels run --set dataset=FEATURES.npz``), purified (``noisy-labels purify``) or given to the
``dmlp`` method (``--set dmlp.features=FEATURES.npz``). The ``noisy-labels features`` command, which also
reads finished run directories, is :func:`noisy_labels.engine.features.make_feature_file`.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from .._files import atomic_write_bytes
from .simclr import image_stats

__all__ = ["extract_features", "save_feature_file"]


@torch.no_grad()
def extract_features(
    encoder: nn.Module,
    x: Tensor | np.ndarray,
    *,
    mean: Tensor | None = None,
    std: Tensor | None = None,
    batch_size: int = 512,
    device: torch.device | str = "cpu",
    progress: bool = False,
    desc: str = "features",
) -> np.ndarray:
    """Features ``encoder(x)`` for a whole set, in batches, as float32 numpy.

    Parameters
    ----------
    encoder : nn.Module
        Maps a prepared batch to (B, D) features; switched to eval mode.
    x : Tensor or ndarray
        uint8 NHWC images (normalised per channel with ``mean``/``std`` in [0, 1] units, as the engine
        prepares its test view) or float (N, D) vectors (passed as they are).
    mean, std : Tensor of shape (C,), optional
        Image normalisation; default: the set's own per-channel statistics.
    batch_size : int, default=512
    device : torch.device or str, default='cpu'
    progress : bool, default=False
        A tqdm bar over batches.
    desc : str
        The bar's label.

    Returns
    -------
    ndarray of shape (N, D) float32
    """
    x = torch.as_tensor(x)
    is_image = x.ndim == 4 and x.dtype == torch.uint8
    if is_image and (mean is None or std is None):
        mean, std = image_stats(x)
    encoder = encoder.to(device).eval()
    out = []
    for start in tqdm(range(0, len(x), batch_size), desc=desc, disable=not progress, leave=False):
        batch = x[start : start + batch_size].to(device)
        if is_image:
            assert mean is not None and std is not None  # computed above when not given
            batch = batch.permute(0, 3, 1, 2).float() / 255.0
            batch = (batch - mean.to(device).view(1, -1, 1, 1)) / std.to(device).view(1, -1, 1, 1)
        else:
            batch = batch.float()
        out.append(encoder(batch).float().flatten(1).cpu())
    return torch.cat(out).numpy()


def save_feature_file(path: str | Path, arrays: dict[str, np.ndarray]) -> Path:
    """Write an ``.npz`` of plain arrays atomically (a killed run never leaves a torn cache file)."""
    path = Path(path)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]  # numpy's stub types **kwds as allow_pickle's bool
    atomic_write_bytes(path, lambda f: f.write(buffer.getvalue()))
    return path
