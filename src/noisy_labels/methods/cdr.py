"""CDR: Xia, Liu, Han, Gong, Wang, Ge & Chang, "Robust early-learning: Hindering the memorization of
noisy labels", ICLR 2021.

Only some parameters matter for fitting the clean labels (a lottery-ticket view). At every step CDR ranks
the weights by the first-order importance ``|w * dL/dw|`` (the loss change when ``w`` is set to zero) and
splits them into *critical* ones, the top ``1 - tau`` fraction, and *non-critical* ones. Critical weights
take the usual gradient step; non-critical weights get no loss gradient and only their regularisation
penalty, so they shrink towards zero instead of memorising the noisy labels (sec. 3, the two update rules).

Choices, each a parameter:

* ``critical_fraction`` (``1 - tau``): None uses ``1 - noise rate`` (the recorded realised rate), the
  paper's coupling of the clipping rate to the noise rate; DMLP-CDR (DMLP Table 4) trains on purified
  labels and should set it.
* ``scope``: ``"layer"`` ranks each weight tensor separately (default); ``"global"`` ranks all masked
  weights together.
* Which parameters: weight matrices and convolution kernels (``dim >= 2``); biases and normalisation
  parameters are updated normally unless ``include_biases``.
* Penalty: non-critical weights keep the optimiser's weight decay (an L2 penalty ``lambda w``), applied
  inside the optimiser step after the mask. ``sign_decay`` adds the L1 form ``lambda sgn(w)`` to every
  masked tensor's gradient, critical and non-critical alike, the form of the paper's update rules.
* The mask is applied in an optimiser step pre-hook, i.e. after gradient unscaling (AMP) and the
  all-reduce (DDP), so every rank masks the same averaged gradient.
* Momentum (SGD) still carries earlier gradients of a weight that turned non-critical.

Cleanness: the model's probability of the given label over the training set, ``ctx.train_labels``
(computed on demand, in eval mode). CDR relies on early stopping (DMLP sec. 4.4): compare best and last.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .._validation import check_choice
from ._selection import per_sample_losses
from .base import Method


@dataclass
class CDRParams:
    critical_fraction: float | None = None  # 1 - tau; None: 1 - the recorded noise rate
    scope: str = "layer"  # layer | global: where the importance is ranked
    include_biases: bool = False  # also mask 1-D parameters (biases, normalisation)
    sign_decay: float = 0.0  # L1 penalty lambda * sgn(w) on the masked tensors (paper's update form)

    def __post_init__(self) -> None:
        check_choice("scope", self.scope, ("layer", "global"))
        if self.critical_fraction is not None and not 0.0 < self.critical_fraction <= 1.0:
            raise ValueError(f"critical_fraction must lie in (0, 1], got {self.critical_fraction}.")


def critical_mask(importance: torch.Tensor, fraction: float) -> torch.Tensor:
    """Boolean mask of the ``round(fraction * numel)`` (at least 1) largest entries of ``importance``."""
    flat = importance.flatten()
    keep = max(1, min(flat.numel(), int(round(fraction * flat.numel()))))
    mask = torch.zeros_like(flat, dtype=torch.bool)
    mask[torch.topk(flat, keep, sorted=False).indices] = True
    return mask.view_as(importance)


@torch.no_grad()
def mask_noncritical_gradients(params: Sequence[torch.Tensor], fraction: float, scope: str = "layer") -> int:
    """Zero the gradient of all but the top ``fraction`` of ``|w * grad|``; returns the number zeroed.

    Parameters
    ----------
    params : list of tensors with ``.grad``
        Parameters without a gradient are skipped.
    fraction : float in (0, 1]
        Share of critical (updated) entries, per tensor (``scope='layer'``) or over all (``'global'``).
    """
    live = [(p, p.grad) for p in params if p.grad is not None]
    if not live or fraction >= 1.0:
        return 0
    scores = [(p * grad).abs() for p, grad in live]
    masks: Sequence[torch.Tensor]
    if scope == "global":
        masks = critical_mask(torch.cat([s.flatten() for s in scores]), fraction).split(
            [s.numel() for s in scores]
        )
    else:
        masks = [critical_mask(s, fraction) for s in scores]
    zeroed = 0
    for (_, grad), mask in zip(live, masks, strict=True):
        grad.mul_(mask.view_as(grad))
        zeroed += int(mask.numel() - mask.sum())
    return zeroed


class CDR(Method, name="cdr", params=CDRParams):
    """Robust early-learning (Xia et al., ICLR 2021); see the module docstring."""

    def setup(self) -> None:
        super().setup()
        p = self.params
        self.fraction = (
            1.0 - self.ctx.assumed_noise_rate() if p.critical_fraction is None else p.critical_fraction
        )
        self.masked = [q for q in self.model.parameters() if q.dim() >= 2 or p.include_biases]
        self.optimizer.register_step_pre_hook(self._before_step)

    def _before_step(self, optimizer, args, kwargs) -> None:
        mask_noncritical_gradients(self.masked, self.fraction, self.params.scope)
        if self.params.sign_decay:
            for q in self.masked:
                if q.grad is not None:
                    q.grad.add_(q.detach().sign(), alpha=self.params.sign_decay)

    def cleanness(self) -> np.ndarray:
        losses, _ = per_sample_losses(self.ctx, self.model, self.ctx.train_labels)
        return torch.exp(-losses).cpu().numpy()


__all__ = ["CDR", "CDRParams", "critical_mask", "mask_noncritical_gradients"]
