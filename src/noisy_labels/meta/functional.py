"""Functional building blocks: parameter dicts, side-effect-free forwards, the one-step look-ahead.

A model's weights are handled as plain ``{name: tensor}`` dicts (the ``torch.func`` style): a look-ahead
``theta' = theta - lr * g`` is dict arithmetic and a forward at any weights is
``torch.func.functional_call``. No model copies, no ``MetaModule`` subclasses.

BatchNorm: ``functional_call`` writes the running-statistic updates of a train-mode forward into the
buffer tensors it is given. :func:`functional_forward` therefore passes *clones* of the model's buffers
unless told otherwise, so look-ahead and meta forwards never move the real running statistics (their
outputs use the batch statistics in train mode either way).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call

__all__ = [
    "ParamDict",
    "RngState",
    "buffers_of",
    "capture_rng",
    "dot",
    "functional_forward",
    "lookahead",
    "parameters_of",
    "replay_rng",
    "unwrap",
]

ParamDict = dict[str, Tensor]


def unwrap(model: nn.Module) -> nn.Module:
    """The network inside a ``DistributedDataParallel`` wrapper (functional calls need the bare module)."""
    return getattr(model, "module", model)


def parameters_of(model: nn.Module) -> ParamDict:
    """The model's trainable parameters by name: the live tensors, not copies.

    Gradients taken with respect to these values are gradients with respect to the model's weights, and
    frozen parameters (``requires_grad=False``) are left out, so they stay fixed in every look-ahead.

    Examples
    --------
    >>> list(parameters_of(nn.Linear(2, 3)))
    ['weight', 'bias']
    """
    return {name: p for name, p in unwrap(model).named_parameters() if p.requires_grad}


def buffers_of(model: nn.Module, *, clone: bool = True) -> ParamDict:
    """The model's buffers (BatchNorm running statistics) by name; cloned unless ``clone=False``.

    Pass ``clone=False`` only for the one forward per step that should update the running statistics.
    """
    return {name: b.clone() if clone else b for name, b in unwrap(model).named_buffers()}


def functional_forward(
    model: nn.Module, params: Mapping[str, Tensor], x: Tensor, *, buffers: Mapping[str, Tensor] | None = None
) -> Tensor:
    """``model(x)`` evaluated at the weights ``params`` (missing names fall back to the model's own).

    Parameters
    ----------
    model : nn.Module
        Any module; a DDP wrapper is unwrapped. Its train/eval mode is used as is.
    params : dict of str to Tensor
        Weights to use, e.g. a look-ahead from :func:`lookahead` or dual tensors for a JVP.
    x : Tensor
        Input batch.
    buffers : dict of str to Tensor, optional
        Buffers to use; default: clones of the model's, so a train-mode forward leaves the real
        BatchNorm running statistics untouched. Pass ``buffers_of(model, clone=False)`` to update them.

    Returns
    -------
    Tensor
        The model's output (logits).
    """
    module = unwrap(model)
    if buffers is None:
        buffers = buffers_of(module, clone=True)
    return functional_call(module, (dict(params), dict(buffers)), (x,))


def lookahead(
    params: Mapping[str, Tensor],
    grads: Mapping[str, Tensor],
    lr: float,
    *,
    offset: Mapping[str, Tensor] | None = None,
) -> ParamDict:
    """One plain SGD step on a parameter dict: ``theta' = theta - lr * (g + offset)``.

    This is the "virtual" step of every one-step meta method (Ren et al. 2018, L2RW; Shu et al. 2019,
    MW-Net, as the ``w_hat`` equation of RMNW-Net sec. 3; L2B eq. 5). ``offset`` adds a term that does
    not depend on the sample weights (e.g. momentum and weight decay of a real optimiser's next step);
    the meta-gradient formulas of :mod:`noisy_labels.meta.gradients` hold with or without it.

    Examples
    --------
    >>> out = lookahead({"w": torch.tensor([1.0])}, {"w": torch.tensor([2.0])}, 0.1)
    >>> round(out["w"].item(), 6)
    0.8
    """
    if offset is None:
        return {k: p - lr * grads[k] for k, p in params.items()}
    return {k: p - lr * (grads[k] + offset[k]) for k, p in params.items()}


def dot(a: Mapping[str, Tensor], b: Mapping[str, Tensor]) -> Tensor:
    """Inner product ``<a, b>`` of two parameter dicts over the keys of ``a``."""
    return sum((a[k] * b[k]).sum() for k in a)  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------- randomness
RngState = tuple[Tensor, Any]


def capture_rng(device: torch.device | str = "cpu") -> RngState:
    """The RNG state that the next forward on ``device`` will draw dropout masks from."""
    device = torch.device(device)
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return torch.get_rng_state(), (device, cuda)


@contextlib.contextmanager
def replay_rng(state: RngState | None) -> Iterator[None]:
    """Run a block with the RNG rewound to ``state`` and restore the current state afterwards.

    A second forward over the same batch (the JVP pass of the fast meta-gradient) then draws the same
    dropout masks as the first, so both differentiate the same function. ``None`` does nothing.
    """
    if state is None:
        yield
        return
    cpu, (device, cuda) = state
    devices = [device] if cuda is not None else []
    with torch.random.fork_rng(devices=devices):
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state(cuda, device)
        yield
