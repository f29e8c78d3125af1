"""Pre-activation ResNet-18 for 32x32 images.

References
----------
He, Zhang, Ren, Sun. "Identity Mappings in Deep Residual Networks." ECCV 2016.
Li, Socher, Hoi. "DivideMix: Learning with Noisy Labels as Semi-supervised Learning." ICLR 2020.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from .registry import register_model
from .residual import ResidualClassifier

__all__ = ["PreActBlock", "PreActResNet", "PreActResNet18"]


class PreActBlock(nn.Module):
    """BN-ReLU-conv twice, added to the identity; a projection, if any, reads the pre-activated input."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.shortcut: nn.Conv2d | None = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(x))
        residual = x if self.shortcut is None else self.shortcut(out)
        out = self._between_convs(F.relu(self.bn2(self.conv1(out))))
        return self.conv2(out) + residual

    def _between_convs(self, out: Tensor) -> Tensor:
        """What the second convolution reads: the first's BN-ReLU output (a Wide ResNet adds dropout)."""
        return out


class PreActResNet(ResidualClassifier):
    """A pre-activation ResNet: 3x3 stem conv, stages of :class:`PreActBlock`, final BN-ReLU, pool, linear.

    Parameters
    ----------
    num_blocks : sequence of int
        Blocks per stage; the first stage keeps the resolution, each later one halves it.
    widths : sequence of int
        Channels per stage; the stem has ``widths[0]``.
    num_classes : int, default=10
    in_channels : int, default=3
    """

    def __init__(
        self, num_blocks: Sequence[int], widths: Sequence[int], *, num_classes: int = 10, in_channels: int = 3
    ) -> None:
        super().__init__(
            PreActBlock,
            num_blocks,
            widths,
            num_classes=num_classes,
            in_channels=in_channels,
            pre_activation=True,
        )


@register_model("preact_resnet18")
class PreActResNet18(PreActResNet):
    """Pre-activation ResNet-18 for CIFAR (He et al., ECCV 2016), as used by DivideMix and its successors.

    Four stages of two blocks with 64/128/256/512 channels, a 3x3 stem without max pooling, 1x1
    projection shortcuts without BatchNorm, and a final BN-ReLU before pooling. About 11.17M
    parameters for 10 classes; ``feature_dim`` is 512.
    """

    def __init__(self, num_classes: int = 10, *, in_channels: int = 3) -> None:
        super().__init__((2, 2, 2, 2), (64, 128, 256, 512), num_classes=num_classes, in_channels=in_channels)
