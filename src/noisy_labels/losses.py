"""Every loss and loss-vector builder the methods use, in one place (they depend on torch alone).

* Loss vectors (``logits -> (B,)``, what the meta-gradients differentiate per sample):
  :func:`per_sample_ce`, :func:`soft_cross_entropy` (EMLC eq. 6 against soft labels),
  :func:`real_and_pseudo_ce` (L2B eq. 1: the given labels, then the hard pseudo-labels).
* Batch losses of the loss-based baselines (see :mod:`noisy_labels.methods.robust_losses` for the
  papers): :func:`soft_bootstrap_loss`, :func:`hard_bootstrap_loss`, :func:`gce_loss`, :func:`mae_loss`,
  and :func:`mean_soft_cross_entropy`.
* ELR's regulariser (Liu et al., NeurIPS 2020, eq. 6) and its clamped softmax.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

#: ``logits (B, C) -> per-sample losses``: what the meta-gradient code differentiates per sample.
LossVectorFn = Callable[[Tensor], Tensor]
#: ``(logits, labels) -> scalar``: a meta loss on a trusted batch.
MetaLossFn = Callable[[Tensor, Tensor], Tensor]

__all__ = [
    "LossVectorFn",
    "MetaLossFn",
    "clamped_softmax",
    "elr_regularizer",
    "gce_loss",
    "hard_bootstrap_loss",
    "mae_loss",
    "mean_soft_cross_entropy",
    "per_sample_ce",
    "real_and_pseudo_ce",
    "soft_bootstrap_loss",
    "soft_cross_entropy",
]


# ------------------------------------------------------------------------------------ loss vectors
def per_sample_ce(labels: Tensor) -> LossVectorFn:
    """``logits -> (B,)`` per-sample cross-entropy against ``labels``."""
    return lambda logits: F.cross_entropy(logits, labels, reduction="none")


def soft_cross_entropy(targets: Tensor) -> LossVectorFn:
    """``logits -> (B,)``: ``CE(q, p) = -sum_c q_c log p_c`` per sample against soft labels ``q`` (eq. 6).

    Examples
    --------
    >>> q = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
    >>> [round(v, 4) for v in soft_cross_entropy(q)(torch.zeros(2, 2)).tolist()]
    [0.6931, 0.6931]
    """
    return lambda logits: -(targets * F.log_softmax(logits, dim=1)).sum(dim=1)


def real_and_pseudo_ce(labels: Tensor) -> LossVectorFn:
    """``logits -> (2B,)``: CE with the given labels, then CE with the hard pseudo-labels (L2B eq. 1)."""

    def terms(logits: Tensor) -> Tensor:
        pseudo = logits.detach().argmax(dim=1)
        real = F.cross_entropy(logits, labels, reduction="none")
        return torch.cat([real, F.cross_entropy(logits, pseudo, reduction="none")])

    return terms


# ------------------------------------------------------------------------------------ batch losses
def mean_soft_cross_entropy(logits: Tensor, targets: Tensor) -> Tensor:
    """Batch mean of :func:`soft_cross_entropy` (per sample), in float32 under AMP."""
    return soft_cross_entropy(targets)(logits.float()).mean()


def soft_bootstrap_loss(logits: Tensor, labels: Tensor, beta: float, detach: bool) -> Tensor:
    log_p = F.log_softmax(logits, dim=1)
    p = log_p.exp()
    z = p.detach() if detach else p
    target = beta * F.one_hot(labels, logits.shape[1]).to(logits.dtype) + (1.0 - beta) * z
    return -(target * log_p).sum(dim=1).mean()


def hard_bootstrap_loss(logits: Tensor, labels: Tensor, beta: float) -> Tensor:
    log_p = F.log_softmax(logits, dim=1)
    pseudo = logits.detach().argmax(dim=1)
    nll = F.nll_loss(log_p, labels, reduction="none")
    nll_pseudo = F.nll_loss(log_p, pseudo, reduction="none")
    return (beta * nll + (1.0 - beta) * nll_pseudo).mean()


def gce_loss(logits: Tensor, labels: Tensor, q: float) -> Tensor:
    p_y = F.softmax(logits, dim=1).gather(1, labels[:, None]).squeeze(1)
    return ((1.0 - p_y.clamp_min(1e-12) ** q) / q).mean()


def mae_loss(logits: Tensor, labels: Tensor, reduction: str = "mean") -> Tensor:
    """``sum_k |onehot(y)_k - p_k| = 2 (1 - p_y)`` per sample."""
    p_y = F.softmax(logits, dim=1).gather(1, labels[:, None]).squeeze(1)
    per_sample = 2.0 * (1.0 - p_y)
    return per_sample.mean() if reduction == "mean" else per_sample


# ------------------------------------------------------------------------------------ ELR
def elr_regularizer(probs: Tensor, targets: Tensor) -> Tensor:
    """``mean_i log(1 - <p_i, t_i>)`` (ELR's regulariser; minimising it raises ``<p, t>``)."""
    return torch.log1p(-(probs * targets).sum(dim=1)).mean()


def clamped_softmax(logits: Tensor, eps: float = 1e-4) -> Tensor:
    return F.softmax(logits.float(), dim=1).clamp(eps, 1.0 - eps)
