"""Post-activation ResNets for 32x32 images: the CIFAR ResNet-32 and CIFAR-adapted ResNet-18/34/50.

All use a 3x3 stride-1 stem without max pooling, as 32x32 inputs are too small for ImageNet's 7x7
stride-2 stem plus pooling, and end with global average pooling, so other input sizes also work.

References
----------
He, Zhang, Ren, Sun. "Deep Residual Learning for Image Recognition." CVPR 2016.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Literal

import torch.nn.functional as F
from torch import Tensor, nn

from .registry import register_model
from .residual import ResidualClassifier

__all__ = ["BasicBlock", "Bottleneck", "ResNet", "ResNet18", "ResNet32", "ResNet34", "ResNet50"]

Shortcut = Literal["A", "B"]


class ZeroPadShortcut(nn.Module):
    """He et al.'s option A shortcut: subsample spatially, zero-pad the new channels (no parameters)."""

    def __init__(self, extra_channels: int, stride: int) -> None:
        super().__init__()
        self.extra_channels = extra_channels
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        half = self.extra_channels // 2
        return F.pad(x, (0, 0, 0, 0, half, self.extra_channels - half))


def _shortcut(in_planes: int, out_planes: int, stride: int, kind: Shortcut) -> nn.Module:
    """The residual path of a block: the identity, or option A or B where the shape changes."""
    if stride == 1 and in_planes == out_planes:
        return nn.Identity()
    if kind == "A":
        return ZeroPadShortcut(out_planes - in_planes, stride)
    # Option B: 1x1 convolution and BatchNorm.
    return nn.Sequential(
        nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False), nn.BatchNorm2d(out_planes)
    )


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (post-activation).

    Parameters
    ----------
    in_planes, planes : int
        Input and output channels.
    stride : int, default=1
        Stride of the first convolution.
    shortcut : {'A', 'B'}, default='B'
        How the residual adapts when the shape changes: ``'A'`` zero-pads channels (parameter-free,
        the CIFAR ResNets of He et al.), ``'B'`` uses a 1x1 convolution with BatchNorm.
    """

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1, shortcut: Shortcut = "B") -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = _shortcut(in_planes, planes, stride, shortcut)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    """1x1 -> 3x3 -> 1x1 bottleneck block with 4x channel expansion; stride on the 3x3 ("ResNet v1.5")."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1, shortcut: Shortcut = "B") -> None:
        super().__init__()
        out_planes = planes * self.expansion
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_planes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)
        self.shortcut = _shortcut(in_planes, out_planes, stride, shortcut)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + self.shortcut(x))


class ResNet(ResidualClassifier):
    """A post-activation ResNet for small images: 3x3 stem, stages of residual blocks, average pool, linear.

    Parameters
    ----------
    block : type[BasicBlock] or type[Bottleneck]
    num_blocks : sequence of int
        Blocks per stage. The first stage keeps the resolution, each later one halves it.
    widths : sequence of int
        Base channels per stage (the stem has ``widths[0]``); a stage outputs
        ``width * block.expansion`` channels.
    num_classes : int, default=10
    in_channels : int, default=3
    shortcut : {'A', 'B'}, default='B'
        See :class:`BasicBlock`.
    """

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        num_blocks: Sequence[int],
        widths: Sequence[int],
        *,
        num_classes: int = 10,
        in_channels: int = 3,
        shortcut: Shortcut = "B",
    ) -> None:
        if shortcut not in ("A", "B"):
            raise ValueError(f"shortcut must be 'A' (zero padding) or 'B' (1x1 conv), got {shortcut!r}.")
        super().__init__(
            functools.partial(block, shortcut=shortcut),
            num_blocks,
            widths,
            num_classes=num_classes,
            in_channels=in_channels,
            expansion=block.expansion,
        )


@register_model("resnet32")
class ResNet32(ResNet):
    """ResNet-32 for CIFAR (He et al., 2016, Sec. 4.2): 3 stages x 5 basic blocks, 16/32/64 channels.

    About 0.46M parameters with the default option-A (zero-padding) shortcut, as in the paper and in
    the ResNet-32 of Meta-Weight-Net (Shu et al., NeurIPS 2019) used for its flip noise experiments.
    ``shortcut='B'`` (1x1 convolutions) adds about 3k parameters. ``feature_dim`` is 64.
    """

    def __init__(self, num_classes: int = 10, *, in_channels: int = 3, shortcut: Shortcut = "A") -> None:
        super().__init__(
            BasicBlock,
            (5, 5, 5),
            (16, 32, 64),
            num_classes=num_classes,
            in_channels=in_channels,
            shortcut=shortcut,
        )


@register_model("resnet18")
class ResNet18(ResNet):
    """ResNet-18 (He et al., 2016) with a 3x3 stem and no max pooling for 32x32 inputs.

    Stages of 2/2/2/2 basic blocks with 64/128/256/512 channels and 1x1-convolution shortcuts with
    BatchNorm: the plain (post-activation) CIFAR ResNet-18 of the DivideMix and ELR code bases, about
    11.17M parameters for 10 classes. ``feature_dim`` is 512. The pre-activation variant is
    ``preact_resnet18``.
    """

    def __init__(self, num_classes: int = 10, *, in_channels: int = 3) -> None:
        super().__init__(
            BasicBlock, (2, 2, 2, 2), (64, 128, 256, 512), num_classes=num_classes, in_channels=in_channels
        )


@register_model("resnet34")
class ResNet34(ResNet):
    """ResNet-34 (He et al., 2016) with a 3x3 stem and no max pooling for 32x32 inputs.

    Stages of 3/4/6/3 basic blocks with 64/128/256/512 channels and 1x1-convolution shortcuts, about
    21.3M parameters for 10 classes; the CIFAR ResNet-34 used by e.g. ELR (Liu et al., NeurIPS 2020).
    ``feature_dim`` is 512.
    """

    def __init__(self, num_classes: int = 10, *, in_channels: int = 3) -> None:
        super().__init__(
            BasicBlock, (3, 4, 6, 3), (64, 128, 256, 512), num_classes=num_classes, in_channels=in_channels
        )


@register_model("resnet50")
class ResNet50(ResNet):
    """ResNet-50 (He et al., 2016) with a 3x3 stem and no max pooling for 32x32 inputs.

    Stages of 3/4/6/3 bottleneck blocks, about 23.5M parameters for 10 classes. ``feature_dim`` is
    2048.
    """

    def __init__(self, num_classes: int = 10, *, in_channels: int = 3) -> None:
        super().__init__(
            Bottleneck, (3, 4, 6, 3), (64, 128, 256, 512), num_classes=num_classes, in_channels=in_channels
        )
