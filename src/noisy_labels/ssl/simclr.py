"""SimCLR: label-free representation learning (Chen et al., ICML 2020), DMLP's first stage.

Two random augmentations of every image go through the encoder and a small projection head; the
NT-Xent loss pulls the two views of an image together and pushes the other ``2B - 2`` images of the
batch away. The labels are never read, so noisy labels cannot leak into the representation.

Augmentations run on whole batches of tensors (no per-image Python): a random resized crop through one
``affine_grid``/``grid_sample`` call (with the horizontal flip folded into the same affine map), then for
RGB images the colour distortion of appendix A: with p = 0.8 brightness, contrast and saturation jitter
of strength ``0.8 s`` (and, with ``hue``, a hue rotation of up to ``0.2 s`` of a turn), then random
grayscale (p = 0.2); for single-channel images (MNIST) colour is meaningless, so crop + additive Gaussian
noise. Gaussian blur (appendix A: p = 0.5, sigma in [0.1, 2], a kernel of 10% of the image side) is a
switch: the CIFAR-10 recipe leaves it out (appendix B.9).

Every part of the recipe is a :class:`SimCLRParams` key. The defaults are CPU-sized (Adam 1e-3, batch
256, projection 64, no warm-up); the paper's CIFAR-10 recipe (appendix B.9 with the sec. 2.3 defaults:
LARS, ``lr x B / 256``, 10 warm-up epochs, cosine decay, weight decay 1e-6, temperature 0.5, a 128-d
projection, s = 0.5, no blur) is spelled out in the paper configs (``configs/*dmlp*_paper.yaml``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from .._validation import check_choice
from .optim import LR_SCALINGS, OPTIMIZERS, WarmupCosine, make_optimizer, peak_learning_rate

__all__ = ["SimCLRParams", "nt_xent_loss", "simclr_views", "ProjectionHead", "train_simclr", "image_stats"]


@dataclass
class SimCLRParams:
    """SimCLR hyper-parameters. The defaults are CPU-sized; the comments give the paper's values.

    Raises ``ValueError`` naming the first invalid key when built.
    """

    epochs: int = 10  # paper: 100 (sec. 2.3, ImageNet); CIFAR-10 runs up to 1000 (reference README)
    batch_size: int = 256  # B images -> 2B views per step; paper: 4096 (ImageNet), 1024 (B.9's best CIFAR)
    optimizer: str = "adam"  # adam | sgd | lars (the paper's, sec. 2.2)
    lr: float = 1e-3  # base learning rate, scaled by lr_scaling; paper: 0.3 (linear), B.9: 0.5 / 1.0 / 1.5
    lr_scaling: str = "none"  # none | linear (lr * B / 256, sec. 2.3) | sqrt (lr * sqrt(B), appendix B.1)
    warmup_epochs: int = 0  # linear warm-up from 0, then cosine decay to 0; paper: 10 (sec. 2.3)
    weight_decay: float = 1e-6  # paper: 1e-6 (sec. 2.3); LARS leaves biases and norms undecayed
    momentum: float = 0.9  # sgd and lars (the reference code's default)
    trust_coefficient: float = 1e-3  # LARS eta (the reference code's default)
    temperature: float = 0.5  # tau of NT-Xent; 0.5 is B.9's best on CIFAR-10 (ImageNet: 0.1)
    proj_dim: int = 64  # output of the projection head; paper: 128 (sec. 2.3)
    proj_hidden: int | None = None  # hidden width of the head; None: the encoder's width (as the paper)
    crop_scale: tuple[float, float] = (0.2, 1.0)  # area of the random resized crop (RGB); paper: 0.08-1
    gray_crop_scale: tuple[float, float] = (0.5, 1.0)  # digits lose their identity in smaller crops
    color_strength: float = 0.5  # s of the colour distortion (jitter 0.8 s); paper: 1.0, CIFAR-10: 0.5 (B.9)
    hue: bool = False  # hue jitter of up to 0.2 s of a turn, part of the paper's colour distortion
    blur: bool = False  # Gaussian blur (appendix A); the CIFAR-10 recipe leaves it out (B.9)
    noise_std: float = 0.1  # additive noise in [0, 1] pixel units, single-channel images only
    max_images: int | None = None  # train on a random subset (CPU budgets)

    def __post_init__(self) -> None:
        self._check_sizes()
        self._check_optimisation()
        self._check_augmentation()

    def _check_sizes(self) -> None:
        for name in ("epochs", "proj_dim"):
            _check_at_least(name, getattr(self, name), 1)
        _check_at_least("batch_size", self.batch_size, 2)  # NT-Xent needs another image as negative
        if self.proj_hidden is not None:
            _check_at_least("proj_hidden", self.proj_hidden, 1)
        if self.max_images is not None:
            _check_at_least("max_images", self.max_images, 2)

    def _check_optimisation(self) -> None:
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("lr_scaling", self.lr_scaling, LR_SCALINGS)
        _check_at_least("warmup_epochs", self.warmup_epochs, 0)
        if self.warmup_epochs >= self.epochs:
            raise ValueError(
                f"warmup_epochs must be below SimCLR's epochs ({self.epochs}), got {self.warmup_epochs}."
            )
        for name in ("lr", "temperature", "trust_coefficient"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}.")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}.")
        if not 0.0 <= self.momentum < 1.0:
            raise ValueError(f"momentum must lie in [0, 1), got {self.momentum}.")

    def _check_augmentation(self) -> None:
        if not 0.0 <= self.color_strength <= 1.25:  # brightness etc. scale by 1 +- 0.8 s, never below 0
            raise ValueError(f"color_strength must lie in [0, 1.25], got {self.color_strength}.")
        for name in ("crop_scale", "gray_crop_scale"):
            low, high = getattr(self, name)
            if not 0.0 < low <= high <= 1.0:
                raise ValueError(f"{name} must be (low, high) with 0 < low <= high <= 1, got {(low, high)}.")
        if self.noise_std < 0:
            raise ValueError(f"noise_std must be >= 0, got {self.noise_std}.")


def _check_at_least(name: str, value: int, low: int) -> None:
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}.")


def nt_xent_loss(z1: Tensor, z2: Tensor, temperature: float = 0.5, labels: Tensor | None = None) -> Tensor:
    """Normalised-temperature cross-entropy over the ``2B`` projected views (SimCLR), or SupCon's loss.

    Each of the ``2B`` embeddings is an anchor whose candidates are the other ``2B - 1``; its positive is
    the other view of the same sample (SimCLR, Chen et al. 2020) or, with ``labels``, every other
    embedding of the same label (SupCon, Khosla et al. 2020, the "L_out" form: the mean log-probability of
    the positives). Embeddings are L2-normalised inside; the loss is computed in float32.

    Parameters
    ----------
    z1, z2 : Tensor of shape (B, k)
        Projections of the two views; row ``i`` of each comes from the same image.
    temperature : float, default=0.5
    labels : Tensor of shape (B,), optional
        Class of each sample (SupCon); None for SimCLR.

    Returns
    -------
    Tensor
        Scalar: the mean over all ``2B`` anchors of ``-log softmax(sim / tau)`` at the positive(s).

    Examples
    --------
    >>> z = torch.eye(4)
    >>> float(nt_xent_loss(z, z, temperature=0.1)) < 0.01  # identical views, orthogonal images
    True
    """
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    n = z.shape[0]
    sim = z @ z.T / temperature
    self_mask = torch.eye(n, dtype=torch.bool, device=z.device)
    log_prob = sim.masked_fill(self_mask, float("-inf")).log_softmax(dim=1)
    if labels is None:
        partner = torch.arange(n, device=z.device).roll(n // 2)  # i <-> i + B
        return -log_prob[torch.arange(n, device=z.device), partner].mean()
    both = torch.cat([labels, labels])
    positives = (both[:, None] == both[None, :]) & ~self_mask  # never empty: the other view is one
    return -(log_prob.masked_fill(~positives, 0.0).sum(1) / positives.sum(1)).mean()


class ProjectionHead(nn.Sequential):
    """SimCLR's MLP head ``g``: Linear -> ReLU -> Linear (used for the loss only, dropped afterwards)."""

    def __init__(self, in_dim: int, out_dim: int = 64, hidden: int | None = None) -> None:
        hidden = hidden or in_dim
        super().__init__(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, out_dim))


def image_stats(images: Tensor) -> tuple[Tensor, Tensor]:
    """Per-channel mean and std in [0, 1] units of uint8 NHWC images."""
    flat = images.reshape(-1, images.shape[-1]).double() / 255.0
    return flat.mean(0).float(), flat.std(0).float() + 1e-8


def _uniform(n: int, low: float, high: float, gen: torch.Generator) -> Tensor:
    return torch.rand(n, generator=gen) * (high - low) + low


def random_resized_crop(x: Tensor, scale: tuple[float, float], flip: bool, gen: torch.Generator) -> Tensor:
    """Crop a random area fraction in ``scale`` (aspect ratio 3/4..4/3), resize to the input size."""
    n = len(x)
    area = _uniform(n, *scale, gen)
    log_ratio = _uniform(n, math.log(3 / 4), math.log(4 / 3), gen)
    w = (area * log_ratio.exp()).sqrt().clamp(max=1.0)  # half-widths in grid units (input spans [-1, 1])
    h = (area / log_ratio.exp()).sqrt().clamp(max=1.0)
    cx = (torch.rand(n, generator=gen) * 2 - 1) * (1 - w)
    cy = (torch.rand(n, generator=gen) * 2 - 1) * (1 - h)
    sign = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0) if flip else torch.ones(n)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = w * sign, cx
    theta[:, 1, 1], theta[:, 1, 2] = h, cy
    grid = F.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


_LUMA = (0.299, 0.587, 0.114)  # ITU-R 601 grey, as torchvision's rgb_to_grayscale
_RGB_TO_YIQ = ((0.299, 0.587, 0.114), (0.596, -0.274, -0.322), (0.211, -0.523, 0.312))


def _gray(x: Tensor) -> Tensor:
    return (x * torch.tensor(_LUMA, device=x.device).view(1, 3, 1, 1)).sum(1, keepdim=True)


def rotate_hue(x: Tensor, turns: Tensor) -> Tensor:
    """Rotate the hue of RGB images by ``turns`` of a full circle each (one value per image).

    A rotation of the chroma plane in YIQ space: luma is kept exactly, and it is the HSV hue shift of
    torchvision's ``adjust_hue`` up to the difference between the two colour models.
    """
    to_yiq = torch.tensor(_RGB_TO_YIQ, device=x.device)
    yiq = torch.einsum("ij,njhw->nihw", to_yiq, x)
    angle = (2 * math.pi * turns).to(x.device).view(-1, 1, 1)
    cos, sin = angle.cos(), angle.sin()
    i, q = yiq[:, 1], yiq[:, 2]
    rotated = torch.stack([yiq[:, 0], i * cos - q * sin, i * sin + q * cos], dim=1)
    return torch.einsum("ij,njhw->nihw", torch.linalg.inv(to_yiq), rotated)


def color_distort(x: Tensor, strength: float, gen: torch.Generator, *, hue: bool = False) -> Tensor:
    """Appendix A's colour distortion of strength ``s``, on RGB images in [0, 1].

    With p = 0.8: brightness, contrast and saturation factors drawn from ``1 +- 0.8 s`` and, with ``hue``,
    a hue rotation of up to ``0.2 s`` of a turn; then random grayscale (p = 0.2).
    """
    n, dev, jitter = len(x), x.device, 0.8 * strength

    def factor() -> Tensor:
        return _uniform(n, 1 - jitter, 1 + jitter, gen).to(dev).view(n, 1, 1, 1)

    apply = (torch.rand(n, generator=gen) < 0.8).to(dev).view(n, 1, 1, 1)
    y = x * factor()
    y = (y - y.mean((1, 2, 3), keepdim=True)) * factor() + y.mean((1, 2, 3), keepdim=True)
    y_gray = _gray(y)
    y = (y - y_gray) * factor() + y_gray
    if hue:
        y = rotate_hue(y, _uniform(n, -0.2 * strength, 0.2 * strength, gen))
    x = torch.where(apply, y.clamp(0, 1), x)
    to_gray = (torch.rand(n, generator=gen) < 0.2).to(dev).view(n, 1, 1, 1)
    return torch.where(to_gray, _gray(x).expand_as(x), x)


def gaussian_blur(x: Tensor, sigma: Tensor, radius: int) -> Tensor:
    """Blur each NCHW image with its own ``sigma``: a separable ``2 radius + 1`` kernel, reflected edges."""
    if radius < 1:
        return x
    n, c, h, w = x.shape
    offsets = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    kernel = torch.exp(-(offsets**2) / (2 * sigma.to(x).view(-1, 1) ** 2))
    kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(c, dim=0)  # one per channel map
    flat = F.pad(x.reshape(1, n * c, h, w), (radius,) * 4, mode="reflect")
    flat = F.conv2d(flat, kernel.view(n * c, 1, 1, -1), groups=n * c)  # along rows, then columns
    flat = F.conv2d(flat, kernel.view(n * c, 1, -1, 1), groups=n * c)
    return flat.view(n, c, h, w)


def random_blur(x: Tensor, gen: torch.Generator) -> Tensor:
    """Appendix A: blur half of the images, sigma ~ U[0.1, 2], the kernel 10% of the image side."""
    n = len(x)
    sigma = _uniform(n, 0.1, 2.0, gen)
    chosen = (torch.rand(n, generator=gen) < 0.5).to(x.device).view(n, 1, 1, 1)
    radius = (x.shape[-2] // 10) // 2  # the reference code's kernel_size // 2
    return torch.where(chosen, gaussian_blur(x, sigma, radius), x)


def simclr_views(
    images: Tensor, params: SimCLRParams, mean: Tensor, std: Tensor, gen: torch.Generator
) -> Tensor:
    """One random view of each uint8 NHWC image: normalised float NCHW.

    RGB: resized crop with flip + colour distortion. Single channel: resized crop + Gaussian noise. Then,
    with ``params.blur``, a random Gaussian blur (before the noise).
    """
    x = images.permute(0, 3, 1, 2).float() / 255.0
    rgb = x.shape[1] == 3
    x = random_resized_crop(x, params.crop_scale if rgb else params.gray_crop_scale, rgb, gen)
    if rgb:
        x = color_distort(x, params.color_strength, gen, hue=params.hue)
    if params.blur:
        x = random_blur(x, gen)
    if not rgb and params.noise_std > 0:
        x = x + torch.randn(x.shape, generator=gen).to(x.device) * params.noise_std
    return (x - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)


def train_simclr(
    encoder: nn.Module,
    images: Tensor,
    params: SimCLRParams | None = None,
    *,
    feature_dim: int,
    seed: int = 0,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Train ``encoder`` in place with SimCLR on unlabelled uint8 NHWC ``images``.

    Parameters
    ----------
    encoder : nn.Module
        Maps normalised NCHW images to features (B, feature_dim), e.g. a model's ``backbone``.
    images : Tensor of shape (N, H, W, C) uint8
        The training images (labels are not used). They stay on their device; batches are slices.
    params : SimCLRParams, optional
    feature_dim : int
        Width of the encoder's output.
    seed : int, default=0
        Seeds the batches, the augmentations and the projection head.
    progress : bool, default=False
        A tqdm bar over steps.

    Returns
    -------
    list of dict
        Per epoch: ``epoch``, ``loss`` (mean NT-Xent), ``seconds``.

    Raises
    ------
    ValueError
        Non-uint8 or non-NHWC images, or fewer than 2 images per batch.

    Notes
    -----
    The learning-rate rule (``lr_scaling``) uses the batch size actually trained, ``min(batch_size, N)``.
    """
    params = params or SimCLRParams()
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise ValueError(f"SimCLR needs uint8 images (N, H, W, C), got {images.dtype} {tuple(images.shape)}.")
    gen = torch.Generator().manual_seed(seed)
    if params.max_images is not None and params.max_images < len(images):
        images = images[torch.randperm(len(images), generator=gen)[: params.max_images].to(images.device)]
    n = len(images)
    bs = min(params.batch_size, n)
    if bs < 2:
        raise ValueError("SimCLR needs at least 2 images per batch.")
    mean, std = image_stats(images)
    mean, std = mean.to(images.device), std.to(images.device)
    torch.manual_seed(seed)  # the projection head's initialisation
    head = ProjectionHead(feature_dim, params.proj_dim, params.proj_hidden).to(images.device)
    steps = n // bs  # drop the last partial batch: NT-Xent wants full batches of negatives
    opt, sched = _optimizer_and_schedule([encoder, head], params, bs, steps)
    encoder.train()
    history = []
    bar = tqdm(total=params.epochs * steps, desc="simclr", disable=not progress, leave=False)
    for epoch in range(params.epochs):
        start, total = time.perf_counter(), 0.0
        order = torch.randperm(n, generator=gen).to(images.device)
        for i in range(steps):
            batch = images[order[i * bs : (i + 1) * bs]]
            views = torch.cat([simclr_views(batch, params, mean, std, gen) for _ in range(2)])
            z = head(encoder(views))
            loss = nt_xent_loss(z[:bs], z[bs:], params.temperature)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach())
            bar.update()
        history.append({"epoch": epoch + 1, "loss": total / steps, "seconds": time.perf_counter() - start})
    bar.close()
    encoder.eval()
    return history


def _optimizer_and_schedule(
    modules: list[nn.Module], params: SimCLRParams, batch_size: int, steps_per_epoch: int
) -> tuple[torch.optim.Optimizer, WarmupCosine]:
    """The optimiser at the batch-scaled learning rate, and its per-step warm-up + cosine schedule."""
    optimizer = make_optimizer(
        params.optimizer,
        [p for module in modules for p in module.parameters()],
        lr=peak_learning_rate(params.lr, batch_size, params.lr_scaling),
        weight_decay=params.weight_decay,
        momentum=params.momentum,
        trust_coefficient=params.trust_coefficient,
    )
    schedule = WarmupCosine(
        optimizer, params.warmup_epochs * steps_per_epoch, params.epochs * steps_per_epoch
    )
    return optimizer, schedule
