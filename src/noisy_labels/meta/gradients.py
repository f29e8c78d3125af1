"""Exact meta-gradients of per-sample (per-term) loss weights, the fast way and the reference way.

All one-step meta methods share one bi-level step. Training terms ``l_k(theta)`` (one per sample, or
two per sample for L2B's real- and pseudo-label losses) are weighted by ``w_k`` in a virtual SGD step

    theta'(w) = theta - lr * sum_k w_k grad l_k(theta)            (L2RW; MW-Net eq. 3; L2B eq. 5)

and the weights are judged by the meta loss ``L_meta(theta'(w))`` on a trusted batch. The weights
themselves are held constant inside the gradient (MW-Net's ``W(l_i(w^t); Theta)`` uses the loss value
only; L2RW and L2B differentiate at ``w = 0``). By the chain rule

    dL_meta(theta')/dw_k = -lr * < grad l_k(theta), grad L_meta(theta') >     (L2B eq. 23, 28; RMNW-Net eq. 4)

which is, for all ``k`` at once, ``-lr`` times the forward-mode derivative (JVP) of the loss *vector*
``l(theta)`` along the single direction ``grad L_meta(theta')``. :func:`weight_grad` computes it with one
forward pass on dual tensors (``torch.autograd.forward_ad``; ``torch.func.jvp`` refuses train-mode
BatchNorm because its running statistics are mutated). The reference code of L2RW, MW-Net, RMNW-Net and
L2B instead differentiates ``theta'(w)`` itself, a ``create_graph=True`` backward followed by a double
backward; :func:`weight_grad_second_order` is that path, kept as the reference for tests and the
benchmark. Both are exact: they agree to rounding error (``tests/test_meta_gradients.py``, float64).

BatchNorm in train mode couples the samples of a batch (``l_k`` depends on the other samples through the
batch statistics); the identity above still holds because it only uses linearity in ``w``. Look-ahead,
meta and JVP forwards use cloned buffers, so only the training forward moves the running statistics.

Cost per step (``benchmarks/meta_step_cost.py``): the training forward (shared with the real step), one
meta forward/backward, one dual forward (about a CE step's cost: convolutions run three times and
BatchNorm's tangent rule is costly) and the real backward; with ``w != 0`` (MW-Net) one more backward for
the look-ahead gradient. The second-order path replaces the dual forward by a ``create_graph`` backward
and a double backward through it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.autograd.forward_ad as fwAD
from torch import Tensor, nn

from ..losses import LossVectorFn, MetaLossFn
from .functional import (
    ParamDict,
    RngState,
    buffers_of,
    capture_rng,
    functional_forward,
    lookahead,
    parameters_of,
    replay_rng,
)

__all__ = [
    "LossVectorFn",
    "MetaLossFn",
    "WeightGrad",
    "grad_dict",
    "jvp_losses",
    "meta_loss_and_grad",
    "weight_grad",
    "weight_grad_second_order",
]


@dataclass(frozen=True)
class WeightGrad:
    """Result of a meta-gradient computation.

    Attributes
    ----------
    grad : Tensor of shape (K,)
        ``dL_meta(theta'(w)) / dw`` at the given weights (detached).
    losses : Tensor of shape (K,)
        The training terms ``l_k(theta)``, with their autograd graph: the real step's loss is built on them.
    meta_loss : Tensor
        ``L_meta(theta')`` (detached scalar).
    """

    grad: Tensor
    losses: Tensor
    meta_loss: Tensor


def grad_dict(
    loss: Tensor, params: ParamDict, *, retain_graph: bool = False, create_graph: bool = False
) -> ParamDict:
    """``d loss / d params`` as a dict (zeros for parameters the loss does not reach)."""
    grads = torch.autograd.grad(
        loss, list(params.values()), retain_graph=retain_graph, create_graph=create_graph, allow_unused=True
    )
    return {
        k: torch.zeros_like(p) if g is None else g for (k, p), g in zip(params.items(), grads, strict=True)
    }


def meta_loss_and_grad(
    model: nn.Module, params: ParamDict, meta_x: Tensor, meta_y: Tensor, meta_loss_fn: MetaLossFn
) -> tuple[Tensor, ParamDict]:
    """The meta loss at ``params`` and its gradient ``grad L_meta(params)`` (detached).

    The forward runs in the model's current mode with cloned buffers (no running-statistic update).
    """
    leaves = {k: p.detach().requires_grad_(True) for k, p in params.items()}
    with torch.enable_grad():
        loss = meta_loss_fn(functional_forward(model, leaves, meta_x), meta_y)
        grads = grad_dict(loss, leaves)
    return loss.detach(), grads


def jvp_losses(
    model: nn.Module,
    params: ParamDict,
    direction: ParamDict,
    x: Tensor,
    loss_vector_fn: LossVectorFn,
    *,
    training_forward: bool = False,
    differentiable_tangent: bool = False,
    rng: RngState | None = None,
) -> tuple[Tensor, Tensor]:
    """The loss vector ``l(theta)`` and its directional derivative ``J(theta) v``, ``v = direction``.

    One forward pass on dual tensors: entry ``k`` of the tangent is ``<grad l_k(theta), v>``.

    Parameters
    ----------
    model : nn.Module
    params : dict
        ``theta``; keys of ``direction`` must match.
    direction : dict
        The tangent ``v`` (e.g. ``grad L_meta(theta')``).
    x : Tensor
        Training batch.
    loss_vector_fn : callable
        ``logits -> (K,)`` training terms; it may use other differentiable tensors (e.g. soft labels).
    training_forward : bool, default=False
        If True the pass doubles as the step's training forward: the returned losses keep their autograd
        graph and the model's BatchNorm running statistics are updated (once, as by ``model(x)``).
        Otherwise the primal records no graph to ``params`` and the buffers are cloned.
    differentiable_tangent : bool, default=False
        Keep the tangent's autograd graph to the tensors ``loss_vector_fn`` captures (not to ``params``),
        so ``tangent`` can be backpropagated into, e.g., a teacher that produced soft labels: the JVP
        then VJP of EMLC's fast meta-gradient (FPMG). Otherwise the tangent is detached.
    rng : RngState, optional
        Replay this RNG state (from :func:`~noisy_labels.meta.functional.capture_rng` taken before an
        earlier forward on ``x``) so dropout draws the same masks.

    Returns
    -------
    losses : Tensor of shape (K,)
    tangent : Tensor of shape (K,)
    """
    buffers = buffers_of(model, clone=not training_forward)
    tracked = training_forward or differentiable_tangent
    with replay_rng(rng), torch.set_grad_enabled(tracked), fwAD.dual_level():
        duals = {
            k: fwAD.make_dual(p if training_forward else p.detach(), direction[k]) for k, p in params.items()
        }
        losses = loss_vector_fn(functional_forward(model, duals, x, buffers=buffers))
        primal, tangent = fwAD.unpack_dual(losses)
    if tangent is None:  # the losses do not depend on the parameters at all
        tangent = torch.zeros_like(primal)
    return primal, tangent if differentiable_tangent else tangent.detach()


# Fast twin of weight_grad_second_order (the reference path), kept separate: each checks the other.
def weight_grad(
    model: nn.Module,
    x: Tensor,
    loss_vector_fn: LossVectorFn,
    meta_x: Tensor,
    meta_y: Tensor,
    meta_loss_fn: MetaLossFn,
    *,
    lr: float,
    weights: Tensor | None = None,
    losses: Tensor | None = None,
    rng: RngState | None = None,
    params: ParamDict | None = None,
    total_of: Callable[[Tensor], Tensor] | None = None,
) -> WeightGrad:
    """Exact ``dL_meta(theta'(w))/dw`` by one JVP: ``-lr * J(theta) grad L_meta(theta')``.

    Parameters
    ----------
    model : nn.Module
        The classifier at ``theta`` (its train/eval mode is used as is).
    x : Tensor
        Training batch.
    loss_vector_fn : callable
        ``logits -> (K,)`` training terms ``l_k`` (e.g. per-sample cross-entropy).
    meta_x, meta_y : Tensor
        Meta (trusted) batch.
    meta_loss_fn : callable
        ``(logits, labels) -> scalar`` meta loss (mean cross-entropy, or MAE for a noisy meta set).
    lr : float
        Look-ahead step size (the classifier's current learning rate in the papers).
    weights : Tensor of shape (K,), optional
        The weights of the look-ahead step, constants (MW-Net: the normalised weighting-net outputs).
        None means ``w = 0`` (L2RW, L2B): then ``theta' = theta`` and no look-ahead gradient is needed.
    losses : Tensor of shape (K,), optional
        ``loss_vector_fn(model(x))`` from the caller's training forward, with its graph: the look-ahead
        gradient and the real step reuse it. If None this function runs that forward (``model(x)``,
        which also updates BatchNorm running statistics, once) and returns the losses.
    rng : RngState, optional
        RNG state captured before the caller's forward that produced ``losses``; replayed for the JVP
        pass so models with dropout are differentiated with the same masks.
    params : dict, optional
        The weights ``theta`` to differentiate and step: a subset of the model's trainable parameters
        (e.g. the head only); default all of them (:func:`~noisy_labels.meta.functional.parameters_of`).
    total_of : callable, optional
        Turns this batch's look-ahead gradient into the global batch's: under ``torchrun``, where ``x``
        is one rank's slice, the sum over the ranks (a differentiable all-reduce).

    Returns
    -------
    WeightGrad
        ``grad`` (K,), ``losses`` (K,) with graph, ``meta_loss``.

    Examples
    --------
    >>> import torch.nn.functional as F
    >>> model = nn.Linear(3, 2)
    >>> x, y = torch.randn(4, 3), torch.tensor([0, 1, 0, 1])
    >>> per_sample = lambda logits: F.cross_entropy(logits, y, reduction="none")
    >>> result = weight_grad(model, x, per_sample, x, y, F.cross_entropy, lr=0.1)
    >>> result.grad.shape, result.losses.requires_grad
    (torch.Size([4]), True)

    Notes
    -----
    Cost: one training forward (usually shared with the real step), one meta forward/backward, one
    dual forward without graph, plus, when ``weights`` is given, one backward for the look-ahead
    gradient. The JVP pass is a separate untracked forward: letting it double as the training forward
    (``jvp_losses(training_forward=True)``) records the tangent computations for backward too and
    measured slower on ResNet-32 (benchmarks/meta_step_cost.py).
    """
    params = parameters_of(model) if params is None else params
    if losses is None:
        rng = capture_rng(x.device)
        losses = loss_vector_fn(model(x))
    if weights is None:
        ahead = params  # theta' = theta at w = 0
    else:
        g_train = _total(grad_dict((weights.detach() * losses).sum(), params, retain_graph=True), total_of)
        ahead = lookahead(params, g_train, lr)
    meta_loss, g_meta = meta_loss_and_grad(model, ahead, meta_x, meta_y, meta_loss_fn)
    _, tangent = jvp_losses(model, params, g_meta, x, loss_vector_fn, rng=rng)
    return WeightGrad(-lr * tangent, losses, meta_loss)


# Reference twin of weight_grad (the fast JVP path), kept separate: each checks the other.
def weight_grad_second_order(
    model: nn.Module,
    x: Tensor,
    loss_vector_fn: LossVectorFn,
    meta_x: Tensor,
    meta_y: Tensor,
    meta_loss_fn: MetaLossFn,
    *,
    lr: float,
    weights: Tensor | None = None,
    losses: Tensor | None = None,
    params: ParamDict | None = None,
    total_of: Callable[[Tensor], Tensor] | None = None,
) -> WeightGrad:
    """The reference path: build ``theta'(w)`` with ``create_graph=True`` and differentiate w.r.t. ``w``.

    What the reference L2RW/MW-Net/RMNW-Net/L2B code does (a second-order "double backward"). Same
    arguments and result as :func:`weight_grad` (``rng`` is not needed: there is no second forward on
    ``x``); a training step with it is 1.2-2.2x slower on the CPU (``benchmarks/results/``). The weights
    ``w`` are made leaves here, so no graph into a weighting network is needed.
    """
    params = parameters_of(model) if params is None else params
    if losses is None:
        losses = loss_vector_fn(model(x))
    w = torch.zeros_like(losses) if weights is None else weights.detach().clone()
    w.requires_grad_(True)
    with torch.enable_grad():
        g_train = grad_dict((w * losses).sum(), params, retain_graph=True, create_graph=True)
        ahead = lookahead(params, _total(g_train, total_of), lr)
        meta_loss = meta_loss_fn(functional_forward(model, ahead, meta_x), meta_y)
        (grad,) = torch.autograd.grad(meta_loss, w)
    return WeightGrad(grad.detach(), losses, meta_loss.detach())


def _total(grads: ParamDict, total_of: Callable[[Tensor], Tensor] | None) -> ParamDict:
    """``grads`` with ``total_of`` applied to each tensor (the ranks' sum under ``torchrun``)."""
    return grads if total_of is None else {k: total_of(g) for k, g in grads.items()}
