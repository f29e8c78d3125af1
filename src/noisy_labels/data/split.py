"""Carve a small trusted (meta) set out of a training set and corrupt the rest.

Meta-learning methods (MW-Net, L2B, EMLC, DMLP, ...) assume a small class-balanced set with clean labels
next to the noisy training set. The meta set is chosen from the *clean* labels, then the noise protocol
is applied to the training part only, or to both when the meta set is meant to be noisy too
(RMNW-Net's setting).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .._validation import check_labels, check_num_classes
from .base import ArrayDataset
from .noise import NoiseResult, _apply, _check_seed

__all__ = ["MetaSplit", "NoisySplit", "clean_meta_split", "make_noisy_split"]

# Per-sample stream of the meta-set corruption: differs from apply_noise's (1) so meta draws are
# independent of the training draws, while class mappings and instance weights (stream 0) are shared.
_META_SAMPLE_STREAM = 2


class MetaSplit(NamedTuple):
    """Indices of the trusted meta set and of the remaining training set (unpacks as a pair)."""

    meta_index: np.ndarray
    train_index: np.ndarray


def clean_meta_split(labels, *, size: int, num_classes: int | None = None, seed: int = 0) -> MetaSplit:
    """Split indices into a class-balanced meta set of ``size`` samples and the rest.

    Every class gets ``size // C`` meta samples; the ``size % C`` left over go one each to classes chosen
    at random with the seed (not always the first classes, which would bias the meta set towards them).
    The samples of each class are chosen uniformly at random.

    Parameters
    ----------
    labels : array-like of shape (N,)
        Clean integer labels.
    size : int
        Number of meta samples, 0 or at least ``C`` (every class needs a meta sample).
    num_classes : int, optional
        Number of classes ``C``; default ``labels.max() + 1``.
    seed : int, default=0
        Seeds the choice; the same seed gives the same split.

    Returns
    -------
    MetaSplit
        ``(meta_index, train_index)``: sorted int64 arrays, disjoint, together ``arange(N)``.

    Raises
    ------
    ValueError
        ``size`` negative, between 1 and ``C - 1``, or larger than ``N``; or a class (named in the message)
        with fewer samples than its meta quota.

    Examples
    --------
    >>> meta, train = clean_meta_split([0, 0, 0, 1, 1, 1], size=2, seed=0)
    >>> len(meta), len(train)
    (2, 4)
    """
    labels = check_labels(labels, num_classes)
    num_classes = check_num_classes(int(labels.max()) + 1 if num_classes is None else num_classes)
    # default_rng(seed) is independent of the noise streams, which use spawn keys of the same seed.
    rng = np.random.default_rng(_check_seed(seed))
    quota = _class_quota(size, num_classes, len(labels), rng)
    counts = np.bincount(labels, minlength=num_classes)
    short = np.flatnonzero(counts < quota)
    if short.size:
        c = int(short[0])
        raise ValueError(
            f"class {c} has {counts[c]} samples but the meta set needs {quota[c]} of it "
            f"({short.size} class(es) short: {short.tolist()[:10]}); lower size or merge classes."
        )
    # A random order, then stable-sorted by class: the first quota[c] samples of class c are a uniform
    # random subset of it, chosen for all classes at once.
    order = rng.permutation(len(labels))
    order = order[np.argsort(labels[order], kind="stable")]
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.arange(len(labels)) - starts[labels[order]]
    in_meta = np.zeros(len(labels), dtype=bool)
    in_meta[order[rank < quota[labels[order]]]] = True
    return MetaSplit(np.flatnonzero(in_meta).astype(np.int64), np.flatnonzero(~in_meta).astype(np.int64))


def _class_quota(size, num_classes: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """Meta samples per class: ``size // C`` each, one more for ``size % C`` randomly chosen classes."""
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not 0 <= size <= n:
        raise ValueError(f"size must be an integer in [0, {n}] (the number of samples), got {size!r}.")
    if 0 < size < num_classes:
        raise ValueError(
            f"size={size} is smaller than num_classes={num_classes}; every class needs a meta sample, so "
            f"use size >= {num_classes} (or size=0 for no meta set)."
        )
    quota = np.full(num_classes, size // num_classes, dtype=np.int64)
    quota[rng.choice(num_classes, size % num_classes, replace=False)] += 1
    return quota


@dataclass(frozen=True, eq=False)
class NoisySplit:
    """A noisy training set and a trusted meta set carved from one labelled set.

    Attributes
    ----------
    train : ArrayDataset
        Training samples with their NOISY labels.
    train_clean_labels : ndarray of shape (N_train,) int64
        Their clean labels (for measuring label accuracy, never for training).
    meta : ArrayDataset or None
        Meta samples with clean labels (or corrupted ones with ``corrupt_meta=True``); None if
        ``meta_size=0``.
    meta_clean_labels : ndarray of shape (N_meta,) int64 or None
        Clean labels of the meta samples.
    train_index, meta_index : ndarray of int64
        Positions of the two parts in the original set (sorted; ``meta_index`` empty without a meta set).
    noise : NoiseResult
        The noise applied to the training part.
    meta_noise : NoiseResult or None
        The noise applied to the meta set with ``corrupt_meta=True``, else None.
    """

    train: ArrayDataset
    train_clean_labels: np.ndarray
    meta: ArrayDataset | None
    meta_clean_labels: np.ndarray | None
    train_index: np.ndarray
    meta_index: np.ndarray
    noise: NoiseResult
    meta_noise: NoiseResult | None = None


def make_noisy_split(
    dataset: ArrayDataset,
    /,
    *,
    meta_size: int,
    protocol: str,
    rate: float | None = None,
    seed: int = 0,
    corrupt_meta: bool = False,
    **noise_params,
) -> NoisySplit:
    """Split off a clean meta set, then corrupt the training part with a noise protocol.

    Parameters
    ----------
    dataset : ArrayDataset
        The training set with its clean labels.
    meta_size : int
        Size of the class-balanced meta set (see :func:`clean_meta_split`); 0 for none.
    protocol, rate, **noise_params
        As in :func:`noisy_labels.data.noise.apply_noise`. Per-sample arrays (``human_labels``,
        ``features``) are given for the whole set, in its order; this function picks the rows of each
        part. ``instance`` noise uses ``dataset.x`` flattened when ``features`` is not given (each part
        is then standardised with its own column statistics).
    seed : int, default=0
        Seeds both the split and the noise.
    corrupt_meta : bool, default=False
        Also corrupt the meta set (RMNW-Net), with the same protocol and the same class mapping
        (``flip``, ``flip2``) or instance weights, but independent per-sample draws; for ``human``, the
        meta samples get their human labels.

    Returns
    -------
    NoisySplit

    Raises
    ------
    ValueError
        From :func:`clean_meta_split` and :func:`~noisy_labels.data.noise.apply_noise`, or a per-sample
        option whose length differs from the data set.

    References
    ----------
    Shu et al., "Meta-Weight-Net", NeurIPS 2019 (clean meta set). Ghosh and Lan, "Do we really need
    gold samples for sample weighting under label noise?", WACV 2021 (RMNW-Net, noisy meta set).
    """
    if not isinstance(dataset, ArrayDataset):
        raise TypeError(f"dataset must be an ArrayDataset, got {type(dataset).__name__}.")
    num_classes, n = dataset.num_classes, len(dataset)
    if protocol == "instance" and "features" not in noise_params:
        noise_params["features"] = dataset.x.reshape(n, -1)
    _check_full_length(noise_params, n)

    if meta_size:
        meta_index, train_index = clean_meta_split(
            dataset.y, size=meta_size, num_classes=num_classes, seed=seed
        )
    else:
        meta_index, train_index = np.empty(0, dtype=np.int64), np.arange(n, dtype=np.int64)

    noise = _apply(
        dataset.y[train_index], num_classes, protocol, rate, seed, _rows(noise_params, train_index)
    )
    train = dataset.subset(train_index).with_labels(noise.noisy_labels)
    meta, meta_noise = None, None
    if meta_size:
        meta = dataset.subset(meta_index)
        if corrupt_meta:
            meta_params = _rows(noise_params, meta_index)
            meta_noise = _apply(
                meta.y, num_classes, protocol, rate, seed, meta_params, sample_stream=_META_SAMPLE_STREAM
            )
            meta = meta.with_labels(meta_noise.noisy_labels)
    return NoisySplit(
        train=train,
        train_clean_labels=dataset.y[train_index],
        meta=meta,
        meta_clean_labels=dataset.y[meta_index] if meta_size else None,
        train_index=train_index,
        meta_index=meta_index,
        noise=noise,
        meta_noise=meta_noise,
    )


# Options that hold one row per sample and must be split along with the data.
_PER_SAMPLE_PARAMS = ("human_labels", "features")


def _check_full_length(params: dict, n: int) -> None:
    for key in _PER_SAMPLE_PARAMS:
        if key in params and len(params[key]) != n:
            raise ValueError(
                f"{key} has {len(params[key])} rows but the data set has {n}; give it for the whole set, "
                "in the data set's order."
            )


def _rows(params: dict, index: np.ndarray) -> dict:
    return {k: (np.asarray(v)[index] if k in _PER_SAMPLE_PARAMS else v) for k, v in params.items()}
