"""In-memory data containers.

A data set that fits in memory is plain arrays: ``x`` (uint8 images ``(N, H, W, C)`` or float features
``(N, D)``), integer labels ``y`` ``(N,)`` and the class names. The engine moves them to the device once
and slices batches from there, so no DataLoader sits between the arrays and the model. Data sets too
large for memory (Clothing1M, WebVision, image folders) are read lazily by :mod:`noisy_labels.data.lazy`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from .._validation import check_features, check_labels, check_same_length


@dataclass(frozen=True)
class ArrayDataset:
    """Features or images with integer labels, all in memory.

    Parameters
    ----------
    x : ndarray of shape (N, H, W, C) uint8, or (N, D) float
        Images (channels last) or feature vectors.
    y : ndarray of shape (N,) int64
        Labels in ``[0, len(classes))``.
    classes : tuple of str
        Class names, index = label.
    name : str
        A short name used in reports.
    """

    x: np.ndarray
    y: np.ndarray
    classes: tuple[str, ...]
    name: str = ""

    def __post_init__(self) -> None:
        x = check_features(self.x, name=f"{self.name or 'dataset'} x", ndim=(2, 4))
        y = check_labels(self.y, len(self.classes), name=f"{self.name or 'dataset'} labels")
        check_same_length(x=x, y=y)
        object.__setattr__(self, "x", x)
        object.__setattr__(self, "y", y)
        object.__setattr__(self, "classes", tuple(str(c) for c in self.classes))

    def __len__(self) -> int:
        return len(self.y)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def is_image(self) -> bool:
        return self.x.ndim == 4

    def subset(self, index: np.ndarray) -> ArrayDataset:
        """The samples at ``index`` (an integer array or boolean mask)."""
        return replace(self, x=self.x[index], y=self.y[index])

    def with_labels(self, y: np.ndarray) -> ArrayDataset:
        """The same samples with other labels (e.g. noisy ones)."""
        return replace(self, y=y)


@dataclass(frozen=True)
class DataBundle:
    """A training set, a test set, and optional extra label sets aligned with the training set.

    ``label_sets`` holds alternative training labels such as the CIFAR-10N human annotations
    (``{"worst": ndarray, "aggre": ...}``), all in the training set's order.
    """

    train: ArrayDataset
    test: ArrayDataset | None = None
    label_sets: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return self.train.num_classes
