"""The layout the CIFAR ResNets share: a 3x3 stem, stages of residual blocks, average pooling, a linear head.

ResNet-32/34/50 (post-activation), the pre-activation ResNet-18 and Wide ResNets differ only in their
blocks, their widths and where the BatchNorm-ReLU around the blocks goes; :class:`ResidualClassifier`
builds the rest once, so the parameter names (``backbone.stem``, ``backbone.layer1.0.conv1``, ...) and
the order in which the parameters are created (which random numbers each gets under a seed) are the
same in every one of them.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence

from torch import nn

from .base import Classifier, init_weights

__all__ = ["BlockFactory", "ResidualClassifier"]

#: Builds one residual block from ``(in_planes, width, stride)``.
BlockFactory = Callable[[int, int, int], nn.Module]


class ResidualClassifier(Classifier):
    """A 3x3 stride-1 stem, stages ``layer1..layerN`` of residual blocks, global average pooling, linear head.

    The first stage keeps the resolution; the first block of each later stage halves it (stride 2).
    Convolutions and normalisation layers get :func:`~noisy_labels.models.base.init_weights`.

    Parameters
    ----------
    block : callable
        ``(in_planes, width, stride) -> nn.Module``, one residual block.
    num_blocks : sequence of int
        Blocks per stage.
    widths : sequence of int
        Base channels per stage; a stage outputs ``width * expansion`` channels.
    num_classes : int
    in_channels : int
    pre_activation : bool, default=False
        Blocks that normalise their own input: the stem is then a bare convolution and a final BN-ReLU
        normalises the last block's sum. Otherwise the stem is conv-BN-ReLU and nothing follows the blocks.
    stem_width : int, optional
        Channels of the stem convolution; default ``widths[0]``.
    expansion : int, default=1
        Output channels of a block per base channel (4 for bottlenecks).
    """

    def __init__(
        self,
        block: BlockFactory,
        num_blocks: Sequence[int],
        widths: Sequence[int],
        *,
        num_classes: int,
        in_channels: int,
        pre_activation: bool = False,
        stem_width: int | None = None,
        expansion: int = 1,
    ) -> None:
        if len(num_blocks) != len(widths):
            raise ValueError(f"num_blocks {tuple(num_blocks)} and widths {tuple(widths)} differ in length.")
        stem_width = widths[0] if stem_width is None else stem_width
        # Built in this order, stem first, because the order decides which random numbers each layer gets.
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        layers["stem"] = _stem(in_channels, stem_width, pre_activation)
        in_planes = stem_width
        for i, (n, width) in enumerate(zip(num_blocks, widths, strict=True)):
            layers[f"layer{i + 1}"], in_planes = _stage(block, in_planes, n, width, expansion, first=i == 0)
        if pre_activation:
            # The last block's sum is not normalised yet; pre-activation networks end with one more BN-ReLU.
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


def _stem(in_channels: int, width: int, pre_activation: bool) -> nn.Module:
    conv = nn.Conv2d(in_channels, width, 3, padding=1, bias=False)
    if pre_activation:
        return conv  # no BN-ReLU here: the first block's own BN-ReLU pre-activates its input
    return nn.Sequential(conv, nn.BatchNorm2d(width), nn.ReLU())


def _stage(
    block: BlockFactory, in_planes: int, n: int, width: int, expansion: int, *, first: bool
) -> tuple[nn.Sequential, int]:
    """``n`` blocks, the first with stride 2 unless the stage is the first; and the stage's output width."""
    blocks = []
    for j in range(n):
        blocks.append(block(in_planes, width, 2 if not first and j == 0 else 1))
        in_planes = width * expansion
    return nn.Sequential(*blocks), in_planes
