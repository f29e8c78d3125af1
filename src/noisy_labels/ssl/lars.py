"""LARS: layer-wise adaptive rate scaling (You, Gitman & Ginsburg 2017), the optimiser of SimCLR.

SimCLR (Chen et al., ICML 2020) trains with LARS at every batch size (sec. 2.2, "Training with Large Batch
Size"), with weight decay 1e-6 (sec. 2.3, "Default setting"). Each weight tensor ``w`` steps by the
learning rate times a trust ratio ``eta * ||w|| / ||g + wd * w||``, so every layer moves by about the same
fraction of its norm however large the batch (and so the learning rate) is. As in SimCLR's reference
code, the momentum is "classic" (the scaled learning rate enters the velocity) and biases and BatchNorm
parameters get neither weight decay nor the trust ratio: :func:`lars_param_groups` puts them in a group of
their own. No maintained package that this project can depend on provides this variant (the PyPI
optimiser collections compute the trust ratio before adding the weight decay and start the velocity from
the first gradient), so it is written here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["LARS", "lars_param_groups"]


def lars_param_groups(parameters: Iterable[nn.Parameter], weight_decay: float) -> list[dict[str, Any]]:
    """Two parameter groups: weight matrices and kernels adapted and decayed, vectors left alone.

    Vectors (``ndim <= 1``) are the biases and the BatchNorm / LayerNorm scales and shifts that SimCLR
    excludes from weight decay and from the trust ratio. Empty groups are dropped.
    """
    params = [p for p in parameters if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.ndim > 1], "weight_decay": weight_decay, "adapt": True},
        {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0, "adapt": False},
    ]
    return [g for g in groups if g["params"]]


def trust_ratio(weight: Tensor, update: Tensor, coefficient: float) -> Tensor:
    """``coefficient * ||weight|| / ||update||``, or 1 where either norm is zero (a fresh zero tensor)."""
    w_norm, u_norm = torch.linalg.vector_norm(weight), torch.linalg.vector_norm(update)
    ratio = coefficient * w_norm / u_norm
    return torch.where((w_norm > 0) & (u_norm > 0), ratio, torch.ones_like(ratio))


class LARS(torch.optim.Optimizer):
    """LARS with classic momentum: ``v <- m v + lr * trust * (g + wd w)``, ``w <- w - v``.

    Parameters
    ----------
    params : iterable of parameters or parameter groups
        Groups may set ``adapt`` (default True: apply the trust ratio) and ``weight_decay``; see
        :func:`lars_param_groups`.
    lr : float
        The (already batch-scaled) learning rate.
    momentum : float, default=0.9
        SimCLR's reference code's default.
    weight_decay : float, default=0.0
    trust_coefficient : float, default=1e-3
        ``eta`` of the trust ratio (the reference code's ``EETA_DEFAULT``).
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        trust_coefficient: float = 1e-3,
    ) -> None:
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "weight_decay": weight_decay,
            "trust_coefficient": trust_coefficient,
            "adapt": True,
        }
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self._update(p, group)
        return loss

    def _update(self, p: Tensor, group: dict[str, Any]) -> None:
        assert p.grad is not None
        update = p.grad.add(p, alpha=group["weight_decay"])  # the decay is part of what is scaled
        if group["adapt"]:
            update = update * trust_ratio(p, update, group["trust_coefficient"])
        state = self.state[p]
        if "velocity" not in state:
            state["velocity"] = torch.zeros_like(p)
        velocity = state["velocity"]
        velocity.mul_(group["momentum"]).add_(update, alpha=group["lr"])
        p.sub_(velocity)
