"""Loss-based baselines: the methods differ from cross-entropy only in the per-batch loss (the losses
themselves are in :mod:`noisy_labels.losses`).

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

import torch.nn.functional as F

from ..losses import gce_loss, hard_bootstrap_loss, mae_loss, soft_bootstrap_loss
from .base import Method


class CrossEntropy(Method, name="ce"):
    """Plain cross-entropy on the (noisy) labels: the baseline every method must beat."""


@dataclass
class SoftBootstrapParams:
    beta: float = 0.95  # weight of the given label; Reed et al.'s soft value
    detach_prediction: bool = False  # the paper differentiates through z = p (an entropy term)


class SoftBootstrap(Method, name="bootstrap_soft", params=SoftBootstrapParams):
    def loss(self, logits, batch):
        return soft_bootstrap_loss(logits, batch.y, self.params.beta, self.params.detach_prediction)


@dataclass
class HardBootstrapParams:
    beta: float = 0.8  # Reed et al.'s hard value


class HardBootstrap(Method, name="bootstrap_hard", params=HardBootstrapParams):
    def loss(self, logits, batch):
        return hard_bootstrap_loss(logits, batch.y, self.params.beta)


@dataclass
class GCEParams:
    q: float = 0.7  # q -> 0 is CE, q = 1 is MAE


class GeneralizedCrossEntropy(Method, name="gce", params=GCEParams):
    def loss(self, logits, batch):
        return gce_loss(logits, batch.y, self.params.q)


class MeanAbsoluteError(Method, name="mae"):
    def loss(self, logits, batch):
        return mae_loss(logits, batch.y)


@dataclass
class LabelSmoothingParams:
    epsilon: float = 0.1


class LabelSmoothing(Method, name="label_smoothing", params=LabelSmoothingParams):
    def loss(self, logits, batch):
        return F.cross_entropy(logits, batch.y, label_smoothing=self.params.epsilon)
