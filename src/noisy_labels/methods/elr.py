"""ELR and ELR+: Liu, Niles-Weed, Razavian & Fernandez-Granda, "Early-learning regularization prevents
memorization of noisy labels", NeurIPS 2020.

**ELR** (sec. 4.1). Each training sample keeps a target ``t_i``, a temporal ensemble of the network's
predictions, ``t_i <- beta t_i + (1 - beta) p_i`` at every visit, and the loss adds

    L = CE(p_i, y_i) + lambda * log(1 - <p_i, t_i>)

Its gradient w.r.t. the logits is ``p_i - y_i + lambda g_i`` with ``g_ic = p_ic (<p_i, t_i> - t_ic) /
(1 - <p_i, t_i>)`` (the paper's gradient analysis, sec. 4.1): while the network is still right about a
sample (early learning), the term pulls ``p_i`` towards the target, so the gradient of a wrongly labelled
sample is not dominated by its wrong label, and clean samples' gradients keep their weight. The targets
are detached.

**ELR+** (sec. 4.2): two networks, each with a weight average (mean teacher, ``theta~ <- gamma theta~ +
(1 - gamma) theta``, ``gamma = 0.997``; its default below); the targets of network ``k`` are the temporal
ensemble of the *other* network's weight-averaged predictions; mixup (``alpha = 1``) on the inputs, mixing
the given labels and the targets with the same ``lambda``; test predictions average the two
weight-averaged networks.

Settings (sec. 5 and appendix; the public configs as we recall them: verify before a paper run):
CIFAR-10 ``beta = 0.7``, ``lambda = 3``; CIFAR-100 ``beta = 0.9``, ``lambda = 7``. ELR: ResNet-34, SGD
momentum 0.9, weight decay 1e-3, lr 0.02, batch 128, 120 epochs, lr x 0.01 at epochs 40 and 80. ELR+:
PreAct ResNet-18, weight decay 5e-4, lr 0.02, 200 epochs.

Choices: predictions are clamped to ``[1e-4, 1 - 1e-4]`` before the target update and the regulariser
(keeps ``log(1 - <p, t>)`` finite); targets start at zero (first visit gives ``(1 - beta) p``); the weight
average uses ``min(gamma, 1 - 1/(s + 1))`` at its ``s``-th update (Tarvainen & Valpola 2017), so short CPU
runs do not average in the random initialisation for hundreds of steps; ELR+ mixup is plain mixup (no
``max(lam, 1 - lam)``); a network's targets are updated from the unmixed batch.

**Default departing from the paper: ``ema_decay``.** 0.997 averages over 333 steps, 0.85 of an epoch of
the paper's CIFAR runs (391 steps at batch 128); the default keeps that share of an epoch
(:func:`noisy_labels.defaults.scaled_ema_decay`: 0.997 there, 0.949 at MNIST-3k's 23 steps). Measured
(MNIST 3k, small CNN, sym. 50%, seed 0): with 0.997 the averaged networks, which make the predictions,
lagged 14 of the 20 epochs behind and ended at 92.1% (CE 93.9%); with 0.949, 96.0%.

DMLP-ELR+: labels only from ``batch.y``; the cleanness score (``t_i[y_i]``, the temporal ensemble's
belief in the given label) reads ``ctx.train_labels``. Corrected labels: the targets (soft).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..defaults import scaled_ema_decay
from ..losses import clamped_softmax, elr_regularizer, mean_soft_cross_entropy
from ..models import eval_mode
from ._selection import ensemble_log_probs, mixup
from .base import Method

if TYPE_CHECKING:
    from ..engine.context import TrainingContext


def _write_rows(state: torch.Tensor, index: torch.Tensor, values: torch.Tensor) -> None:
    state[index] = values


@torch.no_grad()
def update_targets(
    targets: torch.Tensor,
    index: torch.Tensor,
    probs: torch.Tensor,
    beta: float,
    write: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], None] = _write_rows,
) -> torch.Tensor:
    """In place ``t[index] <- beta t[index] + (1 - beta) p / sum(p)`` (ELR's temporal ensemble), through
    ``write`` (a method passes its context's ``write_samples``).

    Returns the updated rows ``t[index]``.
    """
    probs = probs.detach().float()
    write(targets, index, beta * targets[index] + (1.0 - beta) * probs / probs.sum(dim=1, keepdim=True))
    return targets[index]


def _check_elr(params: ELRParams | ELRPlusParams) -> None:
    if not 0.0 <= params.beta < 1.0 or params.lam < 0:
        raise ValueError(
            f"beta must lie in [0, 1) and lam be >= 0, got beta={params.beta}, lam={params.lam}."
        )


class _TargetsMixin:
    """Cleanness and corrected labels from per-sample targets ``self.targets`` of shape (K, N, C)."""

    targets: torch.Tensor
    ctx: TrainingContext

    def cleanness(self) -> np.ndarray:
        labels = self.ctx.train_labels
        mean = self.targets.mean(0)
        return mean.gather(1, labels[:, None]).squeeze(1).cpu().numpy()

    def corrected_labels(self) -> np.ndarray:
        return self.targets.mean(0).cpu().numpy()


@dataclass
class ELRParams:
    beta: float = 0.7  # temporal-ensemble momentum (CIFAR-10 0.7, CIFAR-100 0.9)
    lam: float = 3.0  # regularisation weight lambda (CIFAR-10 3, CIFAR-100 7)

    def __post_init__(self) -> None:
        _check_elr(self)


class ELR(_TargetsMixin, Method, name="elr", params=ELRParams):
    """Early-learning regularisation (Liu et al., NeurIPS 2020, sec. 4.1); see the module docstring."""

    def setup(self) -> None:
        super().setup()
        ctx = self.ctx
        self.targets = ctx.sample_state(copies=1, columns=ctx.num_classes)

    def train_step(self, batch):
        with self.ctx.autocast():
            logits = self.model(batch.x).float()
        probs = clamped_softmax(logits)
        target = update_targets(self.targets[0], batch.index, probs, self.params.beta, self.ctx.write_samples)
        ce = F.cross_entropy(logits, batch.y)
        reg = elr_regularizer(probs, target)
        loss = ce + self.params.lam * reg
        self.ctx.step(loss, self.optimizer)
        return {"loss": loss.detach(), "ce": ce.detach(), "elr": reg.detach(),
                "acc": (logits.detach().argmax(1) == batch.y).float().mean()}  # fmt: skip


PAPER_STEPS_PER_EPOCH = 391  # CIFAR's 50,000 images at batch 128: the scale of ELR+'s ema_decay


@dataclass
class ELRPlusParams:
    beta: float = 0.7
    lam: float = 3.0
    # gamma of the weight average; None: the paper's 0.997 (333 steps, 0.85 of a CIFAR epoch of 391 steps at
    # batch 128) as the same share of this run's epoch (noisy_labels.defaults.scaled_ema_decay)
    ema_decay: float | None = None
    mixup_alpha: float = 1.0  # 0 disables mixup
    cross_targets: bool = True  # targets of net k from the other net's weight average (False: its own)

    def __post_init__(self) -> None:
        _check_elr(self)
        if self.ema_decay is not None and not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must lie in [0, 1), got {self.ema_decay}.")


@torch.no_grad()
def ema_update(average: nn.Module, model: nn.Module, decay: float) -> None:
    """``theta~ <- decay theta~ + (1 - decay) theta``; buffers (BatchNorm statistics) are copied.

    ``model`` is the bare network (``ctx.unwrap`` of a DDP-wrapped one)."""
    for avg, cur in zip(average.parameters(), model.parameters(), strict=True):
        avg.lerp_(cur.detach(), 1.0 - decay)
    for avg_buffer, buffer in zip(average.buffers(), model.buffers(), strict=True):
        avg_buffer.copy_(buffer)


class ELRPlus(_TargetsMixin, Method, name="elr_plus", params=ELRPlusParams):
    """ELR+ (Liu et al., NeurIPS 2020, sec. 4.2): two networks, weight averaging, mixup, ELR."""

    def setup(self) -> None:
        ctx = self.ctx
        if self.params.ema_decay is None:
            self.params.ema_decay = scaled_ema_decay(0.997, PAPER_STEPS_PER_EPOCH, ctx.clock.steps_per_epoch)
        self.net1, self.net2 = ctx.new_model(), ctx.new_model()
        self.opt1 = ctx.new_optimizer(self.net1.parameters())
        self.opt2 = ctx.new_optimizer(self.net2.parameters())
        self.avg1, self.avg2 = (
            copy.deepcopy(ctx.unwrap(n)).requires_grad_(False) for n in (self.net1, self.net2)
        )
        self.targets = ctx.sample_state(copies=2, columns=ctx.num_classes)
        self.avg_updates = torch.zeros((), dtype=torch.long)

    def train_step(self, batch):
        stats = [self._step(k, batch) for k in (0, 1)]
        self.avg_updates += 1
        return {key: (stats[0][key] + stats[1][key]) / 2 for key in stats[0]}

    def _step(self, k: int, batch) -> dict[str, torch.Tensor]:
        p, ctx = self.params, self.ctx
        net, opt, avg = (self.net1, self.opt1, self.avg1) if k == 0 else (self.net2, self.opt2, self.avg2)
        teacher = (self.avg2 if k == 0 else self.avg1) if p.cross_targets else avg
        with torch.no_grad(), eval_mode(teacher), ctx.autocast():
            teacher_probs = clamped_softmax(teacher(batch.x))
        target = update_targets(self.targets[k], batch.index, teacher_probs, p.beta, self.ctx.write_samples)
        # mixup partners from the whole global batch (under torchrun: across the ranks' slices), then
        # this rank's rows
        whole = batch.global_batch
        (target,) = ctx.gather_batch(target)
        onehot = F.one_hot(whole.y, ctx.num_classes).float()
        mixed_x, mixed, _, _ = mixup(whole.x, torch.cat([onehot, target], 1), p.mixup_alpha,
                                     generator=ctx.generator)  # fmt: skip
        mixed_x, mixed = ctx.local_rows(mixed_x), ctx.local_rows(mixed)
        mixed_y, mixed_t = mixed.split(ctx.num_classes, dim=1)
        with ctx.autocast():
            logits = net(mixed_x).float()
        ce = mean_soft_cross_entropy(logits, mixed_y)
        reg = elr_regularizer(clamped_softmax(logits), mixed_t)
        loss = ce + p.lam * reg
        ctx.step(loss, opt)
        ema_update(avg, self.ctx.unwrap(net), min(p.ema_decay, 1.0 - 1.0 / (int(self.avg_updates) + 1)))
        return {"loss": loss.detach(), "ce": ce.detach(), "elr": reg.detach()}

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return ensemble_log_probs((self.avg1, self.avg2), x)


__all__ = ["ELR", "ELRParams", "ELRPlus", "ELRPlusParams", "elr_regularizer", "ema_update", "update_targets"]
