"""L2B: Learning to Bootstrap (Zhou et al., "L2B: Learning to Bootstrap for Combating Label Noise").

Each training sample contributes two terms, the cross-entropy with its given label ``f_i`` and with its
hard pseudo-label ``g_i`` (eq. 1: the argmax of the model's own prediction, detached), weighted by
per-sample ``alpha_i`` and ``beta_i`` (eq. 3). The weights come from one meta step at
``alpha = beta = 0`` (eq. 5-7, Algorithm 1 lines 5-9): with ``K = 2B`` terms, eq. 7 sets
``(alpha, beta) = -eta * dL_meta/d(alpha, beta)``, which by appendix eq. 23 and 28 is
``eta * lambda * <grad f_i, grad L_meta>`` and ``eta * lambda * <grad g_i, grad L_meta>``, computed
exactly with one JVP by :func:`noisy_labels.meta.weight_grad` (the training forward is shared with the
real step). Then (eq. 8-10, 13 or 14) these raw weights are normalised over all ``2B`` terms and the real
step descends ``sum_i alpha_i f_i + beta_i g_i``.

Choices (paper vs. reference code yuyinzhou/L2B):

* ``eta``: eq. 7's step. At ``alpha = beta = 0`` the look-ahead of eq. 5 is ``theta' = theta``, so its
  step ``lambda`` only scales the meta-gradient and the two steps act as one product: ``eta`` is that
  product, the raw weights are ``eta * <grad l_k, grad L_meta(theta)>``. Default (``null``): the
  student's current step (``lookahead``: ``lr / (1 - momentum)``, or ``lr`` with ``lookahead: lr``; see
  :mod:`noisy_labels.defaults`), as before, and the reference code's product (its eq. 7 step is 1, its
  look-ahead the optimiser's lr). ``lookahead_lr`` is a synonym that ``eta`` overrides.
* ``scale``: what eq. 13 and 14 see. Eq. 9 divides by a sum, so the size of the raw weights cancels; the
  sigmoid and the softmax do not, and the paper reports no ``eta``. On the raw values (``"raw"``, the
  reference code) they are small: CIFAR-10 features, uniform 80%: a standard deviation of 0.47 over a
  batch in the first epoch, about 1e-6 at the last step, where the cosine schedule has taken the lr to 0.
  Sigmoid is then about ``0.5 + alpha / 4`` and softmax with ``tau = 10`` uniform to 1e-3: L2B trains
  on the equal mix of given- and pseudo-label CE (hard bootstrapping) with a first-order reweighting.
  ``"std"`` (default) divides the raw weights by their standard deviation over the batch's ``2B`` terms
  (:func:`noisy_labels.meta.batch_standardized`; not centred: the sign is eq. 8's decision), i.e. eq. 7's
  step taken per batch as ``1 / (lambda * std)``, so ``eta`` cancels too. Eq. 13 is then a soft eq. 8 (a
  term one standard deviation above 0 gets 0.73, one below 0.27) and ``tau`` counts batch standard
  deviations per factor ``e`` of eq. 14's weights: the paper's ``tau = 10`` weighs mildly (max / min
  about 1.6 over a noisy batch of 64 terms, ``tests/test_meta_methods.py``), ``tau = 3`` about 5x.
  Measured below.
* ``normalization``: ``"sum"`` eq. 8-9 (rectify, divide by the sum over the 2B terms; the reference's
  ``org``), ``"sigmoid"`` eq. 13 followed by division by the batch sum as the reference does, or
  ``"softmax"`` eq. 14 over the 2B terms with temperature ``temperature`` (the paper's tau = 10).
  The paper finds the best one differs by data set (Fig. 3: eq. 9 on CIFAR-100, sigmoid/softmax on
  ISIC). Default ``"sigmoid"``. Measured on the raw scale (CIFAR-10 features, linear head, defaults, seed
  0): on CIFAR-10N ``random1`` (17% noisy) eq. 9 ends at 72.7%, 3 points *below* CE (76.0%), because its
  rectification drops every term whose one-batch meta-gradient has the wrong sign, about half of the good
  data; sigmoid ends at 77.6% (softmax 77.2%); at uniform 80% 69.6 / 69.2 / 68.0%.

  The default scale changed from raw to std, so the default results changed. Measured with the suite's
  rows (``benchmarks/defaults.py``: the CIFAR-10 features with a linear head, MNIST 3k with the small
  CNN; defaults, seed 0, same code), last-epoch test accuracy % / cleanness AUC, ``raw -> std``::

      symmetric 20%    77.4 / 0.79 -> 77.4 / 0.69    CIFAR-10N aggre      78.6 / 0.57 -> 78.5 / 0.54
      symmetric 50%    73.9 / 0.90 -> 75.4 / 0.82    CIFAR-10N random1    77.6 / 0.62 -> 77.5 / 0.57
      symmetric 80%    65.2 / 0.92 -> 70.7 / 0.87    CIFAR-10N worst      73.8 / 0.74 -> 75.5 / 0.68
      uniform 80%      69.2 / 0.92 -> 72.8 / 0.86    MNIST symmetric 50%  94.8 / 0.70 -> 94.9 / 0.65
      asymmetric 40%   71.0 / 0.85 -> 76.0 / 0.75

  Accuracy gains up to 5 points where the noise is heavy or structured and is level at low noise; the
  cleanness ranking (``B * alpha_i``) loses 0.03-0.10 AUC (presumably the sigmoid flattening the
  differences among the terms it saturates; not investigated). Softmax (``tau = 10``) raw -> std:
  uniform 80% 68.0 / 0.92 -> 70.3 / 0.90, ``random1`` 77.2 / 0.62 -> 77.5 / 0.57; on the std scale at
  ``tau = 3`` 71.9 / 76.8%, at ``tau = 1`` too sharp (52.4 / 66.6%).
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

import functools
from dataclasses import dataclass

import torch

from .._validation import check_choice
from ..defaults import scaled_epochs
from ..losses import real_and_pseudo_ce
from ..meta import L2B_NORMALIZATIONS, L2B_SCALES, l2b_normalize
from .base import Method
from .meta_weighting import MetaMethod, MetaParams

VARIANTS = ("joint", "alpha_zero", "beta_zero", "sum_to_one")


def l2b_weights(
    grad: torch.Tensor,
    *,
    normalization: str = "sum",
    temperature: float = 10.0,
    variant: str = "joint",
    scale: str = "raw",
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
    scale : {'raw', 'std'}, default='raw'
        What sigmoid and softmax see: eq. 7's values, or those in units of their batch std.

    Examples
    --------
    >>> alpha, beta = l2b_weights(torch.tensor([-1.0, 0.5, -1.0, -2.0]))
    >>> alpha.tolist(), beta.tolist()
    ([0.25, 0.0], [0.25, 0.5])
    """
    b = grad.shape[0] // 2
    zeros = torch.zeros(b, dtype=grad.dtype, device=grad.device)
    normalize = functools.partial(l2b_normalize, method=normalization, temperature=temperature, scale=scale)
    if variant == "alpha_zero":
        return zeros, normalize(grad[b:])
    if variant == "beta_zero":
        return normalize(grad[:b]), zeros
    weights = normalize(grad)
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
    temperature: float = 10.0  # eq. 14's tau (in batch standard deviations with scale "std")
    # what eq. 13 / 14 see: "std" eq. 7's weights over their batch std | "raw" as they are (reference code)
    scale: str = "std"
    # eq. 7's step (times eq. 5's): raw weights eta * <grad l_k, grad L_meta>; None: the student's step
    eta: float | None = None
    variant: str = "joint"  # "joint" | "alpha_zero" | "beta_zero" | "sum_to_one" (Table 7)
    # plain CE first; None: the paper's 10 of 300 CIFAR epochs as a fraction of the run (1 of 20)
    warmup_epochs: int | None = None
    clip_grad_norm: float | None = None  # None: the config's grad_clip (paper CIFAR-10: 0.25)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("normalization", self.normalization, L2B_NORMALIZATIONS)
        check_choice("variant", self.variant, VARIANTS)
        check_choice("scale", self.scale, L2B_SCALES)
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}.")
        if self.eta is not None and self.eta <= 0:
            raise ValueError(f"eta must be > 0 or null, got {self.eta}.")


class L2B(MetaMethod, name="l2b", params=L2BParams):
    """Learning to Bootstrap: meta-learned per-sample weights of real- and pseudo-label losses."""

    def setup(self) -> None:
        super().setup()
        p = self.params
        if p.warmup_epochs is None:
            p.warmup_epochs = scaled_epochs(10, 300, self.ctx.epochs)

    def lookahead_lr(self) -> float:
        """Eq. 7's ``eta`` (the paper's ``eta * lambda``): ``eta`` if set, else the student's current step."""
        return super().lookahead_lr() if self.params.eta is None else self.params.eta

    def clip_norm(self) -> float | None:
        return self.params.clip_grad_norm

    def train_step(self, batch):
        p = self.params
        if self.ctx.epoch < p.warmup_epochs:  # plain CE
            return Method.train_step(self, batch)
        result = self.meta_gradient(batch.x, real_and_pseudo_ce(batch.y))
        b = len(batch.y)
        # normalised over the global batch's 2B terms (gathered from the ranks' slices under torchrun)
        real, pseudo = self.ctx.gather_batch(result.grad[:b], result.grad[b:])
        alpha, beta = l2b_weights(
            torch.cat([real, pseudo]),
            normalization=p.normalization,
            temperature=p.temperature,
            variant=p.variant,
            scale=p.scale,
        )
        alpha, beta = self.ctx.local_rows(alpha), self.ctx.local_rows(beta)
        loss = (alpha * result.losses[:b]).sum() + (beta * result.losses[b:]).sum()
        self.ctx.step(loss, self.optimizer, clip=p.clip_grad_norm, reduction="sum")
        self.record_weights(batch.index, alpha * self.ctx.global_batch_len(b))
        return {
            "loss": loss.detach(),
            "meta_loss": result.meta_loss,
            "alpha_mass": alpha.sum().detach(),
        }
