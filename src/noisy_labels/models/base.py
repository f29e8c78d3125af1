"""The ``Classifier`` base class: every network is a ``backbone`` followed by a ``head``.

Methods for noisy labels need more than logits: contrastive and purification methods read the
penultimate features, some freeze the backbone and train only the head, co-training methods build a
second network. A fixed two-part layout gives them all one interface.

The models are written so that ``torch.func.functional_call`` and forward-mode AD
(``torch.autograd.forward_ad``) work through them: no in-place activations, no tensors cached on the
module, no state besides BatchNorm's running statistics.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import Tensor, nn

__all__ = ["Classifier", "conv_bn_act", "eval_mode", "init_weights"]


@contextlib.contextmanager
def eval_mode(*modules: nn.Module) -> Iterator[None]:
    """Evaluation mode (BatchNorm running statistics, no dropout) inside the block; modes restored."""
    modes = [m.training for m in modules]
    for m in modules:
        m.eval()
    try:
        yield
    finally:
        for m, mode in zip(modules, modes, strict=True):
            m.train(mode)


class Classifier(nn.Module):
    """A feature extractor followed by a classification head.

    ``forward(x) = head(backbone(x))``. Subclasses build the two parts and pass them here; the class
    can also wrap any pair of modules directly.

    Parameters
    ----------
    backbone : nn.Module
        Maps an input batch to features of shape ``(B, feature_dim)``.
    head : nn.Module
        Maps features ``(B, feature_dim)`` to logits ``(B, num_classes)``.
    feature_dim : int
        Width of the backbone's output.
    num_classes : int
        Number of logits the head produces.

    Attributes
    ----------
    backbone, head : nn.Module
    feature_dim, num_classes : int

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> net = Classifier(nn.Flatten(), nn.Linear(4, 3), feature_dim=4, num_classes=3)
    >>> logits, feats = net.forward_with_features(torch.zeros(2, 4))
    >>> tuple(logits.shape), tuple(feats.shape)
    ((2, 3), (2, 4))
    """

    backbone: nn.Module
    head: nn.Module
    feature_dim: int
    num_classes: int

    def __init__(self, backbone: nn.Module, head: nn.Module, *, feature_dim: int, num_classes: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.feature_dim = int(feature_dim)
        self.num_classes = int(num_classes)

    def forward(self, x: Tensor, *, return_features: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """Logits ``(B, num_classes)``; with ``return_features=True`` the pair ``(logits, features)``.

        The keyword exists because ``torch.func.functional_call`` can only call ``forward``: pass
        ``kwargs={"return_features": True}`` to get features from a functional call.
        """
        feats = self.backbone(x)
        logits = self.head(feats)
        return (logits, feats) if return_features else logits

    def data_init(self, images: Tensor) -> None:
        """Initialisation from training inputs (normalised, as the network sees them), called once by the
        engine on every network it builds from scratch; a no-op unless a network needs it (airbench's
        whitening stem)."""

    def features(self, x: Tensor) -> Tensor:
        """Backbone features of shape ``(B, feature_dim)``."""
        return self.backbone(x)

    def forward_with_features(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Logits ``(B, num_classes)`` and features ``(B, feature_dim)`` from a single forward pass."""
        return self(x, return_features=True)

    def extra_repr(self) -> str:
        return f"feature_dim={self.feature_dim}, num_classes={self.num_classes}"


def conv_bn_act(
    in_channels: int,
    out_channels: int,
    activation: nn.Module,
    *,
    kernel_size: int = 3,
    padding: int = 1,
) -> list[nn.Module]:
    """Convolution, BatchNorm, activation: the unit of the plain CNNs (no conv bias: BatchNorm shifts)."""
    return [
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, bias=False),
        nn.BatchNorm2d(out_channels),
        activation,
    ]


@torch.no_grad()
def init_weights(module: nn.Module) -> None:
    """Initialise convolutions and normalisation layers as the reference ResNet/WRN code does.

    Convolutions get He (Kaiming) normal initialisation with ``mode="fan_out"`` (He et al., 2015, as
    in torchvision's ResNet and the official Wide ResNet code), normalisation layers weight 1 and bias
    0. Linear layers keep PyTorch's default initialisation.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm)) and m.affine:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
