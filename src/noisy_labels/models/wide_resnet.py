"""Wide residual networks (WRN-d-k) for 32x32 images.

References
----------
Zagoruyko, Komodakis. "Wide Residual Networks." BMVC 2016.
Shu et al. "Meta-Weight-Net: Learning an Explicit Mapping for Sample Weighting." NeurIPS 2019
(WRN-28-10 for its uniform-noise experiments).
"""

from __future__ import annotations

from collections import OrderedDict

import torch.nn.functional as F
from torch import Tensor, nn

from .base import Classifier, init_weights
from .registry import register_model

__all__ = ["WideBasicBlock", "WideResNet", "WideResNet28_10"]


class WideBasicBlock(nn.Module):
    """Pre-activation block BN-ReLU-conv3x3 -> BN-ReLU-dropout-conv3x3, as in the official WRN code.

    When the shape changes, the 1x1 projection shortcut reads the pre-activated input.
    """

    def __init__(self, in_planes: int, planes: int, stride: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.dropout = dropout
        self.shortcut: nn.Conv2d | None = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(x))
        residual = x if self.shortcut is None else self.shortcut(out)
        out = F.relu(self.bn2(self.conv1(out)))
        out = F.dropout(out, p=self.dropout, training=self.training)
        return self.conv2(out) + residual

    def extra_repr(self) -> str:
        return f"dropout={self.dropout}"


@register_model("wide_resnet")
class WideResNet(Classifier):
    """WRN-``depth``-``widen`` (Zagoruyko & Komodakis, 2016).

    A 3x3 stem with 16 channels, three stages of ``(depth - 4) / 6`` :class:`WideBasicBlock` with
    ``16k``, ``32k`` and ``64k`` channels (``k = widen``), a final BN-ReLU, global average pooling and
    a linear head. WRN-28-10 has about 36.5M parameters; ``feature_dim`` is ``64 * widen``.

    Parameters
    ----------
    depth : int, default=28
        Total depth; ``depth - 4`` must be divisible by 6.
    widen : int, default=10
        Width multiplier ``k``.
    num_classes : int, default=10
    in_channels : int, default=3
    dropout : float, default=0.0
        Dropout between the two convolutions of each block (the paper uses 0.3 in some runs;
        Meta-Weight-Net uses none).
    """

    def __init__(
        self,
        depth: int = 28,
        widen: int = 10,
        *,
        num_classes: int = 10,
        in_channels: int = 3,
        dropout: float = 0.0,
    ) -> None:
        if depth < 10 or (depth - 4) % 6 != 0:
            raise ValueError(
                f"WideResNet depth must be 6n + 4 with n >= 1 (e.g. 16, 22, 28, 40), got {depth}."
            )
        if widen < 1:
            raise ValueError(f"widen must be a positive integer, got {widen}.")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}.")
        n = (depth - 4) // 6
        widths = (16 * widen, 32 * widen, 64 * widen)
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        layers["stem"] = nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)
        in_planes = 16
        for i, width in enumerate(widths):
            blocks = []
            for j in range(n):
                blocks.append(WideBasicBlock(in_planes, width, 2 if i > 0 and j == 0 else 1, dropout))
                in_planes = width
            layers[f"layer{i + 1}"] = nn.Sequential(*blocks)
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
        self.depth = depth
        self.widen = widen
        init_weights(self)
        nn.init.zeros_(self.head.bias)  # as the official WRN code


@register_model("wrn28_10")
class WideResNet28_10(WideResNet):
    """WRN-28-10 (Zagoruyko & Komodakis, 2016): :class:`WideResNet` with ``depth=28, widen=10``."""

    def __init__(self, num_classes: int = 10, *, in_channels: int = 3, dropout: float = 0.0) -> None:
        super().__init__(28, 10, num_classes=num_classes, in_channels=in_channels, dropout=dropout)
