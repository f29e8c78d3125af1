"""Wide residual networks (WRN-d-k) for 32x32 images.

References
----------
Zagoruyko, Komodakis. "Wide Residual Networks." BMVC 2016.
Shu et al. "Meta-Weight-Net: Learning an Explicit Mapping for Sample Weighting." NeurIPS 2019
(WRN-28-10 for its uniform-noise experiments).
"""

from __future__ import annotations

import functools
from typing import cast

import torch.nn.functional as F
from torch import Tensor, nn

from .preact_resnet import PreActBlock
from .registry import register_model
from .residual import ResidualClassifier

__all__ = ["WideBasicBlock", "WideResNet", "WideResNet28_10"]


class WideBasicBlock(PreActBlock):
    """Pre-activation block BN-ReLU-conv3x3 -> BN-ReLU-dropout-conv3x3, as in the official WRN code.

    When the shape changes, the 1x1 projection shortcut reads the pre-activated input.
    """

    def __init__(self, in_planes: int, planes: int, stride: int = 1, dropout: float = 0.0) -> None:
        super().__init__(in_planes, planes, stride)
        self.dropout = dropout

    def _between_convs(self, out: Tensor) -> Tensor:
        return F.dropout(out, p=self.dropout, training=self.training)

    def extra_repr(self) -> str:
        return f"dropout={self.dropout}"


@register_model("wide_resnet")
class WideResNet(ResidualClassifier):
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
        super().__init__(
            functools.partial(WideBasicBlock, dropout=dropout),
            (n, n, n),
            (16 * widen, 32 * widen, 64 * widen),
            num_classes=num_classes,
            in_channels=in_channels,
            stem_width=16,
            pre_activation=True,
        )
        self.depth = depth
        self.widen = widen
        nn.init.zeros_(cast(nn.Linear, self.head).bias)  # as the official WRN code


@register_model("wrn28_10")
class WideResNet28_10(WideResNet):
    """WRN-28-10 (Zagoruyko & Komodakis, 2016): :class:`WideResNet` with ``depth=28, widen=10``."""

    def __init__(self, num_classes: int = 10, *, in_channels: int = 3, dropout: float = 0.0) -> None:
        super().__init__(28, 10, num_classes=num_classes, in_channels=in_channels, dropout=dropout)
