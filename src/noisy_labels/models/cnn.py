"""The 9-layer CNN of Co-teaching (Han et al., NeurIPS 2018, Table 3), DMLP's Co-teaching backbone.

DMLP (Tu et al., CVPR 2023) runs Co-teaching and DMLP-Co-teaching on it (Table 4: "9-layer CNN is adopted
as the backbone network of Co-teaching"). The layers follow Co-teaching's Table 3 and its reference code
(bhanML/Co-teaching, ``model.py``): three 3x3 convolutions of 128 channels, 2x2 max pooling, dropout
0.25; three of 256, pooling, dropout; then 512, 256 and 128 channels, 3x3 *without padding*; global
average pooling and a linear layer. Every convolution is followed by BatchNorm and LeakyReLU (slope
0.01). About 4.43M parameters for 10 classes; ``feature_dim`` is 128.

Where this build departs from the reference code: the convolutions have no bias (BatchNorm's shift makes
it redundant; 2,048 parameters fewer), the weights start from :func:`~noisy_labels.models.base.init_weights`
like the other networks here, and dropout is active only in training mode (the reference calls
``F.dropout2d`` without ``training=``, so it also drops channels at test time). The dropout is the
reference's channel dropout (``nn.Dropout2d``).

The unpadded convolutions need at least 7x7 after the two poolings: inputs of 28x28 (MNIST) or more.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from .base import Classifier, conv_bn_act, init_weights
from .registry import register_model

__all__ = ["NineLayerCNN"]

LEAKY_SLOPE = 0.01  # Co-teaching's LeakyReLU


def _convs(in_channels: int, widths: Sequence[int], *, padding: int) -> list[nn.Module]:
    """3x3 conv-BN-LeakyReLU layers of the given widths, one after another."""
    layers: list[nn.Module] = []
    for width in widths:
        layers += conv_bn_act(in_channels, width, nn.LeakyReLU(LEAKY_SLOPE), padding=padding)
        in_channels = width
    return layers


def _pool_and_drop(dropout: float) -> list[nn.Module]:
    return [nn.MaxPool2d(2), nn.Dropout2d(dropout)]


@register_model("cnn9")
class NineLayerCNN(Classifier):
    """Co-teaching's 9-layer CNN for 32x32 (and 28x28) images; see the module docstring.

    Parameters
    ----------
    num_classes : int, default=10
    in_channels : int, default=3
    dropout : float, default=0.25
        Channel dropout after each of the two max poolings (Co-teaching, Table 3).
    """

    def __init__(self, num_classes: int = 10, *, in_channels: int = 3, dropout: float = 0.25) -> None:
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}.")
        layers = [
            *_convs(in_channels, (128, 128, 128), padding=1),
            *_pool_and_drop(dropout),
            *_convs(128, (256, 256, 256), padding=1),
            *_pool_and_drop(dropout),
            *_convs(256, (512, 256, 128), padding=0),  # unpadded, as the reference code
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        ]
        super().__init__(
            nn.Sequential(*layers), nn.Linear(128, num_classes), feature_dim=128, num_classes=num_classes
        )
        init_weights(self)
