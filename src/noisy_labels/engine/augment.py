"""Batch preparation on the device: uint8 images -> normalised float tensors, with augmentation.

Images stay uint8 NHWC on the device (4x smaller than float) and each batch is augmented as one tensor
(airbench-style), so there is no DataLoader and no per-image Python work. Random numbers come from an
explicit CPU ``torch.Generator`` so a run, and a resumed run, draw exactly the same augmentations.

Views
-----
``test``   no augmentation.
``weak``   random crop with zero padding + horizontal flip (the standard CIFAR recipe).
``strong`` weak + a random square cutout (half the image side) + random brightness/contrast jitter,
           a tensor-only stand-in for RandAugment used by EMLC's clean batches and the flywheel's
           contrastive views.
For feature vectors ``weak``/``test`` are the identity and ``strong`` applies feature dropout (p = 0.2)
and Gaussian noise (std 0.1 in standardised units): documented choices, as the papers only augment images.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

View = Literal["test", "weak", "strong"]


@dataclass
class BatchPreparer:
    """Turns raw stored samples into model inputs for a given view."""

    is_image: bool
    mean: torch.Tensor | None = None  # (C,) per-channel, images only
    std: torch.Tensor | None = None
    crop_padding: int = 0
    flip: bool = False
    channels_last: bool = False

    def __call__(
        self, raw: torch.Tensor, view: View, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        if not self.is_image:
            return raw if view != "strong" else self._strong_features(raw, generator)
        x = raw.permute(0, 3, 1, 2)  # NHWC -> NCHW (a view; made contiguous below)
        if view != "test":
            if self.crop_padding:
                x = random_translate(x, self.crop_padding, generator)
            if self.flip:
                x = random_flip(x, generator)
        x = x.float().div_(255.0)
        if view == "strong":
            x = random_cutout(x, max(1, x.shape[-1] // 2), generator)
            x = random_brightness_contrast(x, 0.4, generator)
        assert self.mean is not None and self.std is not None  # images always carry their statistics
        x = (x - self.mean.view(1, -1, 1, 1)) / self.std.view(1, -1, 1, 1)
        memory = torch.channels_last if self.channels_last else torch.contiguous_format
        return x.contiguous(memory_format=memory)

    @staticmethod
    def _strong_features(x: torch.Tensor, generator) -> torch.Tensor:
        keep = _rand(x.shape, generator, x.device) >= 0.2
        noise = torch.randn(x.shape, generator=generator).to(x.device) * 0.1
        return x * keep / 0.8 + noise


def _rand(shape, generator, device) -> torch.Tensor:
    return torch.rand(shape, generator=generator).to(device)


def random_translate(x: torch.Tensor, padding: int, generator: torch.Generator | None) -> torch.Tensor:
    """Random crop of the zero-padded batch, one offset per image, by index arithmetic (no loop)."""
    n, _, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))
    offsets = torch.randint(0, 2 * padding + 1, (2, n), generator=generator).to(x.device)
    rows = offsets[0][:, None] + torch.arange(h, device=x.device)  # (N, H)
    cols = offsets[1][:, None] + torch.arange(w, device=x.device)  # (N, W)
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    channel = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return padded[batch, channel, rows[:, None, :, None], cols[:, None, None, :]]


def random_flip(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    flip = _rand((x.shape[0],), generator, x.device) < 0.5
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def random_cutout(x: torch.Tensor, size: int, generator: torch.Generator | None) -> torch.Tensor:
    """Zero one ``size`` x ``size`` square per image at a random centre (DeVries & Taylor 2017)."""
    n, _, h, w = x.shape
    cy = torch.randint(0, h, (n,), generator=generator).to(x.device)
    cx = torch.randint(0, w, (n,), generator=generator).to(x.device)
    ys = torch.arange(h, device=x.device)[None, :]
    xs = torch.arange(w, device=x.device)[None, :]
    in_y = (ys - cy[:, None]).abs() <= size // 2
    in_x = (xs - cx[:, None]).abs() <= size // 2
    mask = in_y[:, :, None] & in_x[:, None, :]
    return x.masked_fill(mask[:, None], 0.0)


def random_brightness_contrast(
    x: torch.Tensor, strength: float, generator: torch.Generator | None
) -> torch.Tensor:
    n = x.shape[0]
    brightness = 1.0 + (_rand((n,), generator, x.device) * 2 - 1) * strength
    contrast = 1.0 + (_rand((n,), generator, x.device) * 2 - 1) * strength
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * contrast.view(-1, 1, 1, 1) + mean
    return (x * brightness.view(-1, 1, 1, 1)).clamp_(0.0, 1.0)
