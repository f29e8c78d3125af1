"""The one interface every learning-with-noisy-labels method implements, and the batches it is given.

The engine owns the loop (epochs, batches, evaluation, checkpoints); a method owns its models,
optimisers and per-step computation, and sees the run only through its training context
(:class:`noisy_labels.engine.context.TrainingContext`, ``self.ctx``). A method:

* declares its hyper-parameters as a dataclass ``Params`` (config section named after the method);
* builds what it needs in :meth:`setup` through the context (``ctx.new_model()``,
  ``ctx.new_optimizer(...)``), so device, AMP, channels_last, DDP and the LR schedule come for free;
* implements :meth:`train_step` for one mini-batch (simple loss-based methods only override :meth:`loss`);
* may expose per-sample :meth:`cleanness` scores and :meth:`corrected_labels` over the training set.

State for checkpoints is collected automatically from the method's attributes: every ``nn.Module``,
``torch.optim.Optimizer`` and ``torch.Tensor`` attribute is saved and restored. Keep any other
state that changes during training in tensors (not numpy arrays or Python lists) so resume is exact.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from ..engine.context import TrainingContext


@dataclass
class Batch:
    """One training mini-batch (this rank's slice when distributed)."""

    index: torch.Tensor  # positions in the training set, on the device
    raw: torch.Tensor  # stored samples (uint8 NHWC images or features), for extra views
    x: torch.Tensor  # the prepared weak view
    y: torch.Tensor  # given (noisy) labels
    # under torchrun: the whole global batch this slice belongs to (every rank prepares it), for rules
    # that pair samples across the batch (mixup partners); None in one process, where it is the batch
    whole: Batch | None = None

    @property
    def global_batch(self) -> Batch:
        """The whole global batch (this batch itself in one process)."""
        return self.whole if self.whole is not None else self

    def relabelled(self, labels: torch.Tensor) -> Batch:
        """The same batch with ``labels[index]`` (labels over the whole training set) as its ``y``."""
        return replace(self, y=labels[self.index])


@dataclass
class NoParams:
    """A method without hyper-parameters of its own."""


class Method:
    """Base class: plain cross-entropy training of one model (subclasses change :meth:`loss` or more).

    A subclass registers itself under the name it declares in its class statement, with its parameters'
    dataclass: ``class MyMethod(Method, name="my_method", params=MyParams)``. Shared bases (no name) are
    not registered; a subclass without ``params`` keeps its base's.
    """

    name: ClassVar[str] = ""
    Params: ClassVar[type] = NoParams
    requires_meta: ClassVar[bool] = False  # needs a trusted (meta) set: config meta.size > 0
    corrupt_meta_default: ClassVar[bool] = False  # RMNW-Net's setting: the meta set carries the same noise
    supports_features: ClassVar[bool] = True  # works on feature vectors (not only images)

    def __init_subclass__(cls, *, name: str = "", params: type | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if params is not None:
            cls.Params = params
        if name:
            cls.name = name
            _register(cls)

    def __init__(self, ctx: TrainingContext, params: Any) -> None:
        self.ctx = ctx
        self.params = params

    # ------------------------------------------------------------------ building and training
    def setup(self) -> None:
        self.model = self.ctx.new_model()
        self.optimizer = self.ctx.new_optimizer(self.model.parameters())

    def on_epoch_start(self, epoch: int) -> None:
        """Called before the epoch's first batch (epochs count from 0)."""

    def train_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        with self.ctx.autocast():
            logits = self.model(batch.x)
            loss = self.loss(logits, batch)
        self.ctx.step(loss, self.optimizer, clip=self.clip_norm())
        return {"loss": loss.detach(), "acc": (logits.argmax(1) == batch.y).float().mean().detach()}

    def loss(self, logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        return F.cross_entropy(logits, batch.y)

    def clip_norm(self) -> float | None:
        """The gradient-norm clip of :meth:`train_step`'s step (None: the config's ``grad_clip``)."""
        return None

    def on_epoch_end(self, epoch: int) -> dict[str, Any] | None:
        """Called after the epoch's last batch, before evaluation; may return epoch statistics.

        Returned values are logged once per epoch as ``train_<name>`` (step statistics are averaged).
        """

    # ------------------------------------------------------------------ outputs
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for prepared (normalised) inputs; called in eval mode under ``no_grad``."""
        return self.model(x)

    def eval_modules(self) -> list[nn.Module]:
        """Modules switched to eval mode during evaluation."""
        return [m for m in vars(self).values() if isinstance(m, nn.Module)]

    def cleanness(self) -> np.ndarray | None:
        """Per-training-sample score, higher = more likely correctly labelled; None if not provided."""
        return None

    def corrected_labels(self) -> np.ndarray | None:
        """Per-training-sample corrected labels, hard ``(N,)`` or soft ``(N, C)``; None if not provided."""
        return None

    # ------------------------------------------------------------------ checkpoint state
    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {}
        for key, value in vars(self).items():
            if isinstance(value, nn.Module):
                state[key] = self.ctx.unwrap(value).state_dict()
            elif isinstance(value, torch.optim.Optimizer):
                state[key] = value.state_dict()
            elif isinstance(value, torch.Tensor):
                state[key] = value
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            current = getattr(self, key, None)
            if isinstance(current, nn.Module):
                self.ctx.unwrap(current).load_state_dict(value)
            elif isinstance(current, torch.optim.Optimizer):
                current.load_state_dict(value)
            elif isinstance(current, torch.Tensor):
                current.copy_(value) if current.shape == value.shape else setattr(
                    self, key, value.to(current.device)
                )
            else:
                setattr(self, key, value)


# ---------------------------------------------------------------------------------------- registry
_REGISTRY: dict[str, type[Method]] = {}


def _register(cls: type[Method]) -> None:
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"method name {cls.name!r} is registered twice.")
    _REGISTRY[cls.name] = cls


def get_method_class(name: str) -> type[Method]:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; known: {', '.join(list_methods())}.") from None


def list_methods() -> list[str]:
    return list(_REGISTRY)
