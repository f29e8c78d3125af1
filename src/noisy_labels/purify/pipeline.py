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
* Features are standardised with the training set's statistics (``standardize``).
* The cleanness score of a sample is its purified probability of the given label.
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

from .._validation import (
    check_choice,
    check_every_class_present,
    check_features,
    check_labels,
    check_num_classes,
    check_same_length,
)
from .eac import eac_loss, exchange_labels
from .ipc import RidgeOperator, RowAdam, ipc_value_and_grad, ridge_operator

__all__ = ["PurifyParams", "PurifyResult", "DMLPPurifier", "hard_labels"]


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
    ipc_steps: int = 1  # IPC steps per batch visit
    ipc_entropy: float = 1.0  # weight of H in eq. 6
    eac_lr: float = 1e-3  # Adam learning rate of the EAC classifier (measured; reference code: 0.03)
    eac_batch_size: int = 500  # EAC mini-batch (reference code)
    eac_entropy: float = 1.0  # weight of H in eq. 8
    eac_weight_decay: float = 1e-2  # Adam's L2 penalty on the EAC classifier (measured)
    eac_targets: str = "hard"  # y'_t of eq. 8: hard = argmax softmax(alpha Y) (measured) | soft
    eac_reset: bool = False  # re-initialise the EAC classifier after each exchange
    exchange_every: int = 20  # T of eq. 9, in epochs (reference code's epoch_T)
    momentum: float = 1.0  # eta_E of eq. 9 (Sec. 4.1); 0.3 keeps more of the given labels
    # Not in the paper: the hard label stays the given one while its purified probability is at least
    # keep_given x the largest (0 = the paper's argmax). On the CIFAR-10 features with momentum 0.3, 0.1
    # raised label accuracy on CIFAR-10N aggre 80.5 -> 87.2, sym50 77.9 -> 80.6, worst 77.5 -> 78.8, and
    # cost 0.9 points at sym80 (benchmarks/results/dmlp_tuning.md): purified labels are capped near the
    # classifier's own accuracy, so at low noise argmax replaces more right labels than wrong ones.
    keep_given: float = 0.0
    standardize: bool = True  # z-score features with the training statistics
    solve_dtype: str = "float64"  # precision of the ridge factorisation: float64 | float32

    def check(self) -> None:
        """Raise ``ValueError`` naming the first invalid value."""
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
        check_choice("ipc_optimizer", self.ipc_optimizer, ("adam", "sgd"))
        check_choice("eac_targets", self.eac_targets, ("soft", "hard"))
        check_choice("solve_dtype", self.solve_dtype, ("float64", "float32"))
        if not (self.ipc or self.eac):
            raise ValueError("at least one of ipc and eac must be on.")


def hard_labels(soft: np.ndarray, given: np.ndarray, keep_given: float = 0.0) -> np.ndarray:
    """Argmax of the purified labels, except where the given label keeps ``keep_given`` x the top mass.

    >>> hard_labels(np.array([[0.7, 0.3], [0.95, 0.05]]), np.array([1, 1]), keep_given=0.1).tolist()
    [1, 0]
    """
    top = soft.argmax(1)
    given_mass = soft[np.arange(len(given)), given]
    if keep_given == 0:
        return top.astype(np.int64)
    keep = given_mass >= keep_given * soft[np.arange(len(given)), top]
    return np.where(keep, given, top).astype(np.int64)


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
    """

    soft_labels: np.ndarray
    hard_labels: np.ndarray
    cleanness: np.ndarray
    history: list[dict[str, Any]] = field(default_factory=list)
    setup_seconds: float = 0.0
    seconds: float = 0.0


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
        p.check()
        with _torch_threads(self.threads):
            start = time.perf_counter()
            x, y, xv, yv, c, y_true = _validate(
                train_features, noisy_labels, clean_features, clean_labels, num_classes, true_labels
            )
            state = _State.build(x, y, xv, yv, c, p, y_true, self.seed)
            setup_seconds = time.perf_counter() - start
            history = []
            epochs = range(p.epochs)
            if progress:
                from tqdm.auto import tqdm

                epochs = tqdm(epochs, desc="dmlp purify", leave=False)
            for epoch in epochs:
                history.append(state.run_epoch(epoch))
                if callback is not None:
                    callback(history[-1])
            soft = state.soft_labels()
        hard = hard_labels(soft, y, p.keep_given)
        self.result_ = PurifyResult(
            soft_labels=soft,
            hard_labels=hard,
            cleanness=soft[np.arange(len(y)), y].astype(np.float32),
            history=history,
            setup_seconds=setup_seconds,
            seconds=time.perf_counter() - start,
        )
        return self.result_


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
    if num_classes is None:
        num_classes = int(max(y.max(), yv.max())) + 1
    num_classes = check_num_classes(num_classes)
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

    @classmethod
    def build(cls, x, y, xv, yv, c, p: PurifyParams, y_true, seed: int) -> _State:
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
        hard = self.logits.argmax(1)
        record["changed"] = float((hard != self.y).float().mean())
        if self.y_true is not None:
            record["label_acc"] = float((hard == self.y_true).float().mean())
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

    def _eac_steps(self, s: int, e: int) -> float:
        p = self.p
        targets = torch.softmax(p.alpha * self.logits[s:e], dim=1)
        if p.eac_targets == "hard":
            targets = F.one_hot(targets.argmax(1), targets.shape[1]).float()
        # Chunks are contiguous slices of the (randomly permuted) batch, visited in random order: a
        # gather per step cost ~40% of the EAC time on the CPU.
        starts = torch.arange(0, e - s, p.eac_batch_size)
        total = 0.0
        for i in starts[torch.randperm(len(starts), generator=self.gen)].tolist():
            chunk = slice(s + i, min(e, s + i + p.eac_batch_size))
            loss = eac_loss(
                self.clf(self.x[chunk]), targets[i : i + p.eac_batch_size], entropy_weight=p.eac_entropy
            )
            self.clf_opt.zero_grad(set_to_none=True)
            loss.backward()
            self.clf_opt.step()
            total += float(loss.detach()) * (chunk.stop - chunk.start)
        return total / (e - s)

    @torch.no_grad()
    def _exchange(self) -> dict[str, Any]:
        """Eq. 9 over the whole training set; the IPC moments restart from the new labels."""
        clf_logits = self.clf(self.x)
        self.logits = exchange_labels(self.logits, clf_logits, momentum=self.p.momentum, alpha=self.p.alpha)
        if self.adam is not None:
            self.adam.reset()
        # The classifier's accuracy on the clean set: a progress signal that needs no true training labels.
        clean_acc = (self.clf(self.xv).argmax(1) == self.onehot_val.argmax(1)).float().mean()
        out: dict[str, Any] = {"exchanged": True, "eac_clean_acc": float(clean_acc)}
        if self.y_true is not None:
            out["eac_label_acc"] = float((clf_logits.argmax(1) == self.y_true).float().mean())
        if self.p.eac_reset:
            self.clf, self.clf_opt = _new_classifier(self.x.shape[1], self.logits.shape[1], self.p)
        return out

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
