"""Extrinsic auxiliary correction (EAC): DMLP's accompanying linear classifier (Tu et al., CVPR 2023).

A linear classifier ``C(f; w_c)`` learns from IPC's current labels with cross-entropy plus the entropy of
its own predictions (eq. 8); every ``T`` epochs its predictions replace the labels by a momentum (EMA)
update with rate ``eta_E`` (eq. 9).

Choice where the paper is silent: labels live as logits ``Y`` with ``P = softmax(alpha Y)`` (eq. 4), and
"``C(F_t; w_c)``" in eq. 9 is read as the classifier's predicted distribution, so the EMA is taken on
distributions, ``P <- (1 - eta_E) P + eta_E softmax(C(F_t))``, and mapped back to logits
``Y = log(P) / alpha``. With the paper's ``eta_E = 1`` this sets ``softmax(alpha Y)`` to exactly the
classifier's prediction.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["eac_loss", "exchange_labels"]


def eac_loss(logits: Tensor, targets: Tensor, *, entropy_weight: float = 1.0) -> Tensor:
    """Eq. 8: soft cross-entropy to IPC's label distributions plus the prediction entropy.

    Parameters
    ----------
    logits : Tensor of shape (B, C)
        The classifier's outputs.
    targets : Tensor of shape (B, C)
        IPC's current label distributions ``softmax(alpha Y)``.
    entropy_weight : float, default=1.0
        Weight of ``H(softmax(logits))`` (1 in eq. 8).

    Returns
    -------
    Tensor
        Scalar, averaged over the batch.
    """
    log_p = F.log_softmax(logits, dim=1)
    ce = -(targets * log_p).sum(1)
    entropy = -(log_p.exp() * log_p).sum(1)
    return (ce + entropy_weight * entropy).mean()


def exchange_labels(
    label_logits: Tensor, classifier_logits: Tensor, *, momentum: float, alpha: float
) -> Tensor:
    """Eq. 9: ``P <- (1 - eta_E) P + eta_E softmax(C(F_t))``, returned as label logits ``log(P) / alpha``.

    Parameters
    ----------
    label_logits : Tensor of shape (N, C)
        Current ``Y`` (labels are ``softmax(alpha Y)``).
    classifier_logits : Tensor of shape (N, C)
        ``C(F_t; w_c)``.
    momentum : float
        ``eta_E`` in [0, 1].
    alpha : float

    Returns
    -------
    Tensor of shape (N, C)
        New label logits, each row normalised so that ``logsumexp(alpha Y) = 0``.
    """
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"momentum (eta_E) must lie in [0, 1], got {momentum}.")
    log_new = F.log_softmax(classifier_logits, dim=1)
    if momentum < 1.0:
        log_old = F.log_softmax(alpha * label_logits, dim=1)
        if momentum == 0.0:
            log_new = log_old
        else:  # log((1 - eta) P_old + eta P_new), computed stably in log space
            log_new = torch.logaddexp(log_old + math.log1p(-momentum), log_new + math.log(momentum))
    return log_new / alpha
