"""Pre-activation ResNet-18 for 32x32 images.

References
----------
He, Zhang, Ren, Sun. "Identity Mappings in Deep Residual Networks." ECCV 2016.
Li, Socher, Hoi. "DivideMix: Learning with Noisy Labels as Semi-supervised Learning." ICLR 2020.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from .base import Classifier, init_weights
from .registry import register_model

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
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + residual


class PreActResNet(Classifier):
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
        if len(num_blocks) != len(widths):
            raise ValueError(f"num_blocks {tuple(num_blocks)} and widths {tuple(widths)} differ in length.")
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        # No BN-ReLU after the stem: the first block's own BN-ReLU pre-activates its input.
        layers["stem"] = nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False)
        in_planes = widths[0]
        for i, (n, width) in enumerate(zip(num_blocks, widths, strict=True)):
            blocks = []
            for j in range(n):
                blocks.append(PreActBlock(in_planes, width, 2 if i > 0 and j == 0 else 1))
                in_planes = width
            layers[f"layer{i + 1}"] = nn.Sequential(*blocks)
        # The last block's sum is not normalised yet; the final BN-ReLU is part of the pre-activation design.
        layers["norm"] = nn.BatchNorm2d(in_planes)
        layers["act"] = nn.ReLU()
        layers["pool"] = nn.AdaptiveAvgPool2d(1)
        layers["flatten"] = nn.Flatten()
        super().__init__(
            nn.Sequential(layers),
            nn.Linear(in_planes, num_classes),
            feature_dim=in_planes,
            num_classes=num_classes,
        )
        init_weights(self)


@register_model("preact_resnet18")
class PreActResNet18(PreActResNet):
    """Pre-activation ResNet-18 for CIFAR (He et al., ECCV 2016), as used by DivideMix and its successors.

    Four stages of two blocks with 64/128/256/512 channels, a 3x3 stem without max pooling, 1x1
    projection shortcuts without BatchNorm, and a final BN-ReLU before pooling. About 11.17M
    parameters for 10 classes; ``feature_dim`` is 512.
    """

    def __init__(self, num_classes: int = 10, *, in_channels: int = 3) -> None:
        super().__init__((2, 2, 2, 2), (64, 128, 256, 512), num_classes=num_classes, in_channels=in_channels)
