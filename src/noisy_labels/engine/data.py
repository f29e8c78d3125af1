"""From a config to device tensors: load the data set, inject noise, carve the meta set, normalise."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..config import Config, ConfigError


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
    train_index: np.ndarray  # positions in the original training set
    meta_index: np.ndarray

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


ASYMMETRIC_STRUCTURE = {
    "cifar10": "cifar10",
    "cifar10_features": "cifar10",
    "cifar100": "cifar100",
    "mnist": "mnist",
}


def noise_options(cfg: Config, bundle) -> tuple[str, float, dict]:
    """The protocol, rate and extra parameters ``make_noisy_split`` needs for this config."""
    protocol, rate, params = cfg.noise.protocol, cfg.noise.rate, {}
    if protocol == "none":
        return "symmetric", 0.0, params
    if protocol == "human":
        if not cfg.noise.label_set:
            raise ConfigError(
                f"noise.protocol=human needs noise.label_set (one of {sorted(bundle.label_sets)})."
            )
        if cfg.noise.label_set not in bundle.label_sets:
            raise ConfigError(
                f"noise.label_set={cfg.noise.label_set!r} is not in this data set; "
                f"available: {sorted(bundle.label_sets) or 'none'}."
            )
        params["human_labels"] = bundle.label_sets[cfg.noise.label_set]
    if protocol in ("asymmetric",):
        structure = cfg.noise.dataset or ASYMMETRIC_STRUCTURE.get(cfg.dataset)
        if structure is None:
            raise ConfigError(
                "noise.protocol=asymmetric needs noise.dataset=cifar10|cifar100|mnist for this data set."
            )
        params["dataset"] = structure
    return protocol, rate, params


def stratified_subset(bundle, size: int, *, seed: int):
    """``size`` training samples, the same fraction of every class, in original order (label sets follow)."""
    from dataclasses import replace

    n = len(bundle.train)
    if size >= n:
        return bundle
    rng = np.random.default_rng(seed)
    keep = []
    for c in range(bundle.num_classes):
        members = np.flatnonzero(bundle.train.y == c)
        keep.append(rng.choice(members, size=max(1, round(len(members) * size / n)), replace=False))
    index = np.sort(np.concatenate(keep))
    label_sets = {k: v[index] for k, v in bundle.label_sets.items()}
    return replace(bundle, train=bundle.train.subset(index), label_sets=label_sets)


def prepare_data(cfg: Config, device: torch.device, *, corrupt_meta: bool) -> ExperimentData:
    from ..data.registry import load_dataset
    from ..data.split import make_noisy_split
    from .lazy import LAZY_DATASETS, prepare_lazy_data

    if cfg.dataset in LAZY_DATASETS:  # Clothing1M, WebVision: images decoded per batch
        return prepare_lazy_data(cfg, device)

    bundle = load_dataset(cfg.dataset, cfg.root, download=cfg.download, **cfg.dataset_options)
    if cfg.train_subset is not None:
        bundle = stratified_subset(bundle, cfg.train_subset, seed=cfg.seed)
    protocol, rate, params = noise_options(cfg, bundle)
    seed = cfg.seed if cfg.noise.seed is None else cfg.noise.seed
    split = make_noisy_split(
        bundle.train,
        meta_size=cfg.meta.size,
        protocol=protocol,
        rate=rate,
        seed=seed,
        corrupt_meta=corrupt_meta,
        **params,
    )
    is_image = bundle.train.is_image
    mean = std = None
    train_x = split.train.x
    meta_x = split.meta.x if split.meta is not None else None
    test_x = bundle.test.x if bundle.test is not None else None
    if is_image:
        pixels = train_x.reshape(-1, train_x.shape[-1]).astype(np.float64) / 255.0
        mean, std = pixels.mean(0), pixels.std(0) + 1e-8
    elif cfg.standardize_features:
        mu, sigma = train_x.mean(0, dtype=np.float64), train_x.std(0, dtype=np.float64) + 1e-6
        train_x, meta_x, test_x = (
            (a - mu) / sigma if a is not None else None for a in (train_x, meta_x, test_x)
        )

    def put(a, dtype=None):
        if a is None:
            return None
        t = torch.as_tensor(np.ascontiguousarray(a))
        t = t.to(dtype) if dtype is not None else (t.float() if t.is_floating_point() else t)
        return t.to(device)

    label = torch.long
    record = split.noise.to_dict()
    record["meta_corrupted"] = bool(corrupt_meta and split.meta is not None)
    return ExperimentData(
        train_x=put(train_x),
        train_y=put(split.train.y, label),
        train_clean_y=put(split.train_clean_labels, label),
        meta_x=put(meta_x),
        meta_y=put(split.meta.y, label) if split.meta is not None else None,
        test_x=put(test_x),
        test_y=put(bundle.test.y, label) if bundle.test is not None else None,
        classes=bundle.train.classes,
        is_image=is_image,
        mean=put(mean, torch.float32),
        std=put(std, torch.float32),
        noise_record=record,
        train_index=split.train_index,
        meta_index=split.meta_index,
    )
