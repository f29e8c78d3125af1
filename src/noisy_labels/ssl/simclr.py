"""SimCLR: label-free representation learning (Chen et al., ICML 2020), DMLP's first stage.

Two random augmentations of every image go through the encoder and a small projection head; the
NT-Xent loss pulls the two views of an image together and pushes the other ``2B - 2`` images of the
batch away. The labels are never read, so noisy labels cannot leak into the representation.

Augmentations run on whole batches of tensors (no per-image Python): a random resized crop through one
``affine_grid``/``grid_sample`` call (with the horizontal flip folded into the same affine map), then for
RGB images colour jitter (brightness, contrast, saturation; p = 0.8) and random grayscale (p = 0.2);
for single-channel images (MNIST) the paper's colour distortion is meaningless, so crop + additive
Gaussian noise. Hue jitter and Gaussian blur of the ImageNet recipe are left out (SimCLR's CIFAR
recipe also drops the blur).
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

__all__ = ["SimCLRParams", "nt_xent_loss", "simclr_views", "ProjectionHead", "train_simclr", "image_stats"]


@dataclass
class SimCLRParams:
    """SimCLR hyper-parameters (CPU-sized defaults)."""

    epochs: int = 10
    batch_size: int = 256  # B images -> 2B views per step
    lr: float = 1e-3  # Adam (the paper's LARS matters only at very large batches)
    weight_decay: float = 1e-6
    temperature: float = 0.5  # tau of NT-Xent (the paper's CIFAR value)
    proj_dim: int = 64  # output of the projection head
    crop_scale: tuple[float, float] = (0.2, 1.0)  # area fraction of the random resized crop (RGB)
    gray_crop_scale: tuple[float, float] = (0.5, 1.0)  # digits lose their identity in smaller crops
    jitter: float = 0.4  # colour-jitter strength (brightness/contrast/saturation), RGB only
    noise_std: float = 0.1  # additive noise in [0, 1] pixel units, single-channel images only
    max_images: int | None = None  # train on a random subset (CPU budgets)


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


def color_distort(x: Tensor, strength: float, gen: torch.Generator) -> Tensor:
    """Brightness, contrast and saturation jitter (p = 0.8), then random grayscale (p = 0.2)."""
    n, dev = len(x), x.device

    def factor() -> Tensor:
        return _uniform(n, 1 - strength, 1 + strength, gen).to(dev).view(n, 1, 1, 1)

    apply = (torch.rand(n, generator=gen) < 0.8).to(dev).view(n, 1, 1, 1)
    gray = (x * torch.tensor([0.299, 0.587, 0.114], device=dev).view(1, 3, 1, 1)).sum(1, keepdim=True)
    y = x * factor()
    y = (y - y.mean((1, 2, 3), keepdim=True)) * factor() + y.mean((1, 2, 3), keepdim=True)
    y_gray = (y * torch.tensor([0.299, 0.587, 0.114], device=dev).view(1, 3, 1, 1)).sum(1, keepdim=True)
    y = (y - y_gray) * factor() + y_gray
    x = torch.where(apply, y.clamp(0, 1), x)
    to_gray = (torch.rand(n, generator=gen) < 0.2).to(dev).view(n, 1, 1, 1)
    gray = (x * torch.tensor([0.299, 0.587, 0.114], device=dev).view(1, 3, 1, 1)).sum(1, keepdim=True)
    return torch.where(to_gray, gray.expand_as(x), x)


def simclr_views(
    images: Tensor, params: SimCLRParams, mean: Tensor, std: Tensor, gen: torch.Generator
) -> Tensor:
    """One random view of each uint8 NHWC image: normalised float NCHW.

    RGB: resized crop with flip + colour distortion. Single channel: resized crop + Gaussian noise.
    """
    x = images.permute(0, 3, 1, 2).float() / 255.0
    rgb = x.shape[1] == 3
    x = random_resized_crop(x, params.crop_scale if rgb else params.gray_crop_scale, rgb, gen)
    if rgb:
        x = color_distort(x, params.jitter, gen)
    elif params.noise_std > 0:
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
    head = ProjectionHead(feature_dim, params.proj_dim).to(images.device)
    opt = torch.optim.Adam(
        [*encoder.parameters(), *head.parameters()], lr=params.lr, weight_decay=params.weight_decay
    )
    steps = n // bs  # drop the last partial batch: NT-Xent wants full batches of negatives
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, params.epochs * steps))
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
