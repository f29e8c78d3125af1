"""The auxiliary networks of the meta methods: what judges or corrects the classifier's labels.

* :class:`WeightNet`: MW-Net's weighting network ``V(l; Theta)``, a 1-100-1 MLP with ReLU and a sigmoid
  output that maps a sample's loss to its weight (Shu et al., NeurIPS 2019, sec. 3; RMNW-Net sec. 3).
* :class:`LabelCorrector`: MLC's label-correction network (Zheng et al., AAAI 2021).
* :class:`GatedTeacher`: EMLC's teacher (Taraday & Baskin, CVPR 2023, Fig. 3).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import Classifier

__all__ = ["GatedTeacher", "LabelCorrector", "WeightNet"]


class WeightNet(nn.Module):
    """MW-Net's weighting function: per-sample loss -> weight in (0, 1).

    ``sigmoid(W2 relu(W1 l + b1) + b2)`` with one hidden layer of ``hidden`` units (100 in the papers),
    PyTorch's default ``nn.Linear`` initialisation (as the reference code).

    Parameters
    ----------
    hidden : int, default=100

    Examples
    --------
    >>> net = WeightNet(hidden=8)
    >>> tuple(net(torch.tensor([0.1, 2.0, 5.0])).shape)
    (3,)
    """

    def __init__(self, hidden: int = 100) -> None:
        super().__init__()
        if hidden < 1:
            raise ValueError(f"hidden must be >= 1, got {hidden}.")
        self.layers = nn.Sequential(nn.Linear(1, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, losses: Tensor) -> Tensor:
        """Weights of shape ``(B,)`` for per-sample losses of shape ``(B,)``."""
        return torch.sigmoid(self.layers(losses.reshape(-1, 1))).reshape(-1)


class LabelCorrector(nn.Module):
    """MLC's label-correction network: ``softmax(MLP([h, e(y~)]))`` from student features ``h``.

    Parameters
    ----------
    feature_dim : int
    num_classes : int
    embedding : int, default=128
    hidden : int, default=128

    Examples
    --------
    >>> net = LabelCorrector(5, 3, embedding=4, hidden=6)
    >>> q = net(torch.randn(2, 5), torch.tensor([0, 2]))
    >>> tuple(q.shape), bool(torch.allclose(q.sum(1), torch.ones(2)))
    ((2, 3), True)
    """

    def __init__(self, feature_dim: int, num_classes: int, *, embedding: int = 128, hidden: int = 128):
        super().__init__()
        self.embed = nn.Embedding(num_classes, embedding)
        self.net = nn.Sequential(
            nn.Linear(feature_dim + embedding, hidden),
            nn.Tanh(),
            nn.Linear(hidden, hidden),
            nn.Tanh(),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, h: Tensor, y: Tensor) -> Tensor:
        """Soft labels ``(B, C)`` for features ``(B, D)`` and noisy labels ``(B,)``."""
        return F.softmax(self.net(torch.cat([h, self.embed(y)], dim=1)), dim=1)


class GatedTeacher(nn.Module):
    """EMLC's teacher (Fig. 3): its own classifier, a label embedding and a gate MLP.

    ``w = sigmoid(MLP([h, z(y~)]))`` and ``q = w * onehot(y~) + (1 - w) * softmax(classifier(x))``, with
    ``h`` the classifier's backbone features. Reference sizes: embedding 128, one hidden layer of 128.

    Parameters
    ----------
    classifier : Classifier
        The teacher's feature extractor and classifier (not shared with the student).
    embedding : int, default=128
    hidden : int, default=128
    """

    def __init__(self, classifier: Classifier, *, embedding: int = 128, hidden: int = 128) -> None:
        super().__init__()
        self.classifier = classifier
        self.num_classes = classifier.num_classes
        self.embed = nn.Embedding(self.num_classes, embedding)
        self.gate = nn.Sequential(
            nn.Linear(classifier.feature_dim + embedding, hidden), nn.ReLU(), nn.Linear(hidden, 1)
        )

    def gate_logit(self, h: Tensor, y: Tensor) -> Tensor:
        """Pre-sigmoid gate ``(B,)`` for features ``h`` and (possibly noisy) labels ``y``."""
        return self.gate(torch.cat([h, self.embed(y).to(h.dtype)], dim=1)).squeeze(1)

    def forward(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """Soft labels ``(B, C)`` and gate ``(B,)``."""
        logits, h = self.classifier(x, return_features=True)
        w = torch.sigmoid(self.gate_logit(h, y))[:, None]
        onehot = F.one_hot(y, self.num_classes).to(logits.dtype)
        return w * onehot + (1.0 - w) * F.softmax(logits, dim=1), w.squeeze(1)
