"""What the engine trains and evaluates on: :class:`ExperimentData` (made by :mod:`.data`, :mod:`.lazy`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["ExperimentData"]


@dataclass
class ExperimentData:
    """Everything the engine trains and evaluates on, already on the device.

    Images are kept as uint8 NHWC (prepared per batch); features as standardised float32.
    ``train_clean_y`` is known for synthetic noise and CIFAR-N (None for real noisy data sets).
    """

    train_x: torch.Tensor
    train_y: torch.Tensor  # the noisy labels the method sees
    train_clean_y: torch.Tensor | None
    meta_x: torch.Tensor | None
    meta_y: torch.Tensor | None
    test_x: torch.Tensor | None
    test_y: torch.Tensor | None
    classes: tuple[str, ...]
    is_image: bool
    mean: torch.Tensor | None  # per-channel pixel mean/std in [0, 1] units (images)
    std: torch.Tensor | None
    noise_record: dict
    train_index: np.ndarray  # positions in the data set's whole training set (before train_subset)
    meta_index: np.ndarray
    # rows of that whole training set (per-sample files such as DMLP's features have one per row); None:
    # the training and meta samples are all of it
    source_size: int | None = None
    feature_mean: np.ndarray | None = None  # the standardisation applied to features (to apply to new inputs)
    feature_std: np.ndarray | None = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """(C, H, W) for images, (D,) for features."""
        if self.is_image:
            _, h, w, c = self.train_x.shape
            return (c, h, w)
        return (self.train_x.shape[1],)
