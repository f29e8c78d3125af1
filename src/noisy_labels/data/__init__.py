"""Data sets, noise protocols and the clean meta split.

In-memory data sets are :class:`ArrayDataset` arrays grouped in a :class:`DataBundle`; large image sets
are read lazily (:class:`ImageListDataset`). :func:`load_dataset` is the single entry point by name.
"""

from .base import ArrayDataset, DataBundle
from .cifar import (
    CIFAR10_CLASSES,
    CIFAR100_CLASSES,
    CIFAR100_FINE_TO_COARSE,
    CIFAR100_SUPERCLASSES,
    cifar100_coarse_labels,
    load_cifar10,
    load_cifar100,
)
from .cifar_n import load_cifar10n, load_cifar100n
from .digits import load_digits
from .features import load_cifar10_features, load_features
from .lazy import (
    CLOTHING1M_CLASSES,
    ImageListDataset,
    load_clothing1m,
    load_image_csv,
    load_image_folder,
    load_webvision_mini,
    read_image,
    to_array_dataset,
)
from .mnist import load_mnist
from .noise import PROTOCOLS, NoiseResult, apply_noise, empirical_transition, transition_matrix
from .registry import KNOWN_DATASETS, default_data_root, describe, load_dataset
from .split import NoisySplit, clean_meta_split, make_noisy_split

__all__ = [
    "ArrayDataset",
    "DataBundle",
    "CIFAR10_CLASSES",
    "CIFAR100_CLASSES",
    "CIFAR100_FINE_TO_COARSE",
    "CIFAR100_SUPERCLASSES",
    "cifar100_coarse_labels",
    "load_cifar10",
    "load_cifar100",
    "load_cifar10n",
    "load_cifar100n",
    "load_digits",
    "load_cifar10_features",
    "load_features",
    "CLOTHING1M_CLASSES",
    "ImageListDataset",
    "load_clothing1m",
    "load_image_csv",
    "load_image_folder",
    "load_webvision_mini",
    "read_image",
    "to_array_dataset",
    "load_mnist",
    "PROTOCOLS",
    "NoiseResult",
    "apply_noise",
    "empirical_transition",
    "transition_matrix",
    "KNOWN_DATASETS",
    "default_data_root",
    "describe",
    "load_dataset",
    "NoisySplit",
    "clean_meta_split",
    "make_noisy_split",
]
