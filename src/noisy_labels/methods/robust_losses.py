"""Loss-based baselines: the methods differ from cross-entropy only in the per-batch loss.

* ``ce``: cross-entropy on the given labels.
* ``bootstrap_soft`` / ``bootstrap_hard``: Reed et al., "Training deep neural networks on noisy labels
  with bootstrapping", ICLR-W 2015, eq. (the soft and hard bootstrapping objectives):
  ``L = -sum_k (beta * y_k + (1 - beta) * z_k) log p_k`` with ``z = p`` (soft, beta = 0.95) or
  ``z = onehot(argmax p)`` (hard, beta = 0.8), the paper's values.
* ``gce``: generalized cross-entropy, Zhang & Sabuncu, NeurIPS 2018, eq. 6: ``(1 - p_y^q) / q``, q = 0.7.
* ``mae``: mean absolute error between one-hot label and softmax, ``sum_k |y_k - p_k| = 2 (1 - p_y)``
  (Ghosh et al., AAAI 2017), the symmetric loss RMNW-Net uses as its meta loss.
* ``label_smoothing``: cross-entropy on ``(1 - eps) y + eps / C`` (Szegedy et al. 2016; studied under
  label noise by Lukasik et al., ICML 2020).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..meta import soft_cross_entropy
from .base import Method, register_method


def mean_soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Batch mean of :func:`noisy_labels.meta.soft_cross_entropy` (per sample), in float32 under AMP."""
    return soft_cross_entropy(targets)(logits.float()).mean()


def soft_bootstrap_loss(
    logits: torch.Tensor, labels: torch.Tensor, beta: float, detach: bool
) -> torch.Tensor:
    log_p = F.log_softmax(logits, dim=1)
    p = log_p.exp()
    z = p.detach() if detach else p
    target = beta * F.one_hot(labels, logits.shape[1]).to(logits.dtype) + (1.0 - beta) * z
    return -(target * log_p).sum(dim=1).mean()


def hard_bootstrap_loss(logits: torch.Tensor, labels: torch.Tensor, beta: float) -> torch.Tensor:
    log_p = F.log_softmax(logits, dim=1)
    pseudo = logits.detach().argmax(dim=1)
    nll = F.nll_loss(log_p, labels, reduction="none")
    nll_pseudo = F.nll_loss(log_p, pseudo, reduction="none")
    return (beta * nll + (1.0 - beta) * nll_pseudo).mean()


def gce_loss(logits: torch.Tensor, labels: torch.Tensor, q: float) -> torch.Tensor:
    p_y = F.softmax(logits, dim=1).gather(1, labels[:, None]).squeeze(1)
    return ((1.0 - p_y.clamp_min(1e-12) ** q) / q).mean()


def mae_loss(logits: torch.Tensor, labels: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """``sum_k |onehot(y)_k - p_k| = 2 (1 - p_y)`` per sample."""
    p_y = F.softmax(logits, dim=1).gather(1, labels[:, None]).squeeze(1)
    per_sample = 2.0 * (1.0 - p_y)
    return per_sample.mean() if reduction == "mean" else per_sample


@register_method
class CrossEntropy(Method):
    """Plain cross-entropy on the (noisy) labels: the baseline every method must beat."""

    name = "ce"


@dataclass
class SoftBootstrapParams:
    beta: float = 0.95  # weight of the given label; Reed et al.'s soft value
    detach_prediction: bool = False  # the paper differentiates through z = p (an entropy term)


@register_method
class SoftBootstrap(Method):
    name = "bootstrap_soft"
    Params = SoftBootstrapParams

    def loss(self, logits, batch):
        return soft_bootstrap_loss(logits, batch.y, self.params.beta, self.params.detach_prediction)


@dataclass
class HardBootstrapParams:
    beta: float = 0.8  # Reed et al.'s hard value


@register_method
class HardBootstrap(Method):
    name = "bootstrap_hard"
    Params = HardBootstrapParams

    def loss(self, logits, batch):
        return hard_bootstrap_loss(logits, batch.y, self.params.beta)


@dataclass
class GCEParams:
    q: float = 0.7  # q -> 0 is CE, q = 1 is MAE


@register_method
class GeneralizedCrossEntropy(Method):
    name = "gce"
    Params = GCEParams

    def loss(self, logits, batch):
        return gce_loss(logits, batch.y, self.params.q)


@register_method
class MeanAbsoluteError(Method):
    name = "mae"

    def loss(self, logits, batch):
        return mae_loss(logits, batch.y)


@dataclass
class LabelSmoothingParams:
    epsilon: float = 0.1


@register_method
class LabelSmoothing(Method):
    name = "label_smoothing"
    Params = LabelSmoothingParams

    def loss(self, logits, batch):
        return F.cross_entropy(logits, batch.y, label_smoothing=self.params.epsilon)
