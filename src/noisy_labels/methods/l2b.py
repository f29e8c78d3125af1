"""L2B: Learning to Bootstrap (Zhou et al., "L2B: Learning to Bootstrap for Combating Label Noise").

Each training sample contributes two terms, the cross-entropy with its given label ``f_i`` and with its
hard pseudo-label ``g_i`` (eq. 1: the argmax of the model's own prediction, detached), weighted by
per-sample ``alpha_i`` and ``beta_i`` (eq. 3). The weights come from one meta step at
``alpha = beta = 0`` (eq. 5-7, Algorithm 1 lines 5-9): with ``K = 2B`` terms, the meta-gradient
``dL_meta/d(alpha, beta)`` is ``-lr <grad f_i, grad L_meta>`` and ``-lr <grad g_i, grad L_meta>``
(appendix eq. 23 and 28), computed exactly with one JVP by :func:`noisy_labels.meta.weight_grad` (the
training forward is shared with the real step). Then (eq. 8-10) the raw weights ``-grad`` are normalised
over all ``2B`` terms and the real step descends ``sum_i alpha_i f_i + beta_i g_i``.

Choices (paper vs. reference code yuyinzhou/L2B):

* ``normalization``: ``"sum"`` eq. 8-9 (rectify, divide by the sum over the 2B terms; the reference's
  ``org``), ``"sigmoid"`` eq. 13 followed by division by the batch sum as the reference does, or
  ``"softmax"`` eq. 14 over the 2B terms with temperature ``temperature`` (the paper's tau = 10).
  The paper finds the best one differs by data set (Fig. 3: eq. 9 on CIFAR-100, sigmoid/softmax on
  ISIC). Default ``"sigmoid"``, measured on the CIFAR-10 features (linear head, defaults, seed 0): on
  CIFAR-10N ``random1`` (17% noisy) eq. 9 ends at 72.7%, 3 points *below* CE (76.0%), because its
  rectification drops every term whose one-batch meta-gradient has the wrong sign, about half of the good
  data; sigmoid ends at 77.6% (softmax 77.2%). At uniform 80% they are level (69.6 / 69.2 / 68.0%).
  Sigmoid and softmax see the raw values ``-grad = lr * <grad l, grad L_meta>``, so their sharpness
  depends on the look-ahead step size.
* ``variant`` (the ablations of Table 7): ``"joint"`` (alpha, beta >= 0, the method), ``"alpha_zero"``
  (pseudo-label terms only), ``"beta_zero"`` (given labels only: L2RW), ``"sum_to_one"`` (per-sample
  ``alpha_i + beta_i = 1``: each sample's two normalised weights rescaled to sum to 1, equal halves if
  both are 0, then averaged over the batch; this reweights labels but not samples, eq. 2's form).
* ``warmup_epochs``: plain cross-entropy for the first epochs (paper: 10 of 300 on CIFAR, 1 of 30 on
  ISIC; the reference's default is 1). Default: the same fraction of the run's epochs, at least 1
  (:func:`noisy_labels.defaults.scaled_epochs`).
* Look-ahead step: the classifier's effective step ``lr / (1 - momentum)`` (``lookahead: effective``),
  or its plain lr as the reference (``lookahead: lr``); see :mod:`noisy_labels.defaults`.
* ``clip_grad_norm``: gradient-norm clipping of the real step (reference: 0.25 CIFAR-10, 0.80 CIFAR-100).
* The look-ahead is a plain SGD step (eq. 5). The reference code steps a copy of the real optimiser
  (momentum and weight decay), which moves ``theta'`` away from ``theta`` even at zero weights.
* Meta batch: a fresh batch of the trusted set per step, as large as the training batch by default.
* Cleanness score: ``B * alpha_i`` (the weight on its given label; 1 = the plain CE weight), averaged
  over the sample's visits as in :mod:`noisy_labels.methods.meta_weighting` (``score_decay``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .._validation import check_choice
from ..defaults import scaled_epochs
from ..losses import real_and_pseudo_ce
from ..meta import L2B_NORMALIZATIONS, l2b_normalize
from .base import Method
from .meta_weighting import MetaMethod, MetaParams

VARIANTS = ("joint", "alpha_zero", "beta_zero", "sum_to_one")


def l2b_weights(
    grad: torch.Tensor, *, normalization: str = "sum", temperature: float = 10.0, variant: str = "joint"
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(alpha, beta)``, each of shape ``(B,)``, from the meta-gradient of the ``2B`` terms.

    Parameters
    ----------
    grad : Tensor of shape (2B,)
        ``dL_meta/dw`` at ``w = 0``: the ``B`` given-label terms, then the ``B`` pseudo-label terms.
    normalization : {'sum', 'sigmoid', 'softmax'}, default='sum'
        See :func:`noisy_labels.meta.l2b_normalize` (eq. 9, 13, 14).
    temperature : float, default=10.0
    variant : {'joint', 'alpha_zero', 'beta_zero', 'sum_to_one'}, default='joint'
        The Table 7 ablations; a zeroed family is left out of the normalisation.

    Examples
    --------
    >>> alpha, beta = l2b_weights(torch.tensor([-1.0, 0.5, -1.0, -2.0]))
    >>> alpha.tolist(), beta.tolist()
    ([0.25, 0.0], [0.25, 0.5])
    """
    b = grad.shape[0] // 2
    zeros = torch.zeros(b, dtype=grad.dtype, device=grad.device)
    if variant == "alpha_zero":
        return zeros, l2b_normalize(grad[b:], normalization, temperature=temperature)
    if variant == "beta_zero":
        return l2b_normalize(grad[:b], normalization, temperature=temperature), zeros
    weights = l2b_normalize(grad, normalization, temperature=temperature)
    alpha, beta = weights[:b], weights[b:]
    if variant == "sum_to_one":
        total = alpha + beta
        share = torch.where(total > 0, alpha / torch.where(total > 0, total, 1.0), 0.5)
        return share / b, (1.0 - share) / b
    return alpha, beta


@dataclass
class L2BParams(MetaParams):
    # "sigmoid" (eq. 13, default: see the module docstring) | "sum" (eq. 9) | "softmax" (eq. 14)
    normalization: str = "sigmoid"
    temperature: float = 10.0  # eq. 14's tau
    variant: str = "joint"  # "joint" | "alpha_zero" | "beta_zero" | "sum_to_one" (Table 7)
    # plain CE first; None: the paper's 10 of 300 CIFAR epochs as a fraction of the run (1 of 20)
    warmup_epochs: int | None = None
    clip_grad_norm: float | None = None  # None: the config's grad_clip (paper CIFAR-10: 0.25)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("normalization", self.normalization, L2B_NORMALIZATIONS)
        check_choice("variant", self.variant, VARIANTS)
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}.")


class L2B(MetaMethod, name="l2b", params=L2BParams):
    """Learning to Bootstrap: meta-learned per-sample weights of real- and pseudo-label losses."""

    def setup(self) -> None:
        super().setup()
        p = self.params
        if p.warmup_epochs is None:
            p.warmup_epochs = scaled_epochs(10, 300, self.ctx.epochs)

    def clip_norm(self) -> float | None:
        return self.params.clip_grad_norm

    def train_step(self, batch):
        p = self.params
        if self.ctx.epoch < p.warmup_epochs:  # plain CE
            return Method.train_step(self, batch)
        result = self.meta_gradient(batch.x, real_and_pseudo_ce(batch.y))
        alpha, beta = l2b_weights(
            result.grad, normalization=p.normalization, temperature=p.temperature, variant=p.variant
        )
        b = len(batch.y)
        loss = (alpha * result.losses[:b]).sum() + (beta * result.losses[b:]).sum()
        self.ctx.step(loss, self.optimizer, clip=p.clip_grad_norm)
        self.record_weights(batch.index, alpha * b)
        return {
            "loss": loss.detach(),
            "meta_loss": result.meta_loss,
            "alpha_mass": alpha.sum().detach(),
        }
