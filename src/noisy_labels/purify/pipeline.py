"""DMLP's non-nested meta label purifier: IPC and EAC on frozen features (Tu et al., CVPR 2023, Sec. 3.2).

:class:`DMLPPurifier` takes training features with noisy labels and a small clean set (features and
labels) and returns purified soft labels, hard labels and a per-sample cleanness score. It is plain
torch on tensors, independent of the training engine: the ``noisy-labels purify`` command and the
``dmlp`` method both call it.

One epoch visits the training set in fixed batches of ``batch_size`` (the reference code's 7000):
for each batch, IPC takes ``ipc_steps`` gradient steps on the batch's labels (eq. 7), then the EAC
classifier takes steps on the batch's updated labels in chunks of ``eac_batch_size`` (eq. 8). Every
``exchange_every`` epochs (``T``; the reference code's ``epoch_T = 20``) the labels are replaced by the
EMA of eq. 9.

Choices where the paper is silent, each a parameter:

* Batches are one fixed random partition of the training set, so the per-batch ridge maps are computed
  once (re-drawing batches would repeat the d x d factorisations every epoch).
* IPC's update (eq. 7) uses Adam with ``ipc_lr = eta_I`` per row (:class:`~noisy_labels.purify.ipc.RowAdam`),
  as the paper trains its meta-learner with Adam; ``ipc_optimizer='sgd'`` is the literal eq. 7.
* Labels start as the one-hot noisy labels, ``Y = onehot`` (so ``softmax(alpha Y)`` at ``alpha = 1`` gives
  the given class 0.23 of the mass for C = 10).
* IPC's pace, ``ipc_steps`` (eq. 7 iterations per batch visit; default 1, the paper configs 3). A label's
  argmax flips once its given logit and another have met: from one-hot logits ~0.5 each, ~50 Adam steps of
  ``eta_I = 0.01`` (the literal eq. 7, a plain gradient step on eq. 6's mean loss, moves a label by ~1e-7
  per step on the CIFAR-10 features, ``ipc_optimizer='sgd'``: nothing flips in 100 epochs). With one step
  per visit IPC flips no label before EAC's first exchange at ``T = 20`` (0.0% changed at epoch 19,
  symmetric 80% and 90%); the exchange (``eta_E = 1``) then sets the labels to a classifier trained on the
  given labels alone, whose confident logits IPC hardly moves again. The paper's account needs IPC to have
  moved labels by then (Sec. 3.2: after T iterations EAC mimics "gradually updated labels from IPC"; Table
  5: IPC + EAC 92.8 against EAC alone 67.4 at 90%), and it fixes ``eta_I`` (Sec. 4.1) but not how many
  eq. 7 iterations a batch gets between two exchanges (eq. 9's ``p = nT``): 3 steps let a label flip before
  ``T`` (3 x 20 x 0.01 = 0.6 per logit). Measured (``benchmarks/results/dmlp_ipc_ablation.md``, the
  features, defaults otherwise, seed 0; purified-label accuracy, IPC + EAC / EAC alone / IPC alone): at
  symmetric 90% (given labels independent of the class) one step gives 10.0 / 10.0 / 51.2%, three steps
  64.1 / 10.0 / 58.9% (the paper's order); at 80% one step 71.8 / 71.1 / 55.4% (the paper's order), three
  steps 67.5 / 71.1 / 59.8% (two: 70.3%, five: 67.5%): IPC's corrections carry errors that follow the
  features, which the linear EAC learns more readily than symmetric noise. The default stays 1, better
  wherever the given labels carry the class.
* Features are standardised with the training set's statistics (``standardize``).
* The cleanness score of a sample is its purified probability of the given label.
* EAC's mini-batches split each batch into equal chunks of at most ``eac_batch_size``.

From soft to hard labels (``relabel``)
--------------------------------------
The paper's rule (``relabel='always'``) gives every sample the argmax of its purified distribution
``q = softmax(alpha Y)`` (eq. 4, after the last exchange of eq. 9) as the label the network is then
trained on (Sec. 3.3, DMLP-Naive). Those labels are only as accurate as the purifier: on the shared
CIFAR-10 features about 78%, below the given labels at low noise (CIFAR-10N aggre 91%, random1 83%).

The default (``relabel='calibrated'``) relabels sample ``i`` from its given label ``g`` to the purified
class ``k = argmax q_i`` only where the log-odds margin ``m_i = log q_ik - log q_ig`` exceeds a threshold
``tau`` chosen from the clean set (:func:`calibrate_threshold`):

1. A stratified share ``probe_fraction`` of the clean set becomes *probes*: they join the training set,
   half with their true label and half with a uniformly drawn wrong one, and go through IPC and EAC
   like every training sample; the rest of the clean set is eq. 6's validation set.
2. The share ``r`` of wrong given labels is estimated from how often the argmax disagrees with the given
   label on the training set versus on the right and wrong probes (method of moments).
3. ``tau`` maximises the estimated change in the training set's label accuracy,
   ``r P(m > tau, k right | wrong) - (1 - r) P(m > tau | right)``, both probabilities read off the
   probes (the second through an exponential tail fitted to the right probes' margins, as its 98th-99th
   percentiles decide the threshold at low noise); if no threshold gains, ``tau = inf`` and every given
   label is kept.

So a label changes only where, by the clean set's evidence, a changed label is more often right than
the given one. The threshold adapts to the noise level (on the CIFAR-10 features ``tau`` ~ 11.5 at 9%
noise, ~ 3 at 80%) instead of a constant tuned on one benchmark. The probes cost eq. 6 a share of its
clean samples (CIFAR-10, symmetric 80%: the argmax labels were as accurate with 700 of 1000). Uniformly
drawn wrong probes are easier to fix than human confusions, so under human noise the estimated gain is
optimistic (the loss side, right labels relabelled, is not). ``keep_given > 0`` is the older constant
rule: keep ``g`` while ``q_ig >= keep_given q_ik``, i.e. ``tau = -log keep_given`` (it replaces
``relabel``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .._validation import (
    check_choice,
    check_every_class_present,
    check_features,
    check_labels,
    check_same_length,
    infer_num_classes,
)
from .eac import eac_loss, exchange_labels
from .ipc import RidgeOperator, RowAdam, ipc_value_and_grad, ridge_operator

__all__ = [
    "PurifyParams",
    "PurifyResult",
    "DMLPPurifier",
    "hard_labels",
    "relabel_margin",
    "relabel_by_margin",
    "calibrate_threshold",
    "estimate_label_error",
]


@dataclass
class PurifyParams:
    """Hyper-parameters of the DMLP purifier.

    The paper's Sec. 4.1 fixes ``ipc_lr`` (eta_I), ``momentum`` (eta_E), ``alpha``, Adam and ``epochs``;
    ``batch_size``, ``exchange_every``, ``eac_batch_size`` and ``ipc_betas`` follow the reference code.
    The other defaults were measured on the shared CIFAR-10 features (benchmarks/results/dmlp_tuning.md):
    with the reference code's EAC learning rate (0.03, no weight decay) the classifier memorises the
    noise; soft EAC targets at ``alpha = 1`` (0.23 on the given class) were 3-19 points worse than hard
    ones; a ridge of 0.01 lets IPC overfit the small clean set. ``momentum = 0.3`` (the shipped configs)
    keeps part of the given labels at each exchange and was 1-1.5 points better than the paper's 1.0.
    """

    epochs: int = 100  # meta-learner epochs (Sec. 4.1)
    batch_size: int = 7000  # IPC batch b (reference code)
    alpha: float = 1.0  # scaling in softmax(alpha Y), eq. 4 (Sec. 4.1)
    ridge: float = 1.0  # relative ridge lambda = ridge * mean diagonal of F~^T F~ (eq. 4; measured)
    fit_intercept: bool = True  # unpenalised bias in the ridge (see ipc.py)
    ipc: bool = True  # run IPC (False: the EAC-only ablation of Table 5)
    eac: bool = True  # run EAC (False: the IPC-only ablation)
    ipc_lr: float = 0.01  # eta_I of eq. 7 (Sec. 4.1)
    ipc_optimizer: str = "adam"  # adam (per-row) | sgd (literal eq. 7)
    ipc_betas: tuple[float, float] = (0.5, 0.999)  # reference code's Adam betas for the labels
    ipc_steps: int = 1  # IPC steps (eq. 7 iterations) per batch visit; paper configs 3 (module docstring)
    ipc_entropy: float = 1.0  # weight of H in eq. 6
    eac_lr: float = 1e-3  # Adam learning rate of the EAC classifier (measured; reference code: 0.03)
    eac_batch_size: int = 500  # EAC mini-batch (reference code)
    eac_entropy: float = 1.0  # weight of H in eq. 8
    eac_weight_decay: float = 1e-2  # Adam's L2 penalty on the EAC classifier (measured)
    eac_targets: str = "hard"  # y'_t of eq. 8: hard = argmax softmax(alpha Y) (measured) | soft
    eac_reset: bool = False  # re-initialise the EAC classifier after each exchange
    exchange_every: int = 20  # T of eq. 9, in epochs (reference code's epoch_T)
    momentum: float = 1.0  # eta_E of eq. 9 (Sec. 4.1); 0.3 keeps more of the given labels
    # How soft labels become hard ones (see the module docstring). calibrated: relabel where the purified
    # class beats the given one by a log-odds margin chosen on probes from the clean set; always: the
    # paper's argmax of softmax(alpha Y) for every sample.
    relabel: str = "calibrated"
    probe_fraction: float = 0.3  # calibrated: share of the clean set held out as probes (not in eq. 6)
    # The constant rule (not in the paper; replaces `relabel` when > 0): the hard label stays the given
    # one while its purified probability is at least keep_given x the largest. On the CIFAR-10 features
    # with momentum 0.3, 0.1 raised label accuracy on CIFAR-10N aggre 80.5 -> 87.2, sym50 77.9 -> 80.6,
    # worst 77.5 -> 78.8, and cost 0.9 points at sym80 (benchmarks/results/dmlp_tuning.md).
    keep_given: float = 0.0
    standardize: bool = True  # z-score features with the training statistics
    solve_dtype: str = "float64"  # precision of the ridge factorisation: float64 | float32

    def __post_init__(self) -> None:
        """Checked when built: ``ValueError`` naming the first invalid value."""
        positive = ("epochs", "batch_size", "ipc_steps", "eac_batch_size", "exchange_every")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}.")
        for name in ("alpha", "ridge", "ipc_lr", "eac_lr"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}.")
        if not 0.0 <= self.momentum <= 1.0:
            raise ValueError(f"momentum (eta_E) must lie in [0, 1], got {self.momentum}.")
        if not 0.0 <= self.keep_given <= 1.0:
            raise ValueError(f"keep_given must lie in [0, 1], got {self.keep_given}.")
        if not 0.0 < self.probe_fraction < 1.0:
            raise ValueError(f"probe_fraction must lie in (0, 1), got {self.probe_fraction}.")
        check_choice("relabel", self.relabel, ("calibrated", "always"))
        check_choice("ipc_optimizer", self.ipc_optimizer, ("adam", "sgd"))
        check_choice("eac_targets", self.eac_targets, ("soft", "hard"))
        check_choice("solve_dtype", self.solve_dtype, ("float64", "float32"))
        if not (self.ipc or self.eac):
            raise ValueError("at least one of ipc and eac must be on.")


def hard_labels(soft: np.ndarray, given: np.ndarray, keep_given: float = 0.0) -> np.ndarray:
    """Argmax of the purified labels, except where the given label keeps ``keep_given`` x the top mass.

    The margin rule of :func:`relabel_by_margin` with ``tau = -log keep_given`` (``keep_given = 0``: the
    paper's argmax everywhere).

    >>> hard_labels(np.array([[0.7, 0.3], [0.95, 0.05]]), np.array([1, 1]), keep_given=0.1).tolist()
    [1, 0]
    """
    return relabel_by_margin(soft, given, -np.log(keep_given) if keep_given > 0 else -np.inf)


_TINY = float(np.finfo(np.float32).tiny)


def relabel_margin(soft: np.ndarray, given: np.ndarray) -> np.ndarray:
    """Log-odds of the purified class over the given one, ``log q_top - log q_given`` (0 where they agree).

    >>> relabel_margin(np.array([[0.5, 0.5], [0.9, 0.1]]), np.array([1, 1])).round(3).tolist()
    [0.0, 2.197]
    """
    q = np.maximum(np.asarray(soft, dtype=np.float64), _TINY)  # float32 soft labels may underflow to 0
    return np.log(q.max(1)) - np.log(q[np.arange(len(given)), given])


def relabel_by_margin(soft: np.ndarray, given: np.ndarray, threshold: float) -> np.ndarray:
    """The purified argmax where its margin (:func:`relabel_margin`) exceeds ``threshold``, else ``given``.

    >>> relabel_by_margin(np.array([[0.5, 0.5], [0.9, 0.1]]), np.array([1, 1]), 1.0).tolist()
    [1, 0]
    """
    relabel = relabel_margin(soft, given) > threshold
    return np.where(relabel, np.asarray(soft).argmax(1), given).astype(np.int64)


def calibrate_threshold(
    probe_soft: np.ndarray,
    probe_given: np.ndarray,
    probe_true: np.ndarray,
    train_soft: np.ndarray,
    train_given: np.ndarray,
) -> dict[str, Any]:
    """Choose the margin threshold that maximises the estimated label accuracy of the training set.

    Probes are clean samples that went through the purifier as training samples, some with their true
    label (``right``), some with a wrong one. Relabelling every sample whose margin
    (:func:`relabel_margin`) exceeds ``tau`` changes the training set's label accuracy by

        gain(tau) = r P(m > tau, argmax = truth | wrong) - (1 - r) P(m > tau | right).

    * ``r``, the share of wrong given labels, by the method of moments on the share the argmax relabels:
      ``P_train(m > 0) = (1 - r) P(m > 0 | right) + r P(m > 0 | wrong)``.
    * The first probability is the share of wrong probes above ``tau`` that the argmax would fix.
    * The second, the tail of the margins of right labels, decides the threshold at low noise and is
      read off few probes (the 99th percentile of 150 right probes is their second largest), so it is
      smoothed: ``P(m > 0 | right) exp(-tau / mu)``, with ``mu`` the mean positive margin of the right
      probes (an exponential tail fitted by its mean; on the CIFAR-10 features it matches the right
      training labels' tail from 6 to 10 nats and overestimates it beyond, which errs towards keeping).

    ``tau`` is searched at 0 (the argmax) and at the midpoints between the margins of consecutive
    fixable wrong probes; ``inf`` (keep every given label) when no threshold gains.

    Returns
    -------
    dict
        ``threshold`` (tau), ``noise_rate`` (r), ``expected_gain`` (at tau), ``expected_relabelled``
        (share of the training set) and the probe counts.
    """
    margin = relabel_margin(probe_soft, probe_given)
    right = probe_given == probe_true
    fixed = np.asarray(probe_soft).argmax(1) == probe_true  # relabelling this probe gives its true label
    train_margin = relabel_margin(train_soft, train_given)
    info: dict[str, Any] = {"probes": int(len(right)), "wrong_probes": int((~right).sum())}
    keep_all = {"threshold": float("inf"), "noise_rate": float("nan"), "expected_gain": 0.0}
    if right.all() or not right.any():
        return {**keep_all, "expected_relabelled": 0.0, **info}
    flagged_right, flagged_wrong = (margin[right] > 0).mean(), (margin[~right] > 0).mean()
    rate = 0.0
    if flagged_wrong > flagged_right:
        flagged_train = (train_margin > 0).mean()
        rate = float(np.clip((flagged_train - flagged_right) / (flagged_wrong - flagged_right), 0.0, 1.0))
    positive = margin[right & (margin > 0)]
    mean_margin = float(positive.mean()) if len(positive) else 1.0
    fixable = np.unique(margin[~right & fixed & (margin > 0)])
    taus = np.concatenate([[0.0], (fixable[:-1] + fixable[1:]) / 2])
    gain = rate * ((margin[~right][None, :] > taus[:, None]) & fixed[~right]).mean(1)
    gain -= (1 - rate) * flagged_right * np.exp(-taus / mean_margin)
    best = int(np.argmax(gain))
    tau = float(taus[best]) if gain[best] > 0 else float("inf")
    return {
        "threshold": tau,
        "noise_rate": rate,
        "expected_gain": float(max(gain[best], 0.0)),
        "expected_relabelled": float((train_margin > tau).mean()),
        **info,
    }


def estimate_label_error(
    probe_hard: np.ndarray, probe_given: np.ndarray, probe_true: np.ndarray, noise_rate: float
) -> float:
    """The share of wrong purified labels to expect on the training set, estimated on the probes.

    Probes go through the purifier and the relabelling rule as training samples do, so the probes with a
    right given label estimate ``P(h != t | right)`` and those with a wrong one ``P(h != t | wrong)``
    without bias; weighted by the training set's share ``noise_rate`` of wrong given labels,

        (1 - r) P(h != t | right) + r P(h != t | wrong),

    estimates the training set's purified-label error. (The probes' own error share is that mixture at
    their r = 1/2; the purifier's predictions on the rest of the clean set ignore the given label, which
    the relabelling rule keeps where the purifier is unsure.)

    >>> given, true = np.array([0, 1, 0, 0]), np.array([0, 1, 1, 2])  # two right probes, two wrong ones
    >>> estimate_label_error(np.array([0, 1, 1, 0]), given, true, noise_rate=0.25)  # one wrong one fixed
    0.125
    """
    right = probe_given == probe_true
    wrong_after = probe_hard != probe_true
    return float((1 - noise_rate) * wrong_after[right].mean() + noise_rate * wrong_after[~right].mean())


@dataclass
class _Probes:
    """Clean samples the purifier sees as training samples, half of them with a wrong given label."""

    index: np.ndarray  # into the clean set
    rest: np.ndarray  # the clean samples left for IPC's validation loss (eq. 6)
    given: np.ndarray
    true: np.ndarray

    @classmethod
    def draw(cls, yv: np.ndarray, c: int, fraction: float, seed: int) -> _Probes | None:
        """``fraction`` of each class (keeping one of each for eq. 6); None when that leaves no probe."""
        rng = np.random.default_rng([seed, 0x9B0E])
        per_class = []
        for k in range(c):
            members = rng.permutation(np.flatnonzero(yv == k))
            per_class.append(members[: min(int(fraction * len(members)), len(members) - 1)])
        index = rng.permutation(np.concatenate(per_class)).astype(np.int64)
        if len(index) < 2:
            return None
        true = yv[index]
        wrong = np.zeros(len(index), dtype=bool)
        wrong[: len(index) // 2] = True
        wrong = rng.permutation(wrong)
        given = np.where(wrong, (true + rng.integers(1, c, len(index))) % c, true)
        rest = np.setdiff1d(np.arange(len(yv)), index)
        return cls(index=index, rest=rest, given=given.astype(np.int64), true=true.astype(np.int64))


@dataclass
class PurifyResult:
    """What the purifier returns (training-set order).

    Attributes
    ----------
    soft_labels : ndarray of shape (N, C) float32
        Purified label distributions ``softmax(alpha Y)``.
    hard_labels : ndarray of shape (N,) int64
        Their argmax.
    cleanness : ndarray of shape (N,) float32
        Purified probability of the given label: low values mark likely mislabelled samples.
    history : list of dict
        One record per epoch: ``epoch``, ``ipc_loss``, ``eac_loss``, ``changed`` (fraction of hard labels
        differing from the given ones), ``seconds``, and ``label_acc`` when true labels were given
        (the paper's Fig. 4). Exchange epochs add ``exchanged``, ``eac_clean_acc`` (the EAC classifier's
        accuracy on the clean set) and, with true labels, ``eac_label_acc``.
    setup_seconds, seconds : float
        Time to precompute the ridge maps, and the whole fit.
    calibration : dict
        ``relabel='calibrated'``: the chosen threshold and how (:func:`calibrate_threshold`); else empty.
    estimated_error : float or None
        The share of wrong hard labels expected on the training set, from the clean set:
        calibrated, the probes' (:func:`estimate_label_error`, at ``fit``'s ``noise_rate`` if known,
        else the calibration's estimate of it);
        ``relabel='always'``, the EAC classifier's error on the clean set (the exchange sets the labels
        to its predictions); None where neither applies (``keep_given``, no probes, no EAC) or where
        nothing was relabelled (the given labels and their rate stand).
    """

    soft_labels: np.ndarray
    hard_labels: np.ndarray
    cleanness: np.ndarray
    history: list[dict[str, Any]] = field(default_factory=list)
    setup_seconds: float = 0.0
    seconds: float = 0.0
    calibration: dict[str, Any] = field(default_factory=dict)
    estimated_error: float | None = None

    def calibration_record(self) -> dict[str, Any]:
        """``calibration`` for JSON, which has no inf or nan: written as null (an infinite threshold
        relabels nothing)."""
        return {
            k: None if isinstance(v, float) and not np.isfinite(v) else v for k, v in self.calibration.items()
        }


class DMLPPurifier:
    """Decoupled meta label purifier: IPC (eqs. 3-7) and EAC (eqs. 8-9) on frozen features.

    Parameters
    ----------
    params : PurifyParams, optional
        All hyper-parameters; keyword arguments override single fields.
    seed : int, default=0
        Seeds the batch partition, the batch order and the EAC mini-batches.
    threads : int, optional
        torch CPU threads during :meth:`fit` (restored afterwards); default: leave torch's setting. Most
        steps are small matrix products: on a shared 2-core machine one thread was faster than two.
    **overrides
        Field names of :class:`PurifyParams`, e.g. ``epochs=50``.

    Attributes
    ----------
    result_ : PurifyResult
        Set by :meth:`fit`.

    References
    ----------
    Tu et al., "Learning from Noisy Labels with Decoupled Meta Label Purifier", CVPR 2023.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> centres = rng.normal(size=(3, 8)) * 3
    >>> y = rng.integers(0, 3, 600)
    >>> x = centres[y] + rng.normal(size=(600, 8))
    >>> noisy = np.where(rng.random(500) < 0.4, rng.integers(0, 3, 500), y[:500])
    >>> purifier = DMLPPurifier(epochs=10, batch_size=250, exchange_every=5, threads=1)
    >>> res = purifier.fit(x[:500], noisy, x[500:], y[500:])
    >>> res.soft_labels.shape, bool((res.hard_labels == y[:500]).mean() > (noisy == y[:500]).mean())
    ((500, 3), True)
    """

    def __init__(
        self,
        params: PurifyParams | None = None,
        *,
        seed: int = 0,
        threads: int | None = None,
        **overrides: Any,
    ) -> None:
        self.params = dataclasses.replace(params or PurifyParams(), **overrides)
        self.seed = seed
        self.threads = threads

    def fit(
        self,
        train_features,
        noisy_labels,
        clean_features,
        clean_labels,
        *,
        num_classes: int | None = None,
        true_labels=None,
        noise_rate: float | None = None,
        progress: bool = False,
        callback: Callable[[dict[str, Any]], None] | None = None,
    ) -> PurifyResult:
        """Purify ``noisy_labels``.

        Parameters
        ----------
        train_features : array-like of shape (N, d)
            Frozen features of the noisy training samples (numpy or torch).
        noisy_labels : array-like of shape (N,)
            Given labels, integers in ``[0, C)``.
        clean_features : array-like of shape (n_v, d)
            Features of the small trusted set.
        clean_labels : array-like of shape (n_v,)
            Its labels; every class needs at least one.
        num_classes : int, optional
            ``C``; default ``max(label) + 1`` over both label arrays.
        true_labels : array-like of shape (N,), optional
            The training set's clean labels, only to record ``label_acc`` per epoch (never used to fit).
        noise_rate : float, optional
            The share of wrong given labels where it is known (synthetic noise): the weight of the probes'
            wrong half in ``estimated_error``; default the calibration's estimate of it.
        progress : bool, default=False
            Show a tqdm bar over epochs.
        callback : callable, optional
            Called with each epoch's history record.

        Returns
        -------
        PurifyResult
            Also stored as ``self.result_``.

        Raises
        ------
        ValueError
            Mismatched lengths or feature dimensions, labels out of range, a class missing from the clean
            set, NaN/inf features, or invalid parameters.
        """
        p = self.params
        with _torch_threads(self.threads):
            start = time.perf_counter()
            x, y, xv, yv, c, y_true = _validate(
                train_features, noisy_labels, clean_features, clean_labels, num_classes, true_labels
            )
            n = len(y)
            probes = None
            if p.relabel == "calibrated" and p.keep_given == 0:
                probes = _Probes.draw(yv, c, p.probe_fraction, self.seed)
            if probes is not None:  # the probes join the training set; the rest of the clean set is eq. 6's
                x = np.concatenate([x, xv[probes.index]])
                y = np.concatenate([y, probes.given])
                if y_true is not None:
                    y_true = np.concatenate([y_true, probes.true])
                xv, yv = xv[probes.rest], yv[probes.rest]
            state = _State.build(x, y, xv, yv, c, p, y_true, self.seed, n_train=n)
            setup_seconds = time.perf_counter() - start
            history = []
            epochs = range(p.epochs)
            if progress:
                epochs = tqdm(epochs, desc="dmlp purify", leave=False)
            for epoch in epochs:
                history.append(state.run_epoch(epoch))
                if callback is not None:
                    callback(history[-1])
            soft = state.soft_labels()
            classifier_error = state.classifier_clean_error()
        y = y[:n]
        calibration: dict[str, Any] = {}
        estimated_error = None
        if p.keep_given > 0 or p.relabel == "always":
            hard = hard_labels(soft[:n], y, p.keep_given)
            estimated_error = classifier_error if p.keep_given == 0 else None
        else:
            if probes is None:
                calibration = {"threshold": float("inf"), "reason": "too few clean samples for probes"}
            else:
                calibration = calibrate_threshold(soft[n:], probes.given, probes.true, soft[:n], y)
                estimated_error = _probe_error(soft[n:], probes, calibration, noise_rate)
            hard = relabel_by_margin(soft[:n], y, calibration["threshold"])
        soft = soft[:n]
        self.result_ = PurifyResult(
            soft_labels=soft,
            hard_labels=hard,
            cleanness=soft[np.arange(n), y].astype(np.float32),
            calibration=calibration,
            estimated_error=estimated_error,
            history=history,
            setup_seconds=setup_seconds,
            seconds=time.perf_counter() - start,
        )
        return self.result_


def _probe_error(
    probe_soft: np.ndarray, probes: _Probes, calibration: dict[str, Any], noise_rate: float | None
) -> float | None:
    """:func:`estimate_label_error` for the probes relabelled by the calibrated rule, at the known
    ``noise_rate`` or else the calibration's estimate; None when nothing is relabelled (the hard labels are
    the given ones, whose rate stands: the calibration's is then no estimate, e.g. 0 where the purifier
    cannot tell right labels from wrong ones)."""
    rate = calibration["noise_rate"] if noise_rate is None else noise_rate
    threshold = calibration["threshold"]
    if not (np.isfinite(rate) and np.isfinite(threshold)):
        return None
    probe_hard = relabel_by_margin(probe_soft, probes.given, calibration["threshold"])
    return estimate_label_error(probe_hard, probes.given, probes.true, rate)


@contextlib.contextmanager
def _torch_threads(threads: int | None):
    """Temporarily set torch's CPU thread count (None: leave it)."""
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _as_numpy(a) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().numpy()
    return np.asarray(a)


def _validate(x, y, xv, yv, num_classes, y_true):
    x = check_features(_as_numpy(x), name="training features")
    xv = check_features(_as_numpy(xv), name="clean features")
    if x.shape[1] != xv.shape[1]:
        raise ValueError(
            f"training features have {x.shape[1]} columns but clean features {xv.shape[1]}; both must "
            "come from the same feature extractor."
        )
    y = check_labels(_as_numpy(y), name="noisy labels")
    yv = check_labels(_as_numpy(yv), name="clean labels")
    check_same_length(**{"training features": x, "noisy labels": y})
    check_same_length(**{"clean features": xv, "clean labels": yv})
    # gaps first: a stray training label (12 among 0..9) is named as such, not as classes the clean set lacks
    num_classes = infer_num_classes(num_classes, **{"noisy labels": y, "clean labels": yv})
    check_labels(y, num_classes, name="noisy labels")
    check_labels(yv, num_classes, name="clean labels")
    check_every_class_present(yv, num_classes, name="clean labels")
    if y_true is not None:
        y_true = check_labels(_as_numpy(y_true), num_classes, name="true labels")
        check_same_length(**{"noisy labels": y, "true labels": y_true})
    return x, y, xv, yv, num_classes, y_true


@dataclass
class _State:
    """Everything one fit updates, in a fixed random order of the training set (batches are slices)."""

    p: PurifyParams
    x: torch.Tensor  # (N, d) standardised, permuted
    y: torch.Tensor  # (N,) given labels, permuted
    perm: torch.Tensor
    xv: torch.Tensor  # (n_v, d) clean features, standardised like x
    onehot_val: torch.Tensor
    bounds: list[tuple[int, int]]
    ops: list[RidgeOperator]
    logits: torch.Tensor  # Y, (N, C): labels are softmax(alpha Y)
    adam: RowAdam | None
    clf: torch.nn.Linear | None
    clf_opt: torch.optim.Optimizer | None
    gen: torch.Generator
    y_true: torch.Tensor | None
    scored: torch.Tensor  # (N,) bool: a training sample, not a probe (the history scores these)

    @classmethod
    def build(cls, x, y, xv, yv, c, p: PurifyParams, y_true, seed: int, n_train: int) -> _State:
        gen = torch.Generator().manual_seed(seed)
        n = len(x)
        perm = torch.randperm(n, generator=gen)
        x = torch.as_tensor(x, dtype=torch.float32)[perm]  # a copy in batch order: batches are slices
        xv = torch.as_tensor(xv, dtype=torch.float32)
        if p.standardize:
            mu, sd = x.mean(0), x.std(0) + 1e-6
            x.sub_(mu).div_(sd)
            xv = (xv - mu) / sd
        y = torch.as_tensor(y)[perm]
        # Equal-sized batches (the last is not a small remainder with a poorly conditioned ridge).
        k = max(1, round(n / p.batch_size))
        edges = [round(i * n / k) for i in range(k + 1)]
        bounds = list(zip(edges[:-1], edges[1:], strict=True))
        solve = torch.float64 if p.solve_dtype == "float64" else torch.float32
        ops = (
            [
                ridge_operator(x[s:e], xv, ridge=p.ridge, fit_intercept=p.fit_intercept, solve_dtype=solve)
                for s, e in bounds
            ]
            if p.ipc
            else []
        )
        adam = (
            RowAdam((n, c), lr=p.ipc_lr, betas=p.ipc_betas) if p.ipc and p.ipc_optimizer == "adam" else None
        )
        clf, opt = _new_classifier(x.shape[1], c, p) if p.eac else (None, None)
        return cls(
            p=p,
            x=x,
            y=y,
            perm=perm,
            xv=xv,
            onehot_val=F.one_hot(torch.as_tensor(yv), c).float(),
            bounds=bounds,
            ops=ops,
            logits=F.one_hot(y, c).float(),
            adam=adam,
            clf=clf,
            clf_opt=opt,
            gen=gen,
            y_true=None if y_true is None else torch.as_tensor(y_true)[perm],
            scored=perm < n_train,
        )

    def run_epoch(self, epoch: int) -> dict[str, Any]:
        start = time.perf_counter()
        ipc_losses, eac_losses = [], []
        for b in torch.randperm(len(self.bounds), generator=self.gen).tolist():
            s, e = self.bounds[b]
            if self.p.ipc:
                for _ in range(self.p.ipc_steps):
                    ipc_losses.append(self._ipc_step(b, s, e))
            if self.p.eac:
                eac_losses.append(self._eac_steps(s, e))
        record: dict[str, Any] = {"epoch": epoch + 1}
        if ipc_losses:
            record["ipc_loss"] = float(np.mean(ipc_losses))
        if eac_losses:
            record["eac_loss"] = float(np.mean(eac_losses))
        if self.p.eac and (epoch + 1) % self.p.exchange_every == 0:
            record.update(self._exchange())
        hard, scored = self.logits.argmax(1), self.scored
        record["changed"] = float((hard != self.y)[scored].float().mean())
        if self.y_true is not None:
            record["label_acc"] = float((hard == self.y_true)[scored].float().mean())
        record["seconds"] = time.perf_counter() - start
        return record

    def _ipc_step(self, b: int, s: int, e: int) -> float:
        p = self.p
        loss, grad = ipc_value_and_grad(
            self.ops[b], self.logits[s:e], self.onehot_val, alpha=p.alpha, entropy_weight=p.ipc_entropy
        )
        if self.adam is not None:
            self.adam.step(self.logits, grad, slice(s, e))
        else:
            self.logits[s:e] -= p.ipc_lr * grad
        return float(loss)

    def _classifier(self) -> tuple[torch.nn.Linear, torch.optim.Optimizer]:
        """EAC's classifier and its optimiser (they exist whenever EAC is on)."""
        assert self.clf is not None and self.clf_opt is not None, "EAC is off"
        return self.clf, self.clf_opt

    def _eac_steps(self, s: int, e: int) -> float:
        p = self.p
        targets = torch.softmax(p.alpha * self.logits[s:e], dim=1)
        if p.eac_targets == "hard":
            targets = F.one_hot(targets.argmax(1), targets.shape[1]).float()
        # Chunks are contiguous slices of the (randomly permuted) batch, visited in random order: a
        # gather per step cost ~40% of the EAC time on the CPU. They are equal-sized (at most
        # eac_batch_size): a small remainder chunk gets a full Adam step from a few noisy labels (at
        # symmetric 80% noise, batches of 7043 = 14 x 500 + 43 cost 2 points of label accuracy).
        size = e - s
        k = -(-size // p.eac_batch_size)
        edges = [round(j * size / k) for j in range(k + 1)]
        total = 0.0
        for j in torch.randperm(k, generator=self.gen).tolist():
            i, stop = edges[j], edges[j + 1]
            chunk = slice(s + i, s + stop)
            clf, clf_opt = self._classifier()
            loss = eac_loss(clf(self.x[chunk]), targets[i:stop], entropy_weight=p.eac_entropy)
            clf_opt.zero_grad(set_to_none=True)
            loss.backward()
            clf_opt.step()
            total += float(loss.detach()) * (chunk.stop - chunk.start)
        return total / (e - s)

    @torch.no_grad()
    def _exchange(self) -> dict[str, Any]:
        """Eq. 9 over the whole training set; the IPC moments restart from the new labels."""
        clf, _ = self._classifier()
        clf_logits = clf(self.x)
        self.logits = exchange_labels(self.logits, clf_logits, momentum=self.p.momentum, alpha=self.p.alpha)
        if self.adam is not None:
            self.adam.reset()
        # The classifier's accuracy on the clean set: a progress signal that needs no true training labels.
        clean_acc = (clf(self.xv).argmax(1) == self.onehot_val.argmax(1)).float().mean()
        out: dict[str, Any] = {"exchanged": True, "eac_clean_acc": float(clean_acc)}
        if self.y_true is not None:
            out["eac_label_acc"] = float((clf_logits.argmax(1) == self.y_true)[self.scored].float().mean())
        if self.p.eac_reset:
            self.clf, self.clf_opt = _new_classifier(self.x.shape[1], self.logits.shape[1], self.p)
        return out

    @torch.no_grad()
    def classifier_clean_error(self) -> float | None:
        """The EAC classifier's error on eq. 6's clean samples (None without EAC)."""
        if self.clf is None:
            return None
        return float((self.clf(self.xv).argmax(1) != self.onehot_val.argmax(1)).float().mean())

    def soft_labels(self) -> np.ndarray:
        soft = torch.softmax(self.p.alpha * self.logits, dim=1)
        out = torch.empty_like(soft)
        out[self.perm] = soft
        return out.numpy().astype(np.float32)


def _new_classifier(d: int, c: int, p: PurifyParams) -> tuple[torch.nn.Linear, torch.optim.Optimizer]:
    """EAC's linear classifier, zero-initialised (a convex problem: no random start needed), and its Adam."""
    clf = torch.nn.Linear(d, c)
    torch.nn.init.zeros_(clf.weight)
    torch.nn.init.zeros_(clf.bias)
    return clf, torch.optim.Adam(clf.parameters(), lr=p.eac_lr, weight_decay=p.eac_weight_decay)
