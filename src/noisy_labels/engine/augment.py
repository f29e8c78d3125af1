"""Batch preparation on the device: uint8 images -> normalised float tensors, with augmentation.

Images stay uint8 NHWC on the device (4x smaller than float) and each batch is augmented as one tensor
(airbench-style), so there is no DataLoader and no per-image Python work. Random numbers come from an
explicit CPU ``torch.Generator`` so a run, and a resumed run, draw exactly the same augmentations.

Views
-----
=================  ==================================================================  ===================
view               images                                                              feature vectors
=================  ==================================================================  ===================
``test``           none                                                                identity
``weak``           random crop with zero padding + horizontal flip (the CIFAR recipe)  identity
``cutout_jitter``  weak + a random square cutout (half the side) + random              dropout + noise
                   brightness/contrast jitter: cheap, no extra dependency
``autoaugment``    weak + AutoAugment's CIFAR-10 policy (Cubuk et al. 2019; EMLC's     dropout + noise
                   clean batches, sec. 3.6), via kornia
``randaugment``    weak + RandAugment (Cubuk et al. 2020; LNL-flywheel's strong        dropout + noise
                   view, sec. 4.1), via kornia
=================  ==================================================================  ===================

Feature vectors: the papers only augment images, so every view beyond ``weak`` is the same documented
choice there, feature dropout (p = 0.2) and Gaussian noise (std 0.1 in standardised units), and needs no
kornia.

The two policies (the optional ``augment`` extra: ``pip install kornia``) run on the float batch in
[0, 1] after the weak view, as torchvision pipelines put them after crop and flip. kornia draws one
sub-policy (AutoAugment) or one set of operations (RandAugment) per call, shared by the whole batch; the
papers' pipelines draw them per image. So each image draws its own here, and the images that drew the
same one go through kornia in one call (at most 25 calls for AutoAugment, 13 per RandAugment step).

* ``autoaugment``: one of the 25 CIFAR-10 sub-policies per image, each operation applied with its own
  probability and magnitude (kornia's ``AutoAugment(policy="cifar10")``).
* ``randaugment``: the paper's 14 transformations (identity and the 13 of kornia's list that the paper
  names; kornia's invert and solarize-add are not among them), ``N`` drawn per image with replacement
  as in the paper, each at magnitude ``M`` on kornia's 0-30 scale (the value ranges are kornia's).
  Neither the LNL-flywheel paper nor kornia gives ``N`` and ``M``: the defaults are torchvision's,
  ``N = 2``, ``M = 9`` (its 31 magnitude bins are the same scale). They are :class:`BatchPreparer`
  fields, not config keys: a new config key changes the fingerprint of every stored benchmark run.
* One-channel images go through the colour operations as grey RGB and come back as their mean (every
  operation keeps equal channels equal).
* kornia draws from torch's global RNG. The preparer draws a seed from its generator and runs kornia
  under ``torch.random.fork_rng`` seeded with it (CPU and the batch's CUDA device), so the same generator
  state gives the same batch and the global RNG is left as it was.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property

import torch
import torch.nn.functional as F

from .._validation import check_choice
from ..config import VIEWS, View

try:  # optional (the augment extra): only the autoaugment and randaugment views of images need it
    import kornia.augmentation.auto as kornia_auto

    HAS_KORNIA = True
except ImportError:
    HAS_KORNIA = False

__all__ = ["BatchPreparer", "View", "VIEWS", "POLICY_VIEWS", "check_view"]

POLICY_VIEWS = ("autoaugment", "randaugment")  # the views kornia runs
FEATURE_DROPOUT = 0.2
FEATURE_NOISE_STD = 0.1
# kornia's RandAugment list has two operations that the paper's 14 transformations do not (sec. 3 of
# Cubuk et al. 2020 lists identity, auto-contrast, equalize, rotate, solarize, colour, posterize,
# contrast, brightness, sharpness, shear x/y, translate x/y).
NOT_IN_RANDAUGMENT_PAPER = ("invert", "solarize_add")
RANDAUGMENT_OPS = 2  # N: torchvision's default (the paper that uses the view gives none)
RANDAUGMENT_MAGNITUDE = 9  # M on kornia's scale (0, 30): torchvision's default

Transform = Callable[[torch.Tensor], torch.Tensor]


def check_view(view: str, *, is_image: bool = True) -> None:
    """One-line ``ValueError`` for an unknown view, or for kornia's views of images without kornia."""
    check_choice("view", view, VIEWS)
    if is_image and view in POLICY_VIEWS and not HAS_KORNIA:
        raise ValueError(f"the {view} view needs kornia: pip install kornia (the package's augment extra).")


@dataclass
class BatchPreparer:
    """Turns raw stored samples into model inputs for a given view."""

    is_image: bool
    mean: torch.Tensor | None = None  # (C,) per-channel, images only
    std: torch.Tensor | None = None
    crop_padding: int = 0
    flip: bool = False
    channels_last: bool = False
    randaugment_ops: int = RANDAUGMENT_OPS
    randaugment_magnitude: int = RANDAUGMENT_MAGNITUDE

    def __post_init__(self) -> None:
        if self.randaugment_ops < 1 or not 0 < self.randaugment_magnitude < 30:
            raise ValueError(
                "randaugment_ops must be >= 1 and randaugment_magnitude in 1..29, got "
                f"{self.randaugment_ops} and {self.randaugment_magnitude}."
            )

    def check_view(self, view: str) -> None:
        """``ValueError`` now, not at the first batch, for a view this preparer cannot make."""
        check_view(view, is_image=self.is_image)

    def __call__(
        self, raw: torch.Tensor, view: View, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        self.check_view(view)
        if not self.is_image:
            return raw if view in ("test", "weak") else feature_dropout_noise(raw, generator)
        x = raw.permute(0, 3, 1, 2)  # NHWC -> NCHW (a view; made contiguous below)
        if view != "test":
            x = self._weak(x, generator)
        x = self._strong(x.float().div_(255.0), view, generator)
        assert self.mean is not None and self.std is not None  # images always carry their statistics
        x = (x - self.mean.view(1, -1, 1, 1)) / self.std.view(1, -1, 1, 1)
        memory = torch.channels_last if self.channels_last else torch.contiguous_format
        return x.contiguous(memory_format=memory)

    def _weak(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        if self.crop_padding:
            x = random_translate(x, self.crop_padding, generator)
        return random_flip(x, generator) if self.flip else x

    def _strong(self, x: torch.Tensor, view: View, generator: torch.Generator | None) -> torch.Tensor:
        """The view's part beyond ``weak`` on float images in [0, 1]."""
        if view == "cutout_jitter":
            return cutout_jitter(x, generator)
        if view not in ("autoaugment", "randaugment"):
            return x
        # AutoAugment: one of its sub-policies per image; RandAugment: N of its operations per image
        ops, draws = (
            (self._autoaugment, 1) if view == "autoaugment" else (self._randaugment, self.randaugment_ops)
        )
        choices = torch.randint(0, len(ops), (len(x), draws), generator=generator)
        with global_rng_from(generator, x.device):
            for step in range(draws):
                x = apply_per_image(x, choices[:, step], ops)
        return x

    @cached_property
    def _autoaugment(self) -> list[Transform | None]:
        """The 25 sub-policies of AutoAugment's CIFAR-10 policy, each a kornia module."""
        policy = kornia_auto.AutoAugment(policy="cifar10")
        return [policy[i] for i in range(len(policy))]

    @cached_property
    def _randaugment(self) -> list[Transform | None]:
        """RandAugment's 14 transformations at this magnitude: identity (None) and 13 kornia modules."""
        kornia_list = kornia_auto.rand_augment.rand_augment.default_policy
        ops = [op for op in kornia_list if op[0][0] not in NOT_IN_RANDAUGMENT_PAPER]
        m = self.randaugment_magnitude
        return [None, *(kornia_auto.RandAugment(n=1, m=m, policy=[op]) for op in ops)]


def apply_per_image(
    x: torch.Tensor, choice: torch.Tensor, transforms: list[Transform | None]
) -> torch.Tensor:
    """Image ``i`` through ``transforms[choice[i]]`` (None: unchanged), one batched call per transform
    on the images that drew it. ``choice``: CPU int64, so splitting the batch needs no device sync."""
    counts = torch.bincount(choice, minlength=len(transforms)).tolist()
    groups = choice.argsort(stable=True).to(x.device).split(counts)
    out = x.clone()
    # no graph (kornia's magnitudes are parameters) and float32 for kornia's geometry under AMP
    with torch.no_grad(), torch.autocast(x.device.type, enabled=False):
        for transform, idx in zip(transforms, groups, strict=True):
            if transform is not None and len(idx):
                out[idx] = on_rgb(transform, x[idx])
    return out


def on_rgb(transform: Transform, x: torch.Tensor) -> torch.Tensor:
    """``transform`` of an RGB batch; a grey batch goes through as grey RGB (kornia's colour operations
    need 3 channels, and keep equal channels equal) and comes back as the channel mean."""
    if x.shape[1] != 1:
        return transform(x)
    return transform(x.expand(-1, 3, -1, -1)).mean(1, keepdim=True)


@contextmanager
def global_rng_from(generator: torch.Generator | None, device: torch.device) -> Iterator[None]:
    """Torch's global RNG (kornia's source) seeded from ``generator`` for the block, then restored."""
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    cuda = _cuda_index(device)
    with torch.random.fork_rng(devices=cuda):
        torch.default_generator.manual_seed(seed)
        for index in cuda:  # only the forked device: other GPUs' generators stay as they were
            torch.cuda.default_generators[index].manual_seed(seed)
        yield


def _cuda_index(device: torch.device) -> list[int]:
    if device.type != "cuda":
        return []
    return [device.index if device.index is not None else torch.cuda.current_device()]


def feature_dropout_noise(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Every view beyond ``weak`` of feature vectors: inverted dropout, then Gaussian noise."""
    keep = _rand(x.shape, generator, x.device) >= FEATURE_DROPOUT
    noise = torch.randn(x.shape, generator=generator).to(x.device) * FEATURE_NOISE_STD
    return x * keep / (1 - FEATURE_DROPOUT) + noise


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


def cutout_jitter(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """The ``cutout_jitter`` view's part beyond ``weak``: a cutout of half the side, then jitter 0.4."""
    x = random_cutout(x, max(1, x.shape[-1] // 2), generator)
    return random_brightness_contrast(x, 0.4, generator)


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
