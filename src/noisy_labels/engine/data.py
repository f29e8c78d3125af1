"""From a config or in-memory arrays to device tensors: load, inject noise, carve the meta set, normalise."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import torch

from .._validation import (
    check_features,
    check_labels,
    check_same_columns,
    check_same_length,
    infer_num_classes,
)
from ..config import Config, ConfigError
from ..data.noise import ASYMMETRIC_STRUCTURE
from ..data.registry import load_dataset
from ..data.split import make_noisy_split
from .experiment_data import ExperimentData
from .lazy import LAZY_DATASETS, prepare_lazy_data
from .smoke import smoke_split

__all__ = ["ExperimentData", "noise_options", "prepare_arrays", "prepare_data", "stratified_subset"]


def noise_options(cfg: Config, bundle) -> tuple[str, float, dict]:
    """The protocol, rate and extra parameters ``make_noisy_split`` needs for this config."""
    protocol, rate = cfg.noise.protocol, cfg.noise.rate
    params: dict[str, Any] = {}
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
    """``size`` training samples, the same fraction of every class, in original order (label sets follow),
    and their positions in the whole training set (None when ``size`` is all of it)."""
    n = len(bundle.train)
    if size > n:
        raise ValueError(
            f"train_subset={size} is larger than the training set ({n} samples); lower it or drop it."
        )
    if size == n:
        return bundle, None
    rng = np.random.default_rng(seed)
    keep = []
    for c in range(bundle.num_classes):
        members = np.flatnonzero(bundle.train.y == c)
        keep.append(rng.choice(members, size=max(1, round(len(members) * size / n)), replace=False))
    index = np.sort(np.concatenate(keep))
    label_sets = {k: v[index] for k, v in bundle.label_sets.items()}
    return replace(bundle, train=bundle.train.subset(index), label_sets=label_sets), index


def prepare_data(cfg: Config, device: torch.device, *, corrupt_meta: bool) -> ExperimentData:
    if cfg.dataset in LAZY_DATASETS:  # Clothing1M, WebVision: images decoded per batch
        return prepare_lazy_data(cfg, device)

    bundle = load_dataset(cfg.dataset, cfg.root, download=cfg.download, **cfg.dataset_options)
    source_size, source_index = len(bundle.train), None
    if cfg.train_subset is not None:
        bundle, source_index = stratified_subset(bundle, cfg.train_subset, seed=cfg.seed)
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
    record = split.noise.to_dict()
    record["meta_corrupted"] = bool(corrupt_meta and split.meta is not None)
    test = bundle.test
    if cfg.smoke:  # after the noise: the kept samples carry the labels the full run would give them
        split, test = smoke_split(split, test, seed=cfg.seed)
    data = _assemble(
        cfg,
        device,
        train_x=split.train.x,
        train_y=split.train.y,
        train_clean_y=split.train_clean_labels,
        meta_x=split.meta.x if split.meta is not None else None,
        meta_y=split.meta.y if split.meta is not None else None,
        test_x=test.x if test is not None else None,
        test_y=test.y if test is not None else None,
        classes=bundle.train.classes,
        noise_record=record,
        train_index=_in_source(split.train_index, source_index),
        meta_index=_in_source(split.meta_index, source_index),
    )
    return replace(data, source_size=source_size)


def _in_source(positions: np.ndarray, subset: np.ndarray | None) -> np.ndarray:
    """Positions in a ``train_subset`` as positions in the whole training set."""
    return positions if subset is None else subset[positions]


def prepare_arrays(
    cfg: Config,
    device: torch.device,
    x: np.ndarray,
    y: np.ndarray,
    *,
    x_clean: np.ndarray | None = None,
    y_clean: np.ndarray | None = None,
    x_test: np.ndarray | None = None,
    y_test: np.ndarray | None = None,
    true_y: np.ndarray | None = None,
    classes: tuple[str, ...] | None = None,
) -> ExperimentData:
    """:class:`ExperimentData` from in-memory arrays instead of a named data set (``cfg.dataset`` unused).

    ``x``/``y`` are the training samples with their given (noisy) labels, ``x_clean``/``y_clean`` the
    trusted set (the engine's meta set), ``true_y`` the true training labels when known (label metrics
    only). Labels are integers in ``[0, C)`` with ``C = len(classes)`` (default ``max label + 1``).
    Features are standardised with the training part's statistics (``cfg.standardize_features``), as
    :func:`prepare_data` does; images (uint8 NHWC) get per-channel statistics.

    Raises
    ------
    ValueError, TypeError
        From :mod:`noisy_labels._validation`: bad shapes, NaN features, labels out of range, length
        mismatches, or only one of ``x_clean``/``y_clean`` (or ``x_test``/``y_test``).
    """
    for a, b, names in ((x_clean, y_clean, "x_clean/y_clean"), (x_test, y_test, "x_test/y_test")):
        if (a is None) != (b is None):
            raise ValueError(f"give both or neither of {names}.")
    given = {"y": y, "y_clean": y_clean, "y_test": y_test, "true_y": true_y}
    k = infer_num_classes(None if classes is None else len(classes), **given)
    ys = {name: check_labels(v, k, name=name) for name, v in given.items() if v is not None}
    y = ys["y"]
    y_clean, y_test, true_y = (ys.get(name) for name in ("y_clean", "y_test", "true_y"))
    x = check_features(x, name="x", ndim=(2, 4))
    x_clean, x_test = (
        None if a is None else check_features(a, name=name, ndim=x.ndim)
        for a, name in ((x_clean, "x_clean"), (x_test, "x_test"))
    )
    check_same_columns(x=x, x_clean=x_clean, x_test=x_test)
    check_same_length(x=x, y=y, true_y=true_y)
    check_same_length(x_clean=x_clean, y_clean=y_clean)
    check_same_length(x_test=x_test, y_test=y_test)
    n, m = len(y), 0 if y_clean is None else len(y_clean)
    return _assemble(
        cfg,
        device,
        train_x=x,
        train_y=y,
        train_clean_y=true_y,
        meta_x=x_clean,
        meta_y=y_clean,
        test_x=x_test,
        test_y=y_test,
        classes=tuple(classes) if classes is not None else tuple(str(c) for c in range(k)),
        noise_record={},
        train_index=np.arange(n, dtype=np.int64),
        meta_index=np.arange(n, n + m, dtype=np.int64),
    )


def _assemble(
    cfg: Config,
    device: torch.device,
    *,
    train_x: np.ndarray,
    train_y: np.ndarray,
    train_clean_y: np.ndarray | None,
    meta_x: np.ndarray | None,
    meta_y: np.ndarray | None,
    test_x: np.ndarray | None,
    test_y: np.ndarray | None,
    classes: tuple[str, ...],
    noise_record: dict,
    train_index: np.ndarray,
    meta_index: np.ndarray,
) -> ExperimentData:
    """Normalisation statistics from the training part, then everything as tensors on ``device``."""
    is_image = train_x.ndim == 4
    mean = std = mu = sigma = None
    if is_image:
        pixels = train_x.reshape(-1, train_x.shape[-1]).astype(np.float64) / 255.0
        mean, std = pixels.mean(0), pixels.std(0) + 1e-8
    elif cfg.standardize_features:
        mu, sigma = train_x.mean(0, dtype=np.float64), train_x.std(0, dtype=np.float64) + 1e-6
        train_x = (train_x - mu) / sigma
        meta_x = None if meta_x is None else (meta_x - mu) / sigma
        test_x = None if test_x is None else (test_x - mu) / sigma

    def put(a, dtype=None):
        if a is None:
            return None
        t = torch.as_tensor(np.ascontiguousarray(a))
        t = t.to(dtype) if dtype is not None else (t.float() if t.is_floating_point() else t)
        return t.to(device)

    label = torch.long
    return ExperimentData(
        train_x=put(train_x),
        train_y=put(train_y, label),
        train_clean_y=put(train_clean_y, label),
        meta_x=put(meta_x),
        meta_y=put(meta_y, label),
        test_x=put(test_x),
        test_y=put(test_y, label),
        classes=classes,
        is_image=is_image,
        mean=put(mean, torch.float32),
        std=put(std, torch.float32),
        noise_record=noise_record,
        train_index=train_index,
        meta_index=meta_index,
        feature_mean=mu,
        feature_std=sigma,
    )
