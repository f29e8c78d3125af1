"""Meta-gradients of a teacher whose soft labels train the student (EMLC's FPMG, MLC's second order).

The setting of EMLC (Taraday & Baskin, "Enhanced Meta Label Correction for Coping with Label
Corruption", ICCV 2023, sec. 3.2-3.5): a teacher ``q_alpha(y | x, y~)`` gives each noisy sample a soft
label, the student ``p_w`` descends the batch mean of ``l_i(w, alpha) = CE(q_alpha(x_i, y~_i), p_w(x_i))``
(eq. 6),

    w^(tau+1) = w^(tau) - eta_tau * grad_w L~_tau(w^(tau), alpha),

and the teacher is judged by the student's clean loss ``L`` after the step(s) (eq. 3-5). With
``g = grad_w L(w^(t+1))`` at the student's *new* weights and the mixed Hessian
``H^(tau) = grad_w grad_alpha L~_tau(w^(tau), alpha)`` at its *old* weights:

* one step (Prop. 1, exact): ``grad_alpha L(w^(t+1)) = -eta_t g^T H^(t)`` (eq. 7);
* k steps (Prop. 2, an approximation): ``-sum_tau eta_tau gamma^(t - tau) g^T H^(tau)`` over the last k
  steps with ``gamma = 1 - eta`` (eq. 8): every ``I - eta H_ww`` of the unrolled chain becomes ``gamma I``.

``g^T H^(tau) = grad_alpha <grad_w L~_tau(w^(tau), alpha), g>``, and the inner product is the batch mean of
the forward-mode derivative (JVP) of the per-sample loss vector at ``w^(tau)`` along ``g``. FPMG
(Algorithm 2; eq. 10-11) takes that JVP with the tangent's graph kept to the soft labels
(:func:`~noisy_labels.meta.gradients.jvp_losses` with ``differentiable_tangent=True``) and backpropagates
it into the teacher (the VJP): :func:`fpmg_backward`. :func:`mixed_hessian_backward` reaches the same
numbers the classic way (a ``create_graph`` backward, then a double backward), the reference for tests
and the benchmark. :func:`lookahead_meta_loss` is MLC's objective (Zheng et al., "Meta Label Correction
for Noisy Label Learning", AAAI 2021): the clean loss after a *virtual* SGD step built with
``create_graph``, to be differentiated (second order) into the teacher.

Memory of the k-step path: the recorded steps hold the student's weights before each step (with the
current weights, Algorithm 2's k + 1 versions) and their input batches; a step's teacher graph lives only
during its own backward, so the teacher's activations are never held for k batches at once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ..losses import LossVectorFn, MetaLossFn, soft_cross_entropy
from .functional import ParamDict, RngState, dot, functional_forward, lookahead, parameters_of, replay_rng
from .gradients import grad_dict, jvp_losses

__all__ = [
    "StudentStep",
    "discounts",
    "fpmg_backward",
    "lookahead_meta_loss",
    "mixed_hessian_backward",
    "snapshot",
    "soft_cross_entropy",
]


@dataclass
class StudentStep:
    """One recorded student step, what FPMG needs to revisit it at the teacher's update.

    Attributes
    ----------
    params : dict of str to Tensor
        ``w^(tau)``: detached copies of the student's weights *before* the step (:func:`snapshot`).
    x : Tensor
        The step's (prepared) training batch.
    lr : float
        ``eta_tau``, the step size of the step.
    rng : RngState, optional
        RNG state captured right before the step's student forward, replayed so dropout masks match.
    context : Any
        Whatever the caller needs to rebuild the step's soft labels with their graph (labels, ...).
    share : float
        ``x``'s share of the step's global batch (1 in one process; under ``torchrun`` a rank's slice):
        the batch mean of eq. 6 is the slice's mean times this share, summed over the ranks.
    """

    params: ParamDict
    x: Tensor
    lr: float
    rng: RngState | None = None
    context: Any = None
    share: float = 1.0


#: Rebuilds a recorded step's loss vector ``logits -> (B,)`` with its graph to the teacher.
TargetsFn = Callable[[StudentStep], LossVectorFn]


def snapshot(params: Mapping[str, Tensor]) -> ParamDict:
    """Detached copies of a parameter dict (the student's weights before a step)."""
    return {k: p.detach().clone() for k, p in params.items()}


def discounts(lrs: Sequence[float], gamma: float) -> list[float]:
    """``eta_tau * gamma^(t - tau)`` for the recorded steps, oldest first (eq. 8; Algorithm 2 lines 11-12).

    The latest step gets its own step size undiscounted; each older step one more factor ``gamma``.

    Examples
    --------
    >>> discounts([0.1, 0.1, 0.2], gamma=0.5)
    [0.025, 0.05, 0.2]
    """
    k = len(lrs)
    return [lr * gamma ** (k - 1 - i) for i, lr in enumerate(lrs)]


def _backward(term: Tensor, inputs: Sequence[Tensor] | None) -> None:
    if term.requires_grad:
        torch.autograd.backward(term, inputs=list(inputs) if inputs is not None else None)


# Fast twin of mixed_hessian_backward (the reference path), kept separate: each checks the other.
def fpmg_backward(
    model: nn.Module,
    steps: Sequence[StudentStep],
    g_meta: ParamDict,
    targets_for: TargetsFn,
    *,
    gamma: float | None = None,
    scale: float = 1.0,
    inputs: Sequence[Tensor] | None = None,
) -> Tensor:
    """Accumulate ``scale`` times EMLC's meta-gradient into the teacher's ``.grad`` by FPMG (Algorithm 2).

    For each recorded step (newest first, as Algorithm 2): one dual forward of the student at its old
    weights along ``g_meta`` gives ``jvp_i = <grad_w l_i(w^(tau)), g>`` with its graph to the soft labels,
    then ``-scale * eta_tau * gamma^(t - tau) * mean_i jvp_i`` is backpropagated into the teacher.

    Parameters
    ----------
    model : nn.Module
        The student (its train/eval mode is used as is; BatchNorm buffers are cloned, not moved).
    steps : sequence of StudentStep
        The last k steps, oldest first. One step is Prop. 1 (exact); more are Prop. 2.
    g_meta : dict
        ``g = grad_w L(w^(t+1))``, the clean loss's gradient at the student's current weights (detached).
    targets_for : callable
        ``step -> (logits -> (B,))``: the step's per-sample loss, built on soft labels with their graph
        to the teacher (e.g. :func:`soft_cross_entropy` of a teacher forward).
    gamma : float, optional
        The discount of Prop. 2; default ``1 - eta`` of the latest step. Unused for one step.
    scale : float, default=1.0
        Weight of the meta term in the teacher's objective (eq. 12).
    inputs : sequence of Tensor, optional
        The teacher's parameters: gradients are accumulated into these only.

    Returns
    -------
    Tensor
        The surrogate ``-scale * sum_tau eta_tau gamma^(t - tau) mean_i jvp_i`` (detached), whose
        gradient was accumulated.
    """
    gamma = 1.0 - steps[-1].lr if gamma is None else gamma
    total = torch.zeros((), device=steps[-1].x.device)
    for step, coef in reversed(list(zip(steps, discounts([s.lr for s in steps], gamma), strict=True))):
        _, tangent = jvp_losses(
            model, step.params, g_meta, step.x, targets_for(step), differentiable_tangent=True, rng=step.rng
        )
        term = (-scale * coef * step.share) * tangent.mean()
        _backward(term, inputs)
        total = total + term.detach()
    return total


# Reference twin of fpmg_backward (the fast FPMG path), kept separate: each checks the other.
def mixed_hessian_backward(
    model: nn.Module,
    steps: Sequence[StudentStep],
    g_meta: ParamDict,
    targets_for: TargetsFn,
    *,
    gamma: float | None = None,
    scale: float = 1.0,
    inputs: Sequence[Tensor] | None = None,
) -> Tensor:
    """:func:`fpmg_backward`'s gradient the classic second-order way (reference for tests and benchmarks).

    Per step: ``grad_w L~_tau(w^(tau), alpha)`` with ``create_graph=True``, its inner product with ``g``,
    then a double backward into the teacher. Same arguments and result; pass the teacher's parameters
    as ``inputs`` or the double backward also computes the (unused) student Hessian-vector product.
    """
    gamma = 1.0 - steps[-1].lr if gamma is None else gamma
    total = torch.zeros((), device=steps[-1].x.device)
    for step, coef in reversed(list(zip(steps, discounts([s.lr for s in steps], gamma), strict=True))):
        leaves = {k: p.detach().requires_grad_(True) for k, p in step.params.items()}
        with replay_rng(step.rng), torch.enable_grad():
            losses = targets_for(step)(functional_forward(model, leaves, step.x))
            g_train = grad_dict(losses.mean(), leaves, retain_graph=True, create_graph=True)
            term = (-scale * coef * step.share) * dot(g_train, g_meta)
        _backward(term, inputs)
        total = total + term.detach()
    return total


def lookahead_meta_loss(
    model: nn.Module,
    loss: Tensor,
    meta_x: Tensor,
    meta_y: Tensor,
    meta_loss_fn: MetaLossFn,
    *,
    lr: float,
    params: ParamDict | None = None,
    total_of: Callable[[Tensor], Tensor] | None = None,
) -> Tensor:
    """MLC's meta objective: ``L_meta(w - lr * grad_w loss)`` with the graph through the gradient.

    ``loss`` is the student's training loss on soft labels that carry a graph to the teacher; the
    returned meta loss keeps that graph (``create_graph=True``), so ``meta_loss.backward()`` is the
    classic second-order meta-gradient (a double backward), as in MLC's reference code. The graph of
    ``loss`` is retained for the caller's real step.

    Parameters
    ----------
    model : nn.Module
        The student at ``w`` (BatchNorm buffers are cloned for the meta forward).
    loss : Tensor
        Scalar training loss of the student, built on ``params``.
    meta_x, meta_y : Tensor
        Clean batch.
    meta_loss_fn : callable
        ``(logits, labels) -> scalar``.
    lr : float
        Step size of the virtual SGD step.
    params : dict, optional
        Default: the model's trainable parameters.
    total_of : callable, optional
        Turns the gradient of ``loss`` into the global batch's (under ``torchrun``: the ranks' sum, each
        rank's ``loss`` its part of the global objective).

    Returns
    -------
    Tensor
        The meta loss at the virtual weights, with its graph.
    """
    params = parameters_of(model) if params is None else params
    g_train = grad_dict(loss, params, retain_graph=True, create_graph=True)
    if total_of is not None:
        g_train = {k: total_of(g) for k, g in g_train.items()}
    return meta_loss_fn(functional_forward(model, lookahead(params, g_train, lr), meta_x), meta_y)
