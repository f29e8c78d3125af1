"""Co-teaching: Han et al., "Co-teaching: Robust training of deep neural networks with extremely noisy
labels", NeurIPS 2018.

Two networks are trained together. On every mini-batch each network ranks the samples by its own
cross-entropy and keeps the ``R(T)`` fraction with the smallest loss; each network is then updated on the
samples its *peer* kept (Algorithm 1). Small-loss samples are likely clean because networks fit
clean labels before noisy ones; exchanging the selections stops one network's selection errors from
feeding back into itself.

Keep rate (Algorithm 1's update of ``R(T)``): ``R(T) = 1 - tau * min(T / T_k, 1)`` with ``T`` the number
of finished epochs, so nothing is dropped in the first epoch and the forget rate ``tau`` is reached after
``T_k`` epochs (the paper: ``T_k = 10`` and ``tau`` = the noise rate, which it assumes known).
``T_k`` stays the paper's 10 epochs in every run length rather than the same share of a shorter run
(``defaults.scaled_epochs(10, 200, epochs)``, 1 epoch of 20): dropping the large-loss samples before the
networks have fit the clean ones drops the clean ones. Measured (20 epochs, sym. 50%, seed 0), last-epoch
accuracy with ``T_k`` = 1 / 5 / 10: CIFAR-10 features (linear heads) 74.9 / 74.1 / 74.2%; MNIST 3k
(small CNN) 59.0% at 1 against 96.3% at 10.

Choices and their sources:

* ``forget_rate`` (``tau``): None takes the noise rate recorded when the noise was drawn (the realised
  rate; under ``uniform`` noise that is ``r (1 - 1/C)``), as the paper assumes ``tau = epsilon``. DMLP-
  Co-teaching (DMLP Table 4) trains on purified labels whose noise is far lower: set ``forget_rate``.
* ``exponent`` ``c``: ``R(T) = 1 - tau * min((T / T_k)^c, 1)``, a knob on the ramp's shape; ``c = 1`` is
  the paper's schedule.
* ``keep = round(R(T) * B)`` samples per batch (at least one).
* Optimiser: the engine's (``optim``/``schedule`` config). The paper's recipe (sec. 4), Adam lr 0.001 linearly
  decayed to zero from epoch 80 to 200 with Adam's ``beta1`` dropped from 0.9 to 0.1 at epoch 80, is
  ``adam_decay_from: 80`` with ``optim.name: adam`` and ``schedule.name: constant``.
* Cleanness (AUC and selection plots): ``1 - mean_k q_k``, with ``q_k`` the sample's loss quantile inside
  its latest batch under network ``k`` (0 = smallest loss), so a sample both networks kept scores above
  one neither kept; :meth:`CoTeaching.selected` returns the keep flags themselves.
* Test predictions: the first network (the paper reports either network; both are close).
* Initialisation: the first network's backbone starts from ``model.init``, the peer's from ``peer_init``,
  which defaults to ``model.init`` too (``scratch``: freshly initialised; a path: other weights). The
  paper starts both from scratch, with different random weights; from the same weights (DMLP*-Co-teaching)
  only the heads differ at first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .base import Method


@dataclass
class CoTeachingParams:
    forget_rate: float | None = None  # tau; None: the recorded noise rate (the paper's tau = epsilon)
    num_gradual: int = 10  # T_k, epochs over which the forget rate ramps up (paper: 10)
    exponent: float = 1.0  # c of the ramp (T / T_k)^c (paper's method: 1)
    adam_decay_from: int | None = None  # the paper's Adam recipe: linear lr decay + beta1 0.1 from this epoch
    peer_init: str | None = None  # the second network's backbone: None = model.init; "scratch"; or a path

    def __post_init__(self) -> None:
        if self.forget_rate is not None and not 0.0 <= self.forget_rate < 1.0:
            raise ValueError(f"forget_rate must lie in [0, 1), got {self.forget_rate}.")


def keep_rate(epoch: int, forget_rate: float, num_gradual: int, exponent: float = 1.0) -> float:
    """``R(T) = 1 - tau * min((T / T_k)^c, 1)`` for ``T = epoch`` finished epochs (Algorithm 1)."""
    ramp = 1.0 if num_gradual <= 0 else min((epoch / num_gradual) ** exponent, 1.0)
    return 1.0 - forget_rate * ramp


def small_loss_selection(losses: torch.Tensor, keep_fraction: float) -> torch.Tensor:
    """Indices of the ``round(keep_fraction * B)`` (at least 1) smallest losses of a batch, smallest first."""
    keep = max(1, min(len(losses), int(round(keep_fraction * len(losses)))))
    return torch.topk(losses, keep, largest=False, sorted=True).indices


def loss_quantiles(losses: torch.Tensor) -> torch.Tensor:
    """Rank of every loss inside its batch scaled to ``[0, 1)``: ``rank / B`` (0 = smallest)."""
    ranks = torch.empty_like(losses)
    ranks[losses.argsort()] = torch.arange(len(losses), device=losses.device, dtype=losses.dtype)
    return ranks / len(losses)


def exchange_small_loss(
    loss1: torch.Tensor,
    loss2: torch.Tensor,
    keep_fraction: float,
    *,
    ranked: tuple[torch.Tensor, torch.Tensor] | None = None,
    mean_of_rows: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Algorithm 1: each network's small-loss pick trains its peer.

    Returns ``(update1, update2, keep1, keep2)``: network 1's loss ``mean(loss1[keep2])`` on the samples
    network 2 kept, network 2's ``mean(loss2[keep1])``, and the kept indices of each network. ``ranked``:
    the losses the selection ranks (default the detached ``loss1, loss2``; under ``torchrun`` the whole
    global batch's), ``mean_of_rows``: how a kept set's mean is taken (``ctx.mean_of_rows`` there).
    """
    rank1, rank2 = ranked if ranked is not None else (loss1.detach().float(), loss2.detach().float())
    keep1, keep2 = small_loss_selection(rank1, keep_fraction), small_loss_selection(rank2, keep_fraction)
    mean = mean_of_rows or (lambda values, rows: values[rows].mean())
    return mean(loss1, keep2), mean(loss2, keep1), keep1, keep2


class CoTeaching(Method, name="coteaching", params=CoTeachingParams):
    """Co-teaching (Han et al., NeurIPS 2018): two networks exchange their small-loss samples.

    Labels come only from ``batch.y`` (DMLP-Co-teaching feeds purified labels through the batches).
    See the module docstring for the schedule and the choices.
    """

    def setup(self) -> None:
        p, ctx = self.params, self.ctx
        self.forget_rate = ctx.assumed_noise_rate() if p.forget_rate is None else p.forget_rate
        scheduled = p.adam_decay_from is None
        self.net1, self.net2 = ctx.new_model(), ctx.new_model(init=p.peer_init)
        self.opt1 = ctx.new_optimizer(self.net1.parameters(), scheduled=scheduled)
        self.opt2 = ctx.new_optimizer(self.net2.parameters(), scheduled=scheduled)
        # Latest within-batch loss quantile of every sample under each network, and whether it was kept.
        self.quantiles = ctx.sample_state(copies=2)
        self.kept = ctx.sample_state(True, dtype=torch.bool, copies=2)
        self.keep = 1.0

    def on_epoch_start(self, epoch: int) -> None:
        p = self.params
        self.keep = keep_rate(epoch, self.forget_rate, p.num_gradual, p.exponent)
        if p.adam_decay_from is not None:
            self._paper_adam_schedule(epoch)

    def _paper_adam_schedule(self, epoch: int) -> None:
        """Paper sec. 4: from ``adam_decay_from`` the lr decays linearly to 0 and Adam's beta1 is 0.1."""
        start, end = self.params.adam_decay_from, self.ctx.epochs
        factor = 1.0 if epoch < start else (end - epoch) / max(end - start, 1)
        for opt in (self.opt1, self.opt2):
            for group in opt.param_groups:
                group["lr"] = group["base_lr"] * factor
                if "betas" in group:
                    group["betas"] = (0.9 if epoch < start else 0.1, group["betas"][1])

    def train_step(self, batch):
        with self.ctx.autocast():
            logits1, logits2 = self.net1(batch.x), self.net2(batch.x)
            loss1 = F.cross_entropy(logits1, batch.y, reduction="none")
            loss2 = F.cross_entropy(logits2, batch.y, reduction="none")
        # the selection ranks the global batch (its losses gathered from the ranks' slices under torchrun)
        ctx = self.ctx
        global1, global2 = ctx.gather_batch(loss1.detach().float(), loss2.detach().float())
        update1, update2, keep1, keep2 = exchange_small_loss(
            loss1, loss2, self.keep, ranked=(global1, global2), mean_of_rows=ctx.mean_of_rows
        )
        ctx.step(update1, self.opt1, reduction="sum")
        ctx.step(update2, self.opt2, reduction="sum")
        for k, (losses, keep) in enumerate(((global1, keep1), (global2, keep2))):
            kept = torch.zeros(len(losses), dtype=torch.bool, device=losses.device)
            kept[keep] = True
            ctx.write_samples(self.quantiles[k], batch.index, ctx.local_rows(loss_quantiles(losses)))
            ctx.write_samples(self.kept[k], batch.index, ctx.local_rows(kept))
        accuracy = (logits1.detach().argmax(1) == batch.y).float().mean()
        return {"loss": (update1 + update2).detach() / 2, "acc": accuracy, "keep": torch.tensor(self.keep)}

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.net1(x)

    def selected(self) -> np.ndarray:
        """``(N, 2)`` bool: whether network 1 / 2 kept each sample at its latest visit."""
        return self.kept.T.cpu().numpy()

    def cleanness(self) -> np.ndarray:
        return (1.0 - self.quantiles.mean(0)).cpu().numpy()


__all__ = [
    "CoTeaching",
    "CoTeachingParams",
    "exchange_small_loss",
    "keep_rate",
    "loss_quantiles",
    "small_loss_selection",
]
