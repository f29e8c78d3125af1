"""The airbench network: a fast CIFAR-10 classifier, sized for the CPU by default.

Keller Jordan, "94% on CIFAR-10 in 3.29 Seconds on a Single GPU" (arXiv:2404.00498, 2024; code
KellerJordan/airbench). Its layout, kept here:

* a **patch stem**: a 2x2 convolution without padding whose weights are the *whitening* transform of the
  training images' 2x2 patches (eigenvectors of their covariance divided by the square roots of the
  eigenvalues, and their negatives: ``2 * 4C`` channels), frozen, with a trained bias; then GELU.
  :meth:`AirbenchNet.data_init` computes it from training images (the engine calls it for every network
  it builds from scratch); without it the stem is a frozen random projection, and the network still
  trains, a little worse;
* three **conv groups**: conv 3x3 -> max-pool 2 -> BatchNorm -> GELU -> conv 3x3 -> BatchNorm -> GELU;
* global max pooling (airbench's final 3x3 max-pool on 32x32 inputs; here any input of 16x16 or more)
  and a linear head without bias whose logits are multiplied by ``logit_scale`` (airbench: 1/9; 1 here,
  see the parameter).

BatchNorm uses airbench's momentum (0.6 in PyTorch's convention: running statistics follow recent
batches closely, which suits runs of a few epochs). Widths ``(64, 256, 256)`` are airbench94's; the
default ``(32, 128, 128)`` trains ~8x faster on one CPU thread with bf16 (1,068 against 241 images/s,
``../shared/research/cpu-training.md``).

Departures, for the library's interfaces: the whitening weights are a buffer (saved in checkpoints,
never trained: ``torch.func.functional_call`` and the meta-gradient code see only trainable parameters);
the convolutions start from :func:`~noisy_labels.models.base.init_weights` (airbench partly from a
Dirac identity); BatchNorm learns its scale too (airbench fixes it at 1: every parameter here trains, so
that the meta-gradient code needs no exceptions). airbench's other tricks (look-ahead EMA of the
weights, its lr schedule, multi-crop test views) belong to the training recipe, not the network; the
flip test view is the engine's ``eval_flip``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import Classifier, init_weights
from .registry import register_model

__all__ = ["AirbenchNet", "patch_whitening"]

PATCH = 2  # the stem's kernel: 2x2 patches, stride 1, no padding
WHITENING_EPS = 5e-4  # airbench's: keeps the smallest eigenvalues from blowing the stem up
WHITENING_IMAGES = 5000  # images whose patches estimate the covariance (airbench: 5,000)


def patch_whitening(images: Tensor, eps: float = WHITENING_EPS) -> Tensor:
    """Conv weights ``(2 * k, C, 2, 2)`` (``k = 4C``) that whiten the 2x2 patches of ``images``.

    The rows are the covariance's eigenvectors scaled by ``1 / sqrt(eigenvalue + eps)``, then their
    negatives (after GELU both signs of each direction survive, as in airbench).
    """
    x = images.detach().float()
    channels = x.shape[1]
    patches = F.unfold(x, PATCH).transpose(1, 2).reshape(-1, channels * PATCH * PATCH).double()
    patches = patches - patches.mean(0)
    cov = patches.T @ patches / (len(patches) - 1)
    eigenvalues, eigenvectors = torch.linalg.eigh(cov)
    rows = eigenvectors.T / torch.sqrt(eigenvalues.clamp_min(0) + eps)[:, None]
    weight = torch.cat([rows, -rows]).reshape(-1, channels, PATCH, PATCH)
    return weight.to(images.dtype if images.dtype.is_floating_point else torch.float32)


class _WhiteningStem(nn.Module):
    """The frozen 2x2 whitening convolution (a buffer) with a trained bias, then GELU."""

    weight: Tensor

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        out = 2 * in_channels * PATCH * PATCH
        weight = torch.empty(out, in_channels, PATCH, PATCH)
        nn.init.kaiming_normal_(weight)  # a random frozen projection until data_init whitens it
        self.register_buffer("weight", weight)
        self.bias = nn.Parameter(torch.zeros(out))
        self.out_channels = out

    def forward(self, x: Tensor) -> Tensor:
        return F.gelu(F.conv2d(x, self.weight.to(x.dtype), self.bias.to(x.dtype)))


def _conv_group(in_channels: int, out_channels: int, momentum: float) -> nn.Sequential:
    """conv 3x3 -> max-pool 2 -> BN -> GELU -> conv 3x3 -> BN -> GELU (airbench's ConvGroup)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.MaxPool2d(2),
        nn.BatchNorm2d(out_channels, momentum=momentum),
        nn.GELU(),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels, momentum=momentum),
        nn.GELU(),
    )


class _ScaledLinear(nn.Linear):
    """A linear layer without bias whose output is multiplied by a constant (airbench's head)."""

    def __init__(self, in_features: int, out_features: int, scale: float) -> None:
        super().__init__(in_features, out_features, bias=False)
        self.scale = float(scale)

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x) * self.scale

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, scale={self.scale:g}"


@register_model("airbench")
class AirbenchNet(Classifier):
    """airbench's CIFAR network (see the module docstring); ``feature_dim`` is ``widths[-1]``.

    Parameters
    ----------
    num_classes : int, default=10
    in_channels : int, default=3
    widths : sequence of three int, default=(32, 128, 128)
        Channels of the three conv groups (airbench94: 64, 256, 256).
    bn_momentum : float, default=0.6
        BatchNorm's running-statistics momentum (PyTorch's convention; airbench's value).
    logit_scale : float, default=1.0
        Multiplies the head's logits. airbench's 1/9 goes with its large learning rate; with the
        library's SGD recipe (lr 0.2, CIFAR-10 20k images, 10 epochs, bf16) 1.0 reached 81.3% against
        80.7% for 1/9.
    """

    def __init__(
        self,
        num_classes: int = 10,
        *,
        in_channels: int = 3,
        widths: Sequence[int] = (32, 128, 128),
        bn_momentum: float = 0.6,
        logit_scale: float = 1.0,
    ) -> None:
        if len(widths) != 3:
            raise ValueError(f"widths must name the three conv groups' channels, got {list(widths)}.")
        stem = _WhiteningStem(in_channels)
        groups, prev = [], stem.out_channels
        for width in widths:
            groups.append(_conv_group(prev, int(width), bn_momentum))
            prev = int(width)
        backbone = nn.Sequential(stem, *groups, nn.AdaptiveMaxPool2d(1), nn.Flatten())
        super().__init__(
            backbone, _ScaledLinear(prev, num_classes, logit_scale), feature_dim=prev, num_classes=num_classes
        )
        init_weights(self)

    @torch.no_grad()
    def data_init(self, images: Tensor) -> None:
        """Whiten the stem on (normalised) training images: the first :data:`WHITENING_IMAGES` of them."""
        stem = cast(_WhiteningStem, cast(nn.Sequential, self.backbone)[0])
        stem.weight.copy_(patch_whitening(images[:WHITENING_IMAGES].to(stem.weight.device)))
