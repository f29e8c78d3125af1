"""Smoke mode: every stage of a config for a few steps, to see that it runs before the real run.

``smoke: true`` (``noisy-labels run CONFIG --set smoke=true``) keeps everything a config builds (the
data set and its noise, the models, the method with its recipe, the views) and shortens only how long
each stage runs. All the caps are here, in :data:`SMOKE`:

* the loop (:func:`smoke_config`): at most ``batch_size`` samples a batch and ``batches_per_epoch``
  batches an epoch; every warm-up (a method parameter ``warmup_epochs``) at most one epoch, and one
  epoch after it, so that each method's own step (after its warm-up) runs too;
* the stages a method runs outside the loop (:func:`smoke_config`, through the method parameters named
  in :attr:`SmokeCaps.method_params`): DMLP's SimCLR (``simclr_epochs``, ``simclr_max_images``) and
  its purifier (``epochs``, ``exchange_every``, so an exchange of eq. 9 runs); trusted batches
  (``meta_batch_size``);
* the data (:func:`smoke_rows`, after the noise is drawn and the trusted set carved): a few training
  samples, two trusted samples per class (DMLP's purifier needs every class; EMLC's and MLC's selection
  holdout one of each on each side) and a few test samples, so that the passes over a whole set
  (DivideMix's GMM, the flywheel's E-steps, EMLC's clean-set selection, DMLP's feature extraction) and
  the evaluation are short.

The written ``config.yaml`` holds the capped loop and method parameters with ``smoke: true``; capping
again changes nothing, so a smoke run resumes as one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..config import Config
from ..data.base import ArrayDataset
from ..data.split import NoisySplit

__all__ = ["SMOKE", "SmokeCaps", "smoke_config", "smoke_rows", "smoke_split"]


@dataclass(frozen=True)
class SmokeCaps:
    """How much of each stage a smoke run keeps."""

    batch_size: int = 8
    batches_per_epoch: int = 2  # only where the config fixes a count (Clothing1M): else train_samples
    warmup_epochs: int = 1
    train_samples: int = 16  # 2 batches of 8 in the usual order: a permutation of the training set
    meta_per_class: int = 2  # a selection holdout (EMLC / MLC) keeps one per class on each side
    test_samples: int = 16
    # Caps of method parameters, by name, for every method the run builds (DMLP's `then` too).
    method_params: dict[str, int] = field(
        default_factory=lambda: {
            "meta_batch_size": 8,  # trusted batches: at most the smoke batch
            "simclr_epochs": 1,  # DMLP stage 1
            "simclr_max_images": 8,  # one SimCLR step of 16 views
            "simclr_warmup_epochs": 0,  # SimCLR's warm-up must end before its (capped) epochs
            "epochs": 2,  # DMLP's purifier (the only method parameter of that name)
            "exchange_every": 1,  # so that the purifier's label exchange (eq. 9) runs
        }
    )


SMOKE = SmokeCaps()


def smoke_config(cfg: Config, params_of: Callable[[str], Any]) -> Config:
    """``cfg`` with the loop and the method parameters capped by :data:`SMOKE` (unchanged without
    ``cfg.smoke``). ``params_of(name)``: method ``name``'s checked ``Params`` from ``cfg``."""
    if not cfg.smoke:
        return cfg
    sections = {name: dict(values) for name, values in cfg.method_params.items()}
    warmup = 0
    for name in _built_methods(cfg, params_of):
        params = params_of(name)
        capped = _capped_params(params)
        if capped:
            sections[name] = {**sections.get(name, {}), **capped}
        warmup = max(warmup, _smoke_warmup(params))
    return dataclasses.replace(
        cfg,
        method_params=sections,
        epochs=min(cfg.epochs, warmup + 1),  # the epoch after the warm-up runs the method's own step
        batch_size=min(cfg.batch_size, SMOKE.batch_size),
        batches_per_epoch=min(cfg.batches_per_epoch, SMOKE.batches_per_epoch)
        if cfg.batches_per_epoch
        else None,
    )


def _built_methods(cfg: Config, params_of: Callable[[str], Any]) -> list[str]:
    """The run's method and the one it trains after its own stage (DMLP's ``then``), if any."""
    then = getattr(params_of(cfg.method), "then", None)
    return [cfg.method, then] if then else [cfg.method]


def _smoke_warmup(params: Any) -> int:
    """A method's warm-up in a smoke run: none stays none, any other (adaptive: None) one epoch."""
    warmup = getattr(params, "warmup_epochs", 0)
    return SMOKE.warmup_epochs if warmup is None else min(warmup, SMOKE.warmup_epochs)


def _capped_params(params: Any) -> dict[str, Any]:
    """The method parameters that a smoke run changes, with their capped values."""
    values = {f.name: getattr(params, f.name) for f in dataclasses.fields(params)}
    capped = {
        key: cap for key, cap in SMOKE.method_params.items() if key in values and _above(values[key], cap)
    }
    if "warmup_epochs" in values and values["warmup_epochs"] != _smoke_warmup(params):
        capped["warmup_epochs"] = _smoke_warmup(params)
    return capped


def _above(value: int | None, cap: int) -> bool:
    """Whether a stage length is over its cap (None: unbounded, e.g. all the images)."""
    return value is None or value > cap


@dataclass(frozen=True)
class SmokeRows:
    """The rows of the training, trusted and test sets a smoke run keeps (sorted positions)."""

    train: np.ndarray
    meta: np.ndarray | None
    test: np.ndarray | None


def smoke_rows(
    num_train: int, meta_labels: np.ndarray | None, num_test: int | None, *, seed: int
) -> SmokeRows:
    """Seeded rows to keep: :data:`SMOKE`'s training and test samples at random, and
    ``meta_per_class`` trusted samples of each class (by ``meta_labels``)."""
    rng = np.random.default_rng([seed, 0x5E0E])
    meta = None if meta_labels is None else _per_class(meta_labels, SMOKE.meta_per_class, rng)
    test = None if num_test is None else _some(num_test, SMOKE.test_samples, rng)
    return SmokeRows(train=_some(num_train, SMOKE.train_samples, rng), meta=meta, test=test)


def _some(n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.permutation(n)[:size]).astype(np.int64)


def _per_class(labels: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    picks = [rng.permutation(np.flatnonzero(labels == c))[:size] for c in np.unique(labels)]
    return np.sort(np.concatenate(picks)).astype(np.int64)


def smoke_split(
    split: NoisySplit, test: ArrayDataset | None, *, seed: int
) -> tuple[NoisySplit, ArrayDataset | None]:
    """The rows of :func:`smoke_rows` of a noisy split and its test set (in-memory data sets)."""
    meta = split.meta
    rows = smoke_rows(
        len(split.train), None if meta is None else meta.y, None if test is None else len(test), seed=seed
    )
    kept = dataclasses.replace(
        split,
        train=split.train.subset(rows.train),
        train_clean_labels=split.train_clean_labels[rows.train],
        train_index=split.train_index[rows.train],
    )
    if meta is not None and rows.meta is not None:
        meta_clean = split.meta_clean_labels
        kept = dataclasses.replace(
            kept,
            meta=meta.subset(rows.meta),
            meta_clean_labels=None if meta_clean is None else meta_clean[rows.meta],
            meta_index=split.meta_index[rows.meta],
        )
    return kept, None if test is None or rows.test is None else test.subset(rows.test)
