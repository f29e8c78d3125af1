"""What a method may use while it trains: :class:`TrainingContext`, the loop's toolbox without the loop.

The loop (:class:`noisy_labels.engine.loop.Engine`: epochs, batches, the learning-rate schedule,
evaluation, checkpoints, logs) builds one context and hands it to the method; the method never sees the
loop, the run's config or its data container. Through the context a method builds networks and
optimisers (on the device, DDP-wrapped under ``torchrun``, on the schedule), takes optimisation steps
(AMP, clipping), prepares augmentation views, draws trusted batches, runs a network over a whole stored
set, and reads the training labels it should train on (:meth:`TrainingContext.with_train_labels` gives
an inner method other labels and their noise rate: DMLP-X) and the trusted samples it may use
(:meth:`TrainingContext.with_meta_holdout` keeps a share out: EMLC's selection set). Every network starts
from the weights ``model.init`` names, or those a method gives for it (EMLC sec. 4.1: student and teacher
from the same SimCLR weights).
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..config import Config, OptimConfig
from ..data.split import clean_meta_split
from ..meta.functional import unwrap
from ..models import Classifier, create_model
from ..models.init import SCRATCH, WeightsSource, init_backbone
from .augment import BatchPreparer, View
from .distributed import (
    DistInfo,
    all_sum,
    gather_slices,
    gather_slices_replicated,
    sum_grads,
    wrap_model,
)
from .experiment_data import ExperimentData
from .precision import cpu_bf16_enabled


@dataclass(frozen=True)
class NoiseAssumption:
    """The label noise a method may take as known (its kind and rate), when the run injects none: the
    scikit-learn estimator's ``noise_rate``."""

    protocol: str
    rate: float


@dataclass
class Clock:
    """Where training is: set by the loop, read by the method (shared by a context and its views)."""

    steps_per_epoch: int
    epoch: int = 0
    step_in_epoch: int = 0
    batch_share: float = 1.0  # this rank's share of the global batch (1 in one process)
    batch_len: int = 0  # the global batch's length (all ranks' slices together)


class TrainingContext:
    """One run's device, data and training clock, as the method sees them."""

    def __init__(
        self,
        cfg: Config,
        data: ExperimentData,
        device: torch.device,
        dist: DistInfo | None = None,
        *,
        method_params: Callable[[str], Any] | None = None,
        assumed_noise: NoiseAssumption | None = None,
    ) -> None:
        self._cfg = cfg
        self._assumed_noise = assumed_noise
        self._data = data
        self._train_labels = data.train_y
        self._meta: tuple[Any, torch.Tensor] | None = None  # a view's part of the trusted set
        self._model_init: WeightsSource | None = cfg.model.init
        self._method_params = method_params
        self.device = device
        self.dist = dist or DistInfo()
        self.epochs, self.seed = cfg.epochs, cfg.seed
        self.use_amp = cfg.amp if cfg.amp is not None else device.type == "cuda"
        self.cpu_bf16 = cpu_bf16_enabled(cfg.bf16_cpu)  # resolved once: "auto" asks the processor
        # channels_last by default: convolutions run 1.3-1.7x faster with it on the CPU as well as on CUDA
        # (benchmarks/results/meta_step_cost.md); the preparer ignores it for feature vectors.
        channels_last = cfg.channels_last if cfg.channels_last is not None else True
        self.preparer = _make_preparer(cfg, data, channels_last)
        self.generator = torch.Generator().manual_seed(cfg.seed)  # batches, augmentation, method draws
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp and device.type == "cuda")
        self.scheduled: list[torch.optim.Optimizer] = []  # put on the learning-rate schedule by the loop
        self.clock = Clock(
            cfg.batches_per_epoch if cfg.batches_per_epoch else math.ceil(self.num_train / cfg.batch_size)
        )

    # ------------------------------------------------------------------------------ the run
    @property
    def quiet(self) -> bool:
        """No progress output: ``quiet`` is set, or this is not the main rank."""
        return self._cfg.quiet or not self.dist.is_main

    @property
    def optim(self) -> OptimConfig:
        """The classifier's optimiser settings (read them; :meth:`new_optimizer` builds from them)."""
        return self._cfg.optim

    @property
    def out_dir(self) -> Path | None:
        """Where a method may write extra files: the run directory, on the main rank only."""
        return Path(self._cfg.out) if self._cfg.out and self.dist.is_main else None

    def method_params(self, name: str) -> Any:
        """The checked ``Params`` of method ``name`` from the run's config (an inner method's: DMLP-X)."""
        if self._method_params is None:
            raise RuntimeError("this context was built without the run's method sections.")
        return self._method_params(name)

    def assumed_noise_rate(self) -> float:
        """The noise rate a method may assume known (Co-teaching's forget rate, CDR's mask rate).

        The builder's explicit assumption if it has one; else the realised rate recorded when the noise was
        drawn, or the configured ``noise.rate`` when none was recorded; 0 for clean data. Methods that
        take it expose a parameter to set it instead.
        """
        if self._assumed_noise is not None:
            return self._assumed_noise.rate
        noise = self._cfg.noise
        if noise.protocol == "none":
            return 0.0
        realised = (self._data.noise_record or {}).get("realised_rate")
        return float(realised) if realised is not None else float(noise.rate)

    def assumed_noise(self) -> tuple[str, float]:
        """The noise ``(protocol, rate)``: the builder's assumption, else the configured noise (DivideMix's
        lambda_u follows its paper's table by both)."""
        if self._assumed_noise is not None:
            return self._assumed_noise.protocol, self._assumed_noise.rate
        return self._cfg.noise.protocol, self._cfg.noise.rate

    # ------------------------------------------------------------------------------ the data
    @property
    def num_classes(self) -> int:
        return self._data.num_classes

    @property
    def num_train(self) -> int:
        return len(self._data.train_y)

    @property
    def is_image(self) -> bool:
        return self._data.is_image

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self._data.input_shape

    @property
    def train_x(self) -> torch.Tensor:
        """The stored training samples (uint8 NHWC images or features); :meth:`prepare` makes inputs."""
        return self._data.train_x

    @property
    def train_labels(self) -> torch.Tensor:
        """The ``(N,)`` labels the method trains on: the given ones, or those of :meth:`with_train_labels`."""
        return self._train_labels

    def meta_set(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The trusted (meta) set: stored samples and labels (see :meth:`meta_batch` for a batch); a view
        of :meth:`with_meta_holdout` has the part left after the holdout."""
        if self._meta is not None:
            return self._meta
        x, y = self._data.meta_x, self._data.meta_y
        if x is None or y is None:
            raise RuntimeError(f"method {self._cfg.method!r} needs a meta set: set meta.size > 0.")
        return x, y

    @property
    def meta_trusted(self) -> bool:
        """Whether the meta set's labels are the clean ones (False where it carries the training noise)."""
        return not (self._data.noise_record or {}).get("meta_corrupted", False)

    @property
    def true_labels(self) -> torch.Tensor | None:
        """The true training labels where known (synthetic noise, CIFAR-N): for reports only."""
        return self._data.train_clean_y

    @property
    def sample_positions(self) -> tuple[Any, Any]:
        """Positions of the training and meta samples in the data set's whole training set (before
        ``train_subset`` and the meta split): the rows of per-sample files such as DMLP's features."""
        return self._data.train_index, self._data.meta_index

    @property
    def source_size(self) -> int:
        """Rows of the data set's whole training set, which :attr:`sample_positions` index."""
        size = self._data.source_size
        return size if size is not None else len(self._data.train_index) + len(self._data.meta_index)

    def with_train_labels(self, labels: torch.Tensor, *, noise_rate: float | None = None) -> TrainingContext:
        """The same context (clock, generator, schedule) whose :attr:`train_labels` are ``labels``.

        ``noise_rate``: the share of wrong labels among ``labels``, which :meth:`assumed_noise_rate` and
        :meth:`assumed_noise` then give (with the run's protocol) in place of the given labels' rate, so
        an inner method keys its settings to the labels it trains on (DMLP-X: the purified labels).
        """
        view = copy.copy(self)  # shares the clock, generator, scaler and scheduled optimisers
        view._train_labels = labels
        if noise_rate is not None:
            view._assumed_noise = NoiseAssumption(self.assumed_noise()[0], noise_rate)
        return view

    def with_meta_holdout(self, share: float) -> tuple[TrainingContext, tuple[torch.Tensor, torch.Tensor]]:
        """Split the trusted set in two: a view whose :meth:`meta_set` and :meth:`meta_batch` keep the rest,
        and the held-out ``share`` (samples, labels), class-balanced as the meta split, for a use the view's
        training never sees (EMLC / MLC: selecting the student when it also trains on the trusted set).

        The split depends on the seed alone, so a resumed run holds out the same samples.
        """
        x, y = self.meta_set()
        labels = y.cpu().numpy()
        size = max(self.num_classes, round(share * len(labels)))
        if len(labels) - size < self.num_classes:
            raise ValueError(
                f"holding out {size} of the {len(labels)} trusted samples leaves fewer than one per class; "
                "lower the share or enlarge meta.size."
            )
        held, kept = clean_meta_split(labels, size=size, num_classes=self.num_classes, seed=self.seed)
        view = copy.copy(self)
        view._meta = (_rows(x, kept), y[torch.as_tensor(kept, device=y.device)])
        return view, (_rows(x, held), y[torch.as_tensor(held, device=y.device)])

    def with_model_init(self, source: WeightsSource | None) -> TrainingContext:
        """The same context whose networks start from ``source`` instead of ``model.init`` (DMLP-X*: the
        first stage's SimCLR encoder)."""
        view = copy.copy(self)
        view._model_init = source
        return view

    # ------------------------------------------------------------------------------ per-sample state
    def sample_state(
        self,
        fill: float = 0.0,
        *,
        dtype: torch.dtype = torch.float32,
        copies: int | None = None,
        columns: int | None = None,
    ) -> torch.Tensor:
        """What a method keeps about every training sample (weights, corrected labels, loss statistics):
        a ``([copies,] num_train[, columns])`` tensor filled with ``fill`` on the device. Keep it as an
        attribute of the method (so checkpoints hold it) and change it through :meth:`write_samples`."""
        shape = (
            *(() if copies is None else (copies,)),
            self.num_train,
            *(() if columns is None else (columns,)),
        )
        return torch.full(shape, fill, dtype=dtype, device=self.device)

    def write_samples(self, state: torch.Tensor, index: torch.Tensor, values: torch.Tensor | float) -> None:
        """``state[index] = values``: the one place a batch changes per-sample state (``state`` is a
        :meth:`sample_state` tensor or one copy of it, ``index`` the batch's training-set positions).

        Under ``torchrun`` every rank's slice is gathered and written on every rank, in the global batch's
        order (:func:`~noisy_labels.engine.distributed.gather_slices`): the state stays one global copy.
        """
        if self.dist.enabled:
            if isinstance(values, torch.Tensor) and values.dim() > 0:
                index, values = gather_slices(self.dist, index, values.to(state.dtype))
            else:
                (index,) = gather_slices(self.dist, index)
        state[index] = values

    # ------------------------------------------------------------------------------ the global batch
    def gather_batch(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Per-sample tensors of this rank's slice as the whole global batch's, in its order (the
        tensors themselves in one process). Not differentiable: for batch-wise rules on values."""
        return gather_slices(self.dist, *tensors)

    def global_batch_len(self, local_len: int) -> int:
        """The current global batch's length (all ranks' slices together); ``local_len`` in one process."""
        return self.clock.batch_len if self.dist.enabled else local_len

    def gather_batch_replicated(self, value: torch.Tensor) -> torch.Tensor:
        """:meth:`gather_batch` of one tensor with gradients, for an objective every rank computes alike
        over the whole global batch (each rank's rows get their gradient; pass the loss to
        :meth:`step` as ``reduction="sum"``). The tensor itself in one process."""
        return gather_slices_replicated(self.dist, value)

    def local_rows(self, batch_tensor: torch.Tensor) -> torch.Tensor:
        """This rank's rows of a global-batch tensor (from :meth:`gather_batch`)."""
        if not self.dist.enabled:
            return batch_tensor
        return batch_tensor[self.dist.rank :: self.dist.world_size]

    def mean_of_rows(self, values: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """The mean of ``values`` (this rank's slice) over ``rows``, positions in the global batch: in one
        process ``values[rows].mean()``; under ``torchrun`` this rank's part of that mean (the rows it
        holds, over the count of all), a loss for ``step(..., reduction="sum")``."""
        if not self.dist.enabled:
            return values[rows].mean()
        mine = rows[rows % self.dist.world_size == self.dist.rank] // self.dist.world_size
        return values[mine].sum() / len(rows)

    def part_of_batch_objective(
        self, slice_mean: torch.Tensor, shared: torch.Tensor | float = 0.0
    ) -> torch.Tensor:
        """This rank's part of ``mean over the global batch + shared`` (``shared``: a term every rank
        computes alike, e.g. on the trusted batch); the ranks' parts sum to the objective. One process:
        ``slice_mean + shared``."""
        if not self.dist.enabled:
            return slice_mean + shared
        return slice_mean * self.clock.batch_share + shared / self.dist.world_size

    def global_sum(self, value: torch.Tensor, *, grad: str = "none") -> torch.Tensor:
        """``value`` summed over the ranks (itself in one process); ``grad`` (``"none"``, ``"parts"``,
        ``"replicated"``): how gradients pass back, :func:`~noisy_labels.engine.distributed.all_sum`."""
        return all_sum(self.dist, value, grad=grad)

    def sum_gradients(self, params: Iterable[torch.Tensor]) -> None:
        """Sum the ``.grad`` of parameters outside DDP over the ranks (a network trained from a
        meta-gradient of the global batch, each rank holding its slice's part)."""
        sum_grads(self.dist, params)

    # ------------------------------------------------------------------------------ the clock
    @property
    def epoch(self) -> int:
        """The current epoch, counted from 0."""
        return self.clock.epoch

    def progress(self) -> float:
        """Training progress in epochs, e.g. 2.5 halfway through the third epoch."""
        clock = self.clock
        return clock.epoch + clock.step_in_epoch / clock.steps_per_epoch

    @property
    def is_last_step(self) -> bool:
        """The current batch is the epoch's last."""
        return self.clock.step_in_epoch == self.clock.steps_per_epoch - 1

    # ------------------------------------------------------------------------------ building blocks
    def model_name(self, name: str | None = None) -> str:
        """The registered model name the config resolves to (``auto`` picks by input)."""
        name = name or self._cfg.model.name
        if name != "auto":
            return name
        if not self.is_image:
            return "linear"
        return "small_cnn" if self.input_shape[-1] <= 32 and self.device.type == "cpu" else "preact_resnet18"

    def new_model(
        self, name: str | None = None, *, init: WeightsSource | None = None, **params: Any
    ) -> nn.Module:
        """A new model from the config (or ``name``/``params``) on the device; DDP-wrapped if distributed.

        Its backbone starts from ``init`` (:mod:`noisy_labels.models.init`: an encoder file, a run
        directory, a state dict) or, when None, from the run's ``model.init``; ``"scratch"`` leaves it
        freshly initialised. The head is always new. A method gives its extra networks their own init
        parameter (``emlc.teacher_init``, ``coteaching.peer_init``, ``flywheel.auxiliary_init``).
        """
        cfg_params = dict(self._cfg.model.params) if name is None else {}
        model = create_model(
            self.model_name(name),
            num_classes=self.num_classes,
            input_shape=self.input_shape,
            **{**cfg_params, **params},
        )
        if isinstance(model, Classifier) and type(model).data_init is not Classifier.data_init:
            model.data_init(self._data_init_sample())
        source = self._model_init if init is None else init
        if source is not None and source != SCRATCH:
            init_backbone(model, source)
        return self.place(model)

    def _data_init_sample(self, size: int = 5000) -> torch.Tensor:
        """The first ``size`` training inputs as a network sees them at test time (no augmentation)."""
        raw = _rows(self.train_x, np.arange(min(size, self.num_train)))
        return self.prepare(raw, "test").float()

    def place(self, model: nn.Module) -> nn.Module:
        """``model`` on the device (channels_last for images), DDP-wrapped if distributed."""
        model = model.to(self.device)
        if self.preparer.channels_last and self.is_image:
            model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # stub lacks it
        return wrap_model(model, self.dist, self.device)

    @staticmethod
    def unwrap(model: nn.Module) -> nn.Module:
        """The module inside a DDP wrapper (the module itself when not distributed)."""
        return unwrap(model)

    @staticmethod
    def classifier(model: nn.Module) -> Classifier:
        """The registered network (backbone + head) inside ``model``: its ``feature_dim``, its parts."""
        inner = unwrap(model)
        assert isinstance(inner, Classifier), f"{type(inner).__name__} is not a registered model"
        return inner

    def new_optimizer(
        self, params: Iterable[Any], *, scheduled: bool = True, **overrides: Any
    ) -> torch.optim.Optimizer:
        """An optimiser from ``cfg.optim`` (keys overridable); ``scheduled`` puts it on the LR schedule."""
        o = {**vars(self._cfg.optim), **overrides}
        name = o.pop("name")
        opt: torch.optim.Optimizer
        if name == "sgd":
            opt = torch.optim.SGD(
                params,
                lr=o["lr"],
                momentum=o["momentum"],
                nesterov=o["nesterov"],
                weight_decay=o["weight_decay"],
            )
        else:
            cls = torch.optim.Adam if name == "adam" else torch.optim.AdamW
            opt = cls(params, lr=o["lr"], betas=tuple(o["betas"]), weight_decay=o["weight_decay"])
        for group in opt.param_groups:
            group["base_lr"] = group["lr"]
        if scheduled:
            self.scheduled.append(opt)
        return opt

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """Mixed precision: fp16 on CUDA when AMP is on, bf16 on the CPU when ``bf16_cpu`` resolves on
        (:func:`~noisy_labels.engine.precision.cpu_bf16_enabled`)."""
        if self.use_amp and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.float16)
        if self.device.type == "cpu" and self.cpu_bf16:
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def meta_autocast(self) -> contextlib.AbstractContextManager[Any]:
        """Mixed precision for meta-gradients, which no loss scaler guards: bf16 only (float32's exponent
        range, so no gradient underflows), where :meth:`autocast` is on and the device has bf16 (a CUDA
        GPU without it: full precision)."""
        if self.use_amp and self.device.type == "cuda":
            if torch.cuda.is_bf16_supported():
                return torch.autocast("cuda", dtype=torch.bfloat16)
            return contextlib.nullcontext()
        return self.autocast()

    def step(
        self,
        loss: torch.Tensor,
        optimizer: torch.optim.Optimizer,
        *,
        clip: float | None = None,
        reduction: str = "mean",
    ) -> None:
        """zero_grad, backward (scaled under AMP), optional gradient-norm clipping, optimiser step.

        Under ``torchrun`` DDP averages the ranks' gradients; ``reduction`` says what ``loss`` is, so that
        the average is the single-process gradient of the global batch: ``"mean"``, a mean over this rank's
        slice (weighted by the slice's share, exact for slices of unequal length too); ``"sum"``, this
        rank's part of a sum over the global batch (terms normalised over the global batch, e.g. weights
        divided by :meth:`global_sum`). One process: ``loss`` as it is.
        """
        if reduction not in ("mean", "sum"):
            raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}.")
        optimizer.zero_grad(set_to_none=True)
        if self.dist.enabled:
            share = self.clock.batch_share if reduction == "mean" else 1.0
            loss = loss * (self.dist.world_size * share)
        self.scaler.scale(loss).backward()
        clip = clip if clip is not None else self._cfg.grad_clip
        if clip:
            self.scaler.unscale_(optimizer)
            params = [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
            torch.nn.utils.clip_grad_norm_(params, clip)
        self.scaler.step(optimizer)
        self.scaler.update()

    def prepare(self, raw: torch.Tensor, view: View = "weak") -> torch.Tensor:
        """Model inputs from stored samples in a view of :mod:`noisy_labels.engine.augment`."""
        return self.preparer(raw, view, self.generator)

    def check_view(self, view: str) -> None:
        """``ValueError`` at set-up, not after the warm-up, for a view this run cannot prepare."""
        self.preparer.check_view(view)

    def meta_batch(
        self, batch_size: int | None = None, view: View = "weak"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A random batch of the trusted set (without replacement within the batch)."""
        meta_x, meta_y = self.meta_set()
        n = len(meta_y)
        idx = torch.randperm(n, generator=self.generator)[: min(batch_size or self._cfg.batch_size, n)]
        idx = idx.to(self.device)
        return self.prepare(meta_x[idx], view), meta_y[idx]

    @torch.no_grad()
    def predict(
        self, fn: Callable[[torch.Tensor], torch.Tensor], raw: torch.Tensor, view: View = "test"
    ) -> torch.Tensor:
        """``fn(prepared batch)`` over a whole stored set in evaluation-size chunks, concatenated."""
        outs = []
        size = self._cfg.eval_batch_size
        for start in range(0, len(raw), size):
            with self.autocast():
                outs.append(fn(self.prepare(raw[start : start + size], view)).float())
        return torch.cat(outs)


def _rows(x: Any, index: np.ndarray) -> Any:
    """``x[index]`` of a stored set: a tensor, or lazily decoded images (whose ``subset`` stays lazy)."""
    subset = getattr(x, "subset", None)
    return subset(index) if subset is not None else x[torch.as_tensor(index, device=x.device)]


def _make_preparer(cfg: Config, data: ExperimentData, channels_last: bool) -> BatchPreparer:
    if not data.is_image:
        return BatchPreparer(is_image=False)
    aug = cfg.augment
    side = data.input_shape[-1]
    pad = aug.crop_padding if aug.crop_padding is not None else (4 if side >= 32 else 2)
    flip = aug.flip if aug.flip is not None else data.input_shape[0] == 3
    return BatchPreparer(
        is_image=True,
        mean=data.mean,
        std=data.std,
        crop_padding=pad,
        flip=flip,
        channels_last=channels_last,
    )
