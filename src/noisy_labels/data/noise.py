"""Label-noise protocols: corrupt clean labels the way published benchmarks do, with the convention named.

Papers that all say "40% symmetric noise" do not mean the same thing (DivideMix's "50% symmetric" flips
45% of the labels), so every protocol here has its own name and states its realised rate. Numpy in, numpy
out; every draw is seeded and vectorised.

Convention: a transition matrix ``T`` has ``T[i, j] = P(noisy = j | clean = i)`` and rows summing to 1.
cleanlab's ``noise_matrix`` is the transpose (``P(label = i | true = j)``, columns sum to 1): pass ``T.T``
when interoperating.

Protocols (``rate`` is ``r``, ``C`` the number of classes):

``symmetric``
    Flip with probability r to one of the *other* C - 1 classes uniformly (Co-teaching, DMLP).
    ``T = (1 - r) I + r / (C - 1) (1 - I)``; realised rate r.
``uniform``
    Replace with probability r by a class drawn from *all* C classes (MW-Net "unif", DivideMix "sym");
    realised rate ``r (1 - 1/C)``.
``asymmetric``
    Class-to-class flips with probability r per source class (ELR's convention; DivideMix instead flips
    ``r N`` samples overall). ``dataset='cifar10'``: truck->automobile, bird->airplane, deer->horse,
    cat<->dog (realised rate r/2 on balanced data). ``dataset='mnist'``: 2->7, 3->8, 5<->6, 7->1 (Patrini
    et al. 2017; realised rate r/2). ``dataset='cifar100'``: to the next fine class
    (ascending index, cyclic) of the same *real* superclass, as L2B and C2D use real superclasses. Or an
    explicit ``mapping``.
``asymmetric_blocks``
    ELR's CIFAR-100 variant: blocks of ``block_size`` (5) consecutive indices, ``i -> start + (i+1) mod 5``;
    these blocks are not the real superclasses.
``pairflip``
    ``i -> (i + 1) mod C`` with probability r (Co-teaching).
``flip``
    Each class to one other class drawn at random per class, probability r (MW-Net "flip").
``flip2``
    Each class to two other classes drawn at random per class, r/2 each (MW-Net / RMNW-Net "flip2").
``instance``
    Part-dependent instance noise of Xia et al. (2020); needs ``features``.
``human``
    A given set of human labels such as CIFAR-10N ``worst``; needs ``human_labels``.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._validation import check_features, check_labels, check_num_classes, check_rate, check_same_length
from .cifar import CIFAR100_FINE_TO_COARSE

__all__ = [
    "ASYMMETRIC_STRUCTURE",
    "PROTOCOLS",
    "NoiseResult",
    "apply_noise",
    "empirical_transition",
    "transition_matrix",
]

# The real CIFAR-100 superclass of each fine class lives with the CIFAR loaders.

# CIFAR-10: truck->automobile, bird->airplane, deer->horse, cat<->dog (Patrini et al. 2017).
_CIFAR10_ASYMMETRIC = {9: 1, 2: 0, 4: 7, 3: 5, 5: 3}
# Patrini et al. 2017 (forward correction), MNIST: 2 -> 7, 3 -> 8, 5 <-> 6, 7 -> 1.
_MNIST_ASYMMETRIC = {2: 7, 3: 8, 5: 6, 6: 5, 7: 1}

#: The ``asymmetric`` structure (``dataset=``) of each registered data set that has one, by its registry name.
ASYMMETRIC_STRUCTURE = {
    "cifar10": "cifar10",
    "cifar10_features": "cifar10",
    "cifar100": "cifar100",
    "mnist": "mnist",
}


def _cifar100_superclass_cycle() -> np.ndarray:
    """Each fine class -> the next fine index (ascending, cyclic) within its real superclass."""
    mapping, table = np.arange(100), np.asarray(CIFAR100_FINE_TO_COARSE)
    for coarse in range(int(table.max()) + 1):
        members = np.flatnonzero(table == coarse)  # ascending fine indices
        mapping[members] = np.roll(members, -1)
    return mapping


# ======================================================================================================
# Result
# ======================================================================================================


@dataclass(frozen=True, eq=False)
class NoiseResult:
    """Noisy labels together with the noise process that made them.

    Attributes
    ----------
    noisy_labels : ndarray of shape (N,) int64
        The corrupted labels.
    transition : ndarray of shape (C, C) float64
        The matrix the protocol declares, ``T[i, j] = P(noisy = j | clean = i)`` (the expected one, not
        the counts of this draw; for ``instance`` the mean per-sample flip distribution of each clean
        class, for ``human`` the empirical matrix).
    realised_rate : float
        Fraction of labels that differ from the clean ones in this draw.
    protocol : str
        Protocol name, a key of :data:`PROTOCOLS`.
    params : dict
        JSON-serialisable parameters of the draw, including ``rate`` and ``seed`` and any class mapping
        drawn from the seed, enough to reproduce it.
    """

    noisy_labels: np.ndarray
    transition: np.ndarray
    realised_rate: float
    protocol: str
    params: dict[str, Any]

    @property
    def rate(self) -> float:
        """The nominal rate (for ``human``, the realised one)."""
        return self.params["rate"]

    @property
    def seed(self) -> int:
        return self.params["seed"]

    @property
    def num_classes(self) -> int:
        return self.transition.shape[0]

    def to_dict(self, *, include_labels: bool = False) -> dict[str, Any]:
        """Plain-Python description of the draw, for saving next to results.

        The noisy labels themselves (N integers) are left out unless ``include_labels=True``.
        """
        out = {
            "protocol": self.protocol,
            "rate": self.rate,
            "realised_rate": self.realised_rate,
            "seed": self.seed,
            "num_classes": self.num_classes,
            "transition": self.transition.tolist(),
            "params": self.params,
        }
        if include_labels:
            out["noisy_labels"] = self.noisy_labels.tolist()
        return out

    def to_json(self, *, include_labels: bool = False, **json_kwargs: Any) -> str:
        """:meth:`to_dict` as a JSON string (``json_kwargs`` go to :func:`json.dumps`)."""
        return json.dumps(self.to_dict(include_labels=include_labels), **json_kwargs)


# ======================================================================================================
# Transition matrices
# ======================================================================================================


def empirical_transition(clean, noisy, num_classes: int, *, empty_rows: str = "nan") -> np.ndarray:
    """Row-normalised counts of (clean, noisy) label pairs.

    Parameters
    ----------
    clean, noisy : array-like of shape (N,)
        Integer labels in ``[0, num_classes)``.
    num_classes : int
        Number of classes ``C``.
    empty_rows : {'nan', 'identity'}, default='nan'
        What to put in the row of a clean class with no sample. NaN by default, so that a class never
        seen is not mistaken for a noise-free one; ``'identity'`` gives a valid stochastic matrix.

    Returns
    -------
    ndarray of shape (C, C) float64
        ``T_hat[i, j] = #{clean = i, noisy = j} / #{clean = i}``.

    Raises
    ------
    ValueError
        Labels out of range, different lengths, or an unknown ``empty_rows``.
    """
    num_classes = check_num_classes(num_classes)
    clean = check_labels(clean, num_classes, name="clean labels")
    noisy = check_labels(noisy, num_classes, name="noisy labels")
    check_same_length(clean=clean, noisy=noisy)
    if empty_rows not in ("nan", "identity"):
        raise ValueError(f"empty_rows must be 'nan' or 'identity', got {empty_rows!r}.")
    counts = np.bincount(clean * num_classes + noisy, minlength=num_classes**2).reshape(num_classes, -1)
    totals = counts.sum(axis=1, keepdims=True)
    out = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
    empty = totals[:, 0] == 0
    out[empty] = np.nan if empty_rows == "nan" else np.eye(num_classes)[empty]
    return out


def _off_diagonal_mapping_matrix(mapping: np.ndarray, rate: float) -> np.ndarray:
    """``T[i, mapping[i]] = rate`` and ``T[i, i] = 1 - rate``; classes mapped to themselves stay clean."""
    num_classes = len(mapping)
    T = np.eye(num_classes)
    moved = np.flatnonzero(mapping != np.arange(num_classes))
    T[moved, moved] = 1.0 - rate
    T[moved, mapping[moved]] = rate
    return T


def _random_other_classes(num_classes: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """For every class, ``k`` distinct other classes drawn uniformly, shape (C, k)."""
    if num_classes - 1 < k:
        raise ValueError(f"this protocol needs at least {k + 1} classes, got num_classes={num_classes}.")
    others = [np.delete(np.arange(num_classes), c) for c in range(num_classes)]
    return np.stack([rng.choice(o, size=k, replace=False) for o in others])


def _symmetric(num_classes, rate, rng):
    """Flip to another class uniformly with probability ``rate``."""
    off = rate / (num_classes - 1)
    return np.full((num_classes, num_classes), off) + np.eye(num_classes) * (1.0 - rate - off), {}


def _uniform(num_classes, rate, rng):
    """Replace by a uniform draw over all classes with probability ``rate``."""
    return np.full((num_classes, num_classes), rate / num_classes) + np.eye(num_classes) * (1.0 - rate), {}


def _asymmetric(num_classes, rate, rng, *, dataset: str | None = None, mapping=None):
    """Class-to-class flips (CIFAR-10 pairs, CIFAR-100 real superclasses, or a given mapping)."""
    if (dataset is None) == (mapping is None):
        raise ValueError(
            "asymmetric noise needs exactly one of dataset='cifar10' | 'cifar100' | 'mnist' or mapping= "
            "(a length-C sequence or a {source: target} dict)."
        )
    if dataset is not None:
        expected = {"cifar10": 10, "cifar100": 100, "mnist": 10}
        if dataset not in expected:
            raise ValueError(f"asymmetric dataset must be 'cifar10', 'cifar100' or 'mnist', got {dataset!r}.")
        if num_classes != expected[dataset]:
            raise ValueError(f"dataset={dataset!r} needs num_classes={expected[dataset]}, got {num_classes}.")
        if dataset in ("cifar10", "mnist"):
            pairs = _CIFAR10_ASYMMETRIC if dataset == "cifar10" else _MNIST_ASYMMETRIC
            target = np.arange(10)
            target[list(pairs)] = list(pairs.values())
        else:
            target = _cifar100_superclass_cycle()
    else:
        target = _check_mapping(mapping, num_classes)
    return _off_diagonal_mapping_matrix(target, rate), {"dataset": dataset, "mapping": target.tolist()}


def _check_mapping(mapping, num_classes: int) -> np.ndarray:
    if isinstance(mapping, Mapping):
        target = np.arange(num_classes)
        src = check_labels(list(mapping.keys()), num_classes, name="mapping sources")
        target[src] = check_labels(list(mapping.values()), num_classes, name="mapping targets")
        return target
    target = check_labels(mapping, num_classes, name="mapping")
    if len(target) != num_classes:
        raise ValueError(f"mapping must have one target per class ({num_classes}), got {len(target)}.")
    return target


def _asymmetric_blocks(num_classes, rate, rng, *, block_size: int = 5):
    """ELR's CIFAR-100 noise: cyclic pair flip inside blocks of consecutive indices."""
    if block_size < 2 or num_classes % block_size:
        raise ValueError(
            f"block_size must be >= 2 and divide num_classes={num_classes}, got block_size={block_size}."
        )
    idx = np.arange(num_classes)
    start = idx - idx % block_size
    target = start + (idx - start + 1) % block_size
    return _off_diagonal_mapping_matrix(target, rate), {"block_size": int(block_size)}


def _pairflip(num_classes, rate, rng):
    """``i -> (i + 1) mod C`` with probability ``rate``."""
    return _off_diagonal_mapping_matrix((np.arange(num_classes) + 1) % num_classes, rate), {}


def _flip(num_classes, rate, rng):
    """Each class to one random other class (drawn once per class from the seed)."""
    target = _random_other_classes(num_classes, 1, rng)[:, 0]
    return _off_diagonal_mapping_matrix(target, rate), {"mapping": target.tolist()}


def _flip2(num_classes, rate, rng):
    """Each class to two random other classes, ``rate / 2`` each."""
    targets = _random_other_classes(num_classes, 2, rng)
    T = np.eye(num_classes) * (1.0 - rate)
    rows = np.arange(num_classes)
    T[rows, targets[:, 0]] = rate / 2
    T[rows, targets[:, 1]] = rate / 2
    return T, {"mapping": targets.tolist()}


# Class-dependent protocols: name -> builder(num_classes, rate, structure_rng, **params) -> (T, params).
_MATRIX_BUILDERS: dict[str, Callable] = {
    "symmetric": _symmetric,
    "uniform": _uniform,
    "asymmetric": _asymmetric,
    "asymmetric_blocks": _asymmetric_blocks,
    "pairflip": _pairflip,
    "flip": _flip,
    "flip2": _flip2,
}


def _inverse_cdf(cumulative: np.ndarray, u: np.ndarray) -> np.ndarray:
    """The first class whose cumulative probability exceeds ``u``, for each ``u``.

    ``cumulative`` is one distribution (C,) shared by all draws or one per draw (n, C). Taking the first
    class *strictly* above ``u`` means a zero-probability class is never returned.
    """
    cumulative = cumulative / cumulative[..., -1:]  # rows summing to 1 - 1e-16 would overflow to class C
    if cumulative.ndim == 1:
        out = np.searchsorted(cumulative, u, side="right")
    else:
        out = (cumulative <= u[:, None]).sum(axis=1)
    return np.minimum(out, cumulative.shape[-1] - 1)


def transition_matrix(protocol: str, num_classes: int, rate: float, *, seed: int = 0, **params) -> np.ndarray:
    """The transition matrix of a class-dependent protocol.

    Parameters
    ----------
    protocol : {'symmetric', 'uniform', 'asymmetric', 'asymmetric_blocks', 'pairflip', 'flip', 'flip2'}
        See the module docstring.
    num_classes : int
        Number of classes ``C``.
    rate : float in [0, 1]
        Noise rate ``r``.
    seed : int, default=0
        Draws the random class mapping of ``flip`` and ``flip2``; the same seed gives the matrix that
        :func:`apply_noise` uses.
    **params
        Protocol options (``dataset``/``mapping`` for ``asymmetric``, ``block_size`` for
        ``asymmetric_blocks``).

    Returns
    -------
    ndarray of shape (C, C) float64
        ``T[i, j] = P(noisy = j | clean = i)``, rows sum to 1.

    Raises
    ------
    ValueError
        Unknown protocol, a sample-dependent one (``instance``, ``human``), or bad parameters.
    """
    if protocol in ("instance", "human"):
        raise ValueError(
            f"{protocol!r} noise has no class-level matrix before seeing the data; use "
            "apply_noise(...).transition."
        )
    builder = _lookup(protocol, _MATRIX_BUILDERS)
    _check_params(protocol, builder, params)
    T, _ = builder(check_num_classes(num_classes), check_rate(rate), _rngs(seed).structure, **params)
    return T


# ======================================================================================================
# Protocols
# ======================================================================================================


@dataclass(frozen=True)
class _Rngs:
    structure: np.random.Generator  # class mappings and instance weights: shared by train and meta noise
    sample: np.random.Generator  # per-sample draws


def _rngs(seed: int, sample_stream: int = 1) -> _Rngs:
    """Independent streams from one seed (spawn keys keep them distinct from ``default_rng(seed)``)."""
    seed = _check_seed(seed)
    return _Rngs(
        structure=np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0,))),
        sample=np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(sample_stream,))),
    )


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}.")
    return int(seed)


def _class_dependent(name: str) -> Callable:
    builder = _MATRIX_BUILDERS[name]

    def protocol(labels, *, num_classes, rate, rngs, **params):
        T, extra = builder(num_classes, rate, rngs.structure, **params)
        cum, u = np.cumsum(T, axis=1), rngs.sample.random(len(labels))
        noisy = np.empty_like(labels)
        for c in np.unique(labels):
            idx = np.flatnonzero(labels == c)
            noisy[idx] = _inverse_cdf(cum[c], u[idx])
        return noisy, T, extra

    protocol.__name__ = name
    protocol.__doc__ = builder.__doc__
    protocol.__signature__ = inspect.signature(builder)  # type: ignore[attr-defined]  # for apply_noise's check
    return protocol


def _instance(labels, *, num_classes, rate, rngs, features, flip_std: float = 0.1, standardize: bool = True):
    """Part-dependent instance noise (Xia et al. 2020): flips depend on each sample's features."""
    x = check_features(features, name="features", ndim=(2, 3, 4))
    check_same_length(labels=labels, features=x)
    x = x.reshape(len(x), -1)
    if not float(flip_std) >= 0.0:  # also rejects NaN
        raise ValueError(f"flip_std must be >= 0, got {flip_std!r}.")
    q = _truncated_normal(rate, float(flip_std), len(labels), rngs.sample)
    u = rngs.sample.random(len(labels))
    mean, scale = _column_moments(x) if standardize else (0.0, 1.0)
    T = np.eye(num_classes)  # rows of absent classes stay identity
    noisy = np.empty_like(labels)
    for c in range(num_classes):
        # One weight matrix per clean class, drawn for every class so W does not depend on which are present.
        w = rngs.structure.standard_normal((x.shape[1], num_classes))
        idx = np.flatnonzero(labels == c)
        if idx.size == 0:
            continue
        p = _part_dependent_rows((x[idx] - mean) / scale @ w, c, q[idx])
        T[c] = p.mean(axis=0)
        noisy[idx] = _inverse_cdf(np.cumsum(p, axis=1), u[idx])
    params = {"flip_std": float(flip_std), "standardize": bool(standardize), "num_features": int(x.shape[1])}
    return noisy, T, params


def _part_dependent_rows(logits: np.ndarray, c: int, q: np.ndarray) -> np.ndarray:
    """``q * softmax(logits with class c masked)`` plus ``1 - q`` on class c, shape (n, C)."""
    logits[:, c] = -np.inf
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p *= (q / p.sum(axis=1))[:, None]
    p[:, c] = 1.0 - q
    return p


def _truncated_normal(mean: float, std: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """N(mean, std) truncated to [0, 1] by rejection (acceptance >= ~50% since mean is in [0, 1])."""
    if std == 0.0:
        return np.full(n, mean)
    out = rng.normal(mean, std, n)
    bad = np.flatnonzero((out < 0) | (out > 1))
    while bad.size:
        out[bad] = rng.normal(mean, std, bad.size)
        bad = bad[(out[bad] < 0) | (out[bad] > 1)]
    return out


def _column_moments(x: np.ndarray, chunk: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and std in float64, in row chunks so uint8 images are never copied whole.

    Two passes (mean, then squared deviations) avoid the cancellation of ``E[x^2] - E[x]^2``.
    """
    blocks = [slice(start, start + chunk) for start in range(0, len(x), chunk)]
    mean = sum(x[b].sum(axis=0, dtype=np.float64) for b in blocks) / len(x)
    var = sum(((x[b] - mean) ** 2).sum(axis=0) for b in blocks) / len(x)
    std = np.sqrt(var)
    return mean, np.where(std > 1e-12, std, 1.0)  # constant columns (e.g. image borders) stay at 0


def _human(labels, *, num_classes, rate, rngs, human_labels, name: str | None = None):
    """Given human annotations (e.g. CIFAR-10N ``worst``); the transition is their empirical one."""
    noisy = check_labels(human_labels, num_classes, name="human_labels")
    check_same_length(labels=labels, human_labels=noisy)
    T = empirical_transition(labels, noisy, num_classes, empty_rows="identity")
    return noisy.copy(), T, {"name": name}


#: Every protocol by name (for the CLI and for tests that loop over protocols).
PROTOCOLS: dict[str, Callable] = {name: _class_dependent(name) for name in _MATRIX_BUILDERS}
PROTOCOLS["instance"] = _instance
PROTOCOLS["human"] = _human


# ======================================================================================================
# Entry point
# ======================================================================================================


def apply_noise(
    labels, *, num_classes: int, protocol: str, rate: float | None = None, seed: int = 0, **params
) -> NoiseResult:
    """Corrupt clean labels with a named noise protocol.

    Parameters
    ----------
    labels : array-like of shape (N,)
        Clean integer labels in ``[0, num_classes)``.
    num_classes : int
        Number of classes ``C``.
    protocol : str
        A key of :data:`PROTOCOLS`: ``'symmetric'``, ``'uniform'``, ``'asymmetric'``,
        ``'asymmetric_blocks'``, ``'pairflip'``, ``'flip'``, ``'flip2'``, ``'instance'`` or ``'human'``
        (see the module docstring for the exact definitions).
    rate : float in [0, 1]
        Noise rate ``r``; required for every protocol except ``'human'``, which ignores it (its rate is the
        realised one, and that is what the result records).
    seed : int, default=0
        Seeds every random draw; the same seed gives the same labels.
    **params
        Protocol options:

        - ``asymmetric``: ``dataset={'cifar10', 'cifar100'}`` or ``mapping`` (length-C sequence or
          ``{source: target}`` dict; classes mapped to themselves stay clean).
        - ``asymmetric_blocks``: ``block_size=5``.
        - ``instance``: ``features`` of shape (N, d) or images (N, H, W, C), flattened; ``flip_std=0.1``;
          ``standardize=True`` scales each feature column to zero mean and unit variance first.
        - ``human``: ``human_labels`` of shape (N,); ``name`` (e.g. ``'worst'``) for the record.

    Returns
    -------
    NoiseResult
        Noisy labels, declared transition matrix, realised rate and the parameters of the draw.

    Raises
    ------
    ValueError
        Unknown protocol (the message lists the known ones), ``rate`` outside [0, 1] or missing, labels
        out of range, unknown or missing protocol options, or ``features``/``human_labels`` whose length
        differs from ``labels``.
    TypeError
        Non-integer labels.

    Notes
    -----
    Labels are drawn once, vectorised, by inverse CDF from one uniform number per sample. The random
    class mappings (``flip``, ``flip2``) and instance weights come from a stream separate from the
    per-sample draws, so a second set corrupted with the same seed (see
    :func:`noisy_labels.data.split.make_noisy_split`) shares them.

    ``asymmetric`` flips each source class with probability r, so about r of every source class flips
    (ELR); DivideMix instead flips ``r N`` samples of the whole set. ``instance`` follows Xia et al.
    (2020): per-sample flip rate ``q_n ~ TruncNormal(r, flip_std, [0, 1])``, weights
    ``W ~ N(0, 1)`` of shape (C, d, C), ``p_n = q_n softmax(x_n W[y_n])`` over the other classes and
    ``1 - q_n`` on the true class. Its mean flip rate is r only when r is a few ``flip_std`` away from
    0 and 1 (at r = 0 it is about 0.08); ``flip_std=0`` gives exactly r. With many features the
    softmax is nearly one-hot, as in the reference code.

    References
    ----------
    Patrini et al., "Making deep neural networks robust to label noise: a loss correction approach",
    CVPR 2017 (CIFAR-10 asymmetric pairs). Han et al., "Co-teaching", NeurIPS 2018 (symmetric,
    pairflip). Shu et al., "Meta-Weight-Net", NeurIPS 2019 (uniform, flip, flip2). Liu et al., "Early-
    Learning Regularization", NeurIPS 2020 (asymmetric_blocks). Xia et al., "Part-dependent label noise:
    towards instance-dependent label noise", NeurIPS 2020 (instance). Wei et al., "Learning with noisy
    labels revisited: a study using real-world human annotations", ICLR 2022 (CIFAR-N, human).

    Examples
    --------
    >>> import numpy as np
    >>> clean = np.repeat(np.arange(10), 1000)
    >>> result = apply_noise(clean, num_classes=10, protocol="symmetric", rate=0.4, seed=0)
    >>> result.noisy_labels.shape
    (10000,)
    >>> result.transition[0, :3].round(3)
    array([0.6  , 0.044, 0.044])
    >>> abs(result.realised_rate - 0.4) < 0.02
    True
    """
    return _apply(labels, num_classes, protocol, rate, seed, params)


def _apply(labels, num_classes, protocol, rate, seed, params, *, sample_stream: int = 1) -> NoiseResult:
    """:func:`apply_noise` with a choice of per-sample stream (the meta set uses another one)."""
    fn = _lookup(protocol, PROTOCOLS)
    num_classes = check_num_classes(num_classes)
    labels = check_labels(labels, num_classes)
    if rate is not None:
        rate = check_rate(rate)
    if protocol == "human":
        rate = None  # the human labels fix the rate; callers with a config-wide default rate may pass one
    elif rate is None:
        raise ValueError(f"protocol {protocol!r} needs a noise rate in [0, 1], e.g. rate=0.4.")
    _check_params(protocol, fn, params)
    seed = _check_seed(seed)
    noisy, T, extra = fn(
        labels, num_classes=num_classes, rate=rate, rngs=_rngs(seed, sample_stream), **params
    )
    realised = float(np.mean(noisy != labels))
    record = {"rate": realised if rate is None else rate, "seed": seed, **extra}
    return NoiseResult(noisy.astype(np.int64), T, realised, protocol, _jsonable(record))


def _lookup(protocol: str, registry: dict[str, Callable]) -> Callable:
    if protocol not in registry:
        raise ValueError(f"unknown noise protocol {protocol!r}; known: {', '.join(sorted(registry))}.")
    return registry[protocol]


def _check_params(protocol: str, fn: Callable, params: dict) -> None:
    """Name unknown and missing options instead of a bare TypeError from deep inside."""
    accepted = {
        n: p
        for n, p in inspect.signature(fn).parameters.items()
        if p.kind == p.KEYWORD_ONLY and n not in ("num_classes", "rate", "rngs")
    }
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ValueError(
            f"protocol {protocol!r} does not take {unknown}; its options are {sorted(accepted) or 'none'}."
        )
    missing = [n for n, p in accepted.items() if p.default is p.empty and n not in params]
    if missing:
        raise ValueError(f"protocol {protocol!r} needs {missing}.")


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
