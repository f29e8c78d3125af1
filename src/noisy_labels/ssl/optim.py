"""SimCLR's optimisation recipe: the optimiser, the batch-size learning-rate rule and the schedule.

Chen et al., ICML 2020, sec. 2.3 ("Default setting"): LARS with learning rate ``0.3 x BatchSize / 256``,
weight decay 1e-6, linear warm-up over the first 10 epochs, then cosine decay without restarts.
Appendix B.1 also gives the square-root rule ``0.075 x sqrt(BatchSize)``, better for small batches and
short runs. Adam and SGD stay available for CPU-sized runs (the library's default is Adam 1e-3 with no
warm-up, which this module reproduces exactly).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

from .lars import LARS, lars_param_groups

__all__ = ["LR_SCALINGS", "OPTIMIZERS", "WarmupCosine", "make_optimizer", "peak_learning_rate"]

OPTIMIZERS = ("adam", "sgd", "lars")
LR_SCALINGS = ("none", "linear", "sqrt")


def peak_learning_rate(lr: float, batch_size: int, scaling: str) -> float:
    """The learning rate reached after the warm-up: ``lr`` as given, ``lr * B / 256`` or ``lr * sqrt(B)``.

    >>> peak_learning_rate(0.3, 4096, "linear")  # SimCLR's default: 4.8
    4.8
    >>> peak_learning_rate(0.075, 4096, "sqrt")
    4.8
    """
    if scaling == "linear":
        return lr * batch_size / 256
    if scaling == "sqrt":
        return lr * math.sqrt(batch_size)
    return lr


def make_optimizer(
    name: str,
    parameters: Iterable[nn.Parameter],
    *,
    lr: float,
    weight_decay: float,
    momentum: float,
    trust_coefficient: float,
) -> torch.optim.Optimizer:
    """``adam`` (no momentum key), ``sgd`` (heavy-ball momentum) or ``lars`` (biases and norms excluded)."""
    if name == "lars":
        groups = lars_param_groups(parameters, weight_decay)
        return LARS(groups, lr=lr, momentum=momentum, trust_coefficient=trust_coefficient)
    if name == "sgd":
        return torch.optim.SGD(list(parameters), lr=lr, momentum=momentum, weight_decay=weight_decay)
    return torch.optim.Adam(list(parameters), lr=lr, weight_decay=weight_decay)


class WarmupCosine:
    """Per-step learning rate: linear from 0 to the peak over ``warmup_steps``, then cosine decay to 0.

    Step ``t < warmup_steps`` runs at ``peak * t / warmup_steps`` (SimCLR's reference code starts at 0);
    from then on torch's ``CosineAnnealingLR`` decays over the remaining steps, so with no warm-up the
    rates are exactly those of a plain ``CosineAnnealingLR`` over the whole run. Call :meth:`step` after
    each optimiser step.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int) -> None:
        self.optimizer, self.warmup_steps, self.steps_done = optimizer, warmup_steps, 0
        self.peaks = [group["lr"] for group in optimizer.param_groups]
        self.cosine = torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=max(1, total_steps - warmup_steps)
        )
        if warmup_steps > 0:
            self._set_warmup_fraction(0.0)

    def step(self) -> None:
        self.steps_done += 1
        if self.steps_done <= self.warmup_steps:
            self._set_warmup_fraction(self.steps_done / self.warmup_steps)  # 1.0 hands over at the peak
        else:
            self.cosine.step()

    def _set_warmup_fraction(self, fraction: float) -> None:
        for group, peak in zip(self.optimizer.param_groups, self.peaks, strict=True):
            group["lr"] = peak * fraction
