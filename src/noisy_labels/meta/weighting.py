"""Turning meta-gradients and weighting-net outputs into per-sample (per-term) weights.

* :func:`effective_sample_share`: how many samples a batch's weights really train on (a diagnostic).
* :func:`normalize_sum`: divide by the batch sum, with the reference codes' guard for a zero sum (L2RW;
  the MW-Net/RMNW-Net reference; L2B eq. 9).
* :func:`rectified_weights`: L2RW's ``w = max(-grad, 0) / sum`` (Ren et al., ICML 2018, restated as
  L2B eq. 8-9).
* :func:`l2b_normalize`: L2B's three normalisations of the raw weights ``-grad``: eq. 9 (``"sum"``),
  sigmoid (eq. 13) and softmax with temperature (eq. 14), on the raw scale of eq. 7 or in units of the
  batch's standard deviation (:func:`batch_standardized`; why: :mod:`noisy_labels.methods.l2b`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "L2B_NORMALIZATIONS",
    "L2B_SCALES",
    "batch_standardized",
    "effective_sample_share",
    "l2b_normalize",
    "normalize_sum",
    "rectified_weights",
]

L2B_NORMALIZATIONS = ("sum", "sigmoid", "softmax")
#: What the sigmoid and softmax of L2B see: eq. 7's values as they are, or in units of their batch std.
L2B_SCALES = ("raw", "std")


def effective_sample_share(weights: Tensor) -> Tensor:
    """Kish's effective sample size of a batch's weights as a share of the batch (``train_weight_ess``).

    ``(sum w)^2 / (n sum w^2)``: 1 for equal weights, ``k / n`` when ``k`` samples share all the weight.

    >>> effective_sample_share(torch.tensor([2.0, 2.0, 0.0, 0.0])).item()
    0.5
    """
    w = weights.detach().float()
    return w.sum() ** 2 / (len(w) * (w * w).sum()).clamp_min(torch.finfo(w.dtype).tiny)


def normalize_sum(weights: Tensor, total_of: Callable[[Tensor], Tensor] | None = None) -> Tensor:
    """``w / sum(w)``, or ``w`` unchanged when the sum is zero (every weight clamped to 0).

    The zero-sum guard is the reference codes' (L2RW, MW-Net, RMNW-Net, L2B): a batch whose weights are
    all zero contributes no update rather than a division by zero. Written without a host sync.
    ``total_of`` turns the local sum into the batch's (under ``torchrun``: the sum over the ranks'
    slices, :meth:`~noisy_labels.engine.context.TrainingContext.global_sum`).

    Examples
    --------
    >>> normalize_sum(torch.tensor([1.0, 3.0])).tolist()
    [0.25, 0.75]
    >>> normalize_sum(torch.zeros(2)).tolist()
    [0.0, 0.0]
    """
    total = weights.sum() if total_of is None else total_of(weights.sum())
    return weights / torch.where(total > 0, total, torch.ones_like(total))


def rectified_weights(grad: Tensor, total_of: Callable[[Tensor], Tensor] | None = None) -> Tensor:
    """L2RW's weights from the meta-gradient at ``w = 0``: ``max(-grad, 0)`` normalised to sum 1.

    Ren et al. 2018 (restated as L2B eq. 8-9): a sample whose gradient agrees with the meta gradient
    (``grad < 0``: up-weighting it lowers the meta loss) gets a positive weight, the others zero.

    Examples
    --------
    >>> rectified_weights(torch.tensor([-1.0, 2.0, -3.0])).tolist()
    [0.25, 0.0, 0.75]
    """
    return normalize_sum(torch.clamp(-grad, min=0.0), total_of)


def batch_standardized(grad: Tensor) -> Tensor:
    """``grad / std(grad)`` over the batch's terms: unit spread, signs (and zero) kept, no centring.

    Eq. 8's rectification and eq. 13's sigmoid read the sign of a meta-gradient (does up-weighting the
    term lower the meta loss?), so the values are scaled, not shifted. A batch whose terms are all equal
    (std 0) is returned unchanged. Written without a host sync.

    Examples
    --------
    >>> batch_standardized(torch.tensor([-4.0, 0.0, 0.0, 4.0])).tolist()
    [-1.4142135381698608, 0.0, 0.0, 1.4142135381698608]
    """
    std = grad.std(correction=0)
    return grad / torch.where(std > 0, std, torch.ones_like(std))


def l2b_normalize(
    grad: Tensor, method: str = "sum", *, temperature: float = 10.0, scale: str = "raw"
) -> Tensor:
    """L2B's weights from the meta-gradient ``grad`` of all ``K`` terms (real and pseudo), summing to 1.

    Parameters
    ----------
    grad : Tensor of shape (K,)
        ``dL_meta/dw`` at ``w = 0`` over all terms of the batch (L2B eq. 7 uses ``-eta * grad``).
    method : {'sum', 'sigmoid', 'softmax'}, default='sum'
        ``'sum'``: eq. 8-9, ``max(-grad, 0)`` over its sum (``org`` in the reference code).
        ``'sigmoid'``: eq. 13 ``sigmoid(-grad)``, then divided by the batch sum as the reference code
        does (eq. 13 alone would leave every weight near 0.5 and the loss scaled by ``K / 2``).
        ``'softmax'``: eq. 14, ``softmax(-grad / temperature)`` over all ``K`` terms.
    temperature : float, default=10.0
        Eq. 14's tau; the paper uses 10.
    scale : {'raw', 'std'}, default='raw'
        ``'raw'``: the values of eq. 7 as they are. ``'std'``: divided by their standard deviation over
        the ``K`` terms first (:func:`batch_standardized`), so sigmoid and softmax do not depend on the
        size of the meta-gradient (eq. 9 does not either way).

    Returns
    -------
    Tensor of shape (K,)

    Examples
    --------
    >>> l2b_normalize(torch.tensor([-1.0, 1.0]), "sum").tolist()
    [1.0, 0.0]
    >>> round(l2b_normalize(torch.tensor([-1.0, 1.0]), "softmax", temperature=1.0)[0].item(), 4)
    0.8808
    """
    if scale == "std":
        grad = batch_standardized(grad)
    elif scale != "raw":
        raise ValueError(f"unknown L2B scale {scale!r}; use one of {', '.join(L2B_SCALES)}.")
    if method == "sum":
        return rectified_weights(grad)
    if method == "sigmoid":
        return normalize_sum(torch.sigmoid(-grad))
    if method == "softmax":
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}.")
        return F.softmax(-grad / temperature, dim=0)
    raise ValueError(f"unknown L2B normalisation {method!r}; use one of {', '.join(L2B_NORMALIZATIONS)}.")
