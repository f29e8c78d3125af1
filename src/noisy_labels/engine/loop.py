"""The training loop every method runs in.

:class:`Engine` is both the loop (:meth:`Engine.fit`) and the toolbox a method builds with: models,
optimisers on the learning-rate schedule, one optimisation step with AMP/clipping, batch preparation
for any augmentation view, meta (trusted) batches, and batched prediction over a whole set.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import metrics
from ..config import Config
from .augment import BatchPreparer, View
from .checkpoint import save_checkpoint, write_json
from .data import ExperimentData
from .distributed import DistInfo, wrap_model


@dataclass
class Batch:
    """One training mini-batch (this rank's slice when distributed)."""

    index: torch.Tensor  # positions in the training set, on the device
    raw: torch.Tensor  # stored samples (uint8 NHWC images or features), for extra views
    x: torch.Tensor  # the prepared weak view
    y: torch.Tensor  # given (noisy) labels


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device=cuda was requested but no CUDA device is available; use device=cpu.")
    return device


class Engine:
    def __init__(self, cfg: Config, data: ExperimentData, device: torch.device, dist: DistInfo | None = None):
        self.cfg = cfg
        self.data = data
        self.device = device
        self.dist = dist or DistInfo()
        self.use_amp = cfg.amp if cfg.amp is not None else device.type == "cuda"
        # channels_last by default: convolutions run 1.3-1.7x faster with it on the CPU as well as on CUDA
        # (benchmarks/results/meta_step_cost.md); the preparer ignores it for feature vectors.
        channels_last = cfg.channels_last if cfg.channels_last is not None else True
        self.preparer = self._make_preparer(channels_last)
        self.generator = torch.Generator().manual_seed(cfg.seed)  # batches and augmentation
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp and device.type == "cuda")
        self._scheduled: list[torch.optim.Optimizer] = []
        self.epoch = 0
        self.step_in_epoch = 0
        self.steps_per_epoch = self._count_steps()

    # ------------------------------------------------------------------------------ building blocks
    @property
    def num_classes(self) -> int:
        return self.data.num_classes

    @property
    def num_train(self) -> int:
        return len(self.data.train_y)

    def new_model(self, name: str | None = None, **params: Any) -> nn.Module:
        """A new model from the config (or ``name``/``params``) on the device; DDP-wrapped if distributed."""
        from ..models import create_model

        cfg_params = dict(self.cfg.model.params) if name is None else {}
        model = create_model(
            self.model_name(name),
            num_classes=self.num_classes,
            input_shape=self.data.input_shape,
            **{**cfg_params, **params},
        )
        model = model.to(self.device)
        if self.preparer.channels_last and self.data.is_image:
            model = model.to(memory_format=torch.channels_last)
        return wrap_model(model, self.dist, self.device)

    def model_name(self, name: str | None = None) -> str:
        """The registered model name the config resolves to (``auto`` picks by input)."""
        name = name or self.cfg.model.name
        if name != "auto":
            return name
        if not self.data.is_image:
            return "linear"
        return (
            "small_cnn"
            if self.data.input_shape[-1] <= 32 and self.device.type == "cpu"
            else "preact_resnet18"
        )

    def new_optimizer(self, params, *, scheduled: bool = True, **overrides: Any) -> torch.optim.Optimizer:
        """An optimiser from ``cfg.optim`` (keys overridable); ``scheduled`` puts it on the LR schedule."""
        o = {**vars(self.cfg.optim), **overrides}
        name = o.pop("name")
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
            self._scheduled.append(opt)
        return opt

    def autocast(self):
        """Mixed precision: fp16 on CUDA when AMP is on, bf16 on the CPU when ``bf16_cpu`` is set."""
        if self.use_amp and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.float16)
        if self.cfg.bf16_cpu and self.device.type == "cpu":
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def step(
        self, loss: torch.Tensor, optimizer: torch.optim.Optimizer, *, clip: float | None = None
    ) -> None:
        """zero_grad, backward (scaled under AMP), optional gradient-norm clipping, optimiser step."""
        optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        clip = clip if clip is not None else self.cfg.grad_clip
        if clip:
            self.scaler.unscale_(optimizer)
            params = [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
            torch.nn.utils.clip_grad_norm_(params, clip)
        self.scaler.step(optimizer)
        self.scaler.update()

    def prepare(self, raw: torch.Tensor, view: View = "weak") -> torch.Tensor:
        """Model inputs from stored samples: ``test`` (no augmentation), ``weak`` or ``strong``."""
        return self.preparer(raw, view, self.generator)

    def meta_batch(
        self, batch_size: int | None = None, view: View = "weak"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A random batch of the trusted set (without replacement within the batch)."""
        if self.data.meta_x is None:
            raise RuntimeError(f"method {self.cfg.method!r} needs a meta set: set meta.size > 0.")
        n = len(self.data.meta_y)
        idx = torch.randperm(n, generator=self.generator)[: min(batch_size or self.cfg.batch_size, n)]
        idx = idx.to(self.device)
        return self.prepare(self.data.meta_x[idx], view), self.data.meta_y[idx]

    @torch.no_grad()
    def predict(self, fn, raw: torch.Tensor, view: View = "test") -> torch.Tensor:
        """``fn(prepared batch)`` over a whole stored set in evaluation-size chunks, concatenated."""
        outs = []
        for start in range(0, len(raw), self.cfg.eval_batch_size):
            with self.autocast():
                outs.append(fn(self.prepare(raw[start : start + self.cfg.eval_batch_size], view)).float())
        return torch.cat(outs)

    def progress(self) -> float:
        """Training progress in epochs, e.g. 2.5 halfway through the third epoch."""
        return self.epoch + self.step_in_epoch / self.steps_per_epoch

    # ------------------------------------------------------------------------------ batches
    def _count_steps(self) -> int:
        if self.cfg.batches_per_epoch:
            return self.cfg.batches_per_epoch
        return math.ceil(self.num_train / self.cfg.batch_size)

    def _epoch_order(self) -> torch.Tensor:
        """This epoch's sample order for all ranks: a permutation, or class-balanced draws by noisy label."""
        if not self.cfg.batches_per_epoch:
            return torch.randperm(self.num_train, generator=self.generator)
        total = self.cfg.batches_per_epoch * self.cfg.batch_size
        per_class = math.ceil(total / self.num_classes)
        labels = self.data.train_y.cpu()
        picks = []
        for c in range(self.num_classes):
            members = torch.nonzero(labels == c).flatten()
            if len(members) == 0:
                continue
            reps = math.ceil(per_class / len(members))
            pool = torch.cat(
                [members[torch.randperm(len(members), generator=self.generator)] for _ in range(reps)]
            )
            picks.append(pool[:per_class])
        order = torch.cat(picks)
        return order[torch.randperm(len(order), generator=self.generator)][:total]

    def batches(self) -> Iterator[Batch]:
        order = self._epoch_order().to(self.device)
        bs = self.cfg.batch_size
        for step in range(self.steps_per_epoch):
            idx = order[step * bs : (step + 1) * bs]
            if self.dist.enabled:
                idx = idx[self.dist.rank :: self.dist.world_size]
            self.step_in_epoch = step
            self._apply_schedule()
            raw = self.data.train_x[idx]
            yield Batch(index=idx, raw=raw, x=self.prepare(raw, "weak"), y=self.data.train_y[idx])

    # ------------------------------------------------------------------------------ LR schedule
    def lr_factor(self, t: float) -> float:
        """Multiplier of the base learning rate at progress ``t`` (epochs)."""
        s = self.cfg.schedule
        warm = s.lr_warmup_epochs
        if warm > 0 and t < warm:
            return (t + 1.0 / self.steps_per_epoch) / warm
        if s.name == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * min(t, self.cfg.epochs) / self.cfg.epochs))
        if s.name == "multistep":
            return s.gamma ** sum(t >= m for m in s.milestones)
        return 1.0

    def _apply_schedule(self) -> None:
        factor = self.lr_factor(self.progress())
        for opt in self._scheduled:
            for group in opt.param_groups:
                group["lr"] = group["base_lr"] * factor

    def _make_preparer(self, channels_last: bool) -> BatchPreparer:
        d = self.data
        if not d.is_image:
            return BatchPreparer(is_image=False)
        aug = self.cfg.augment
        side = d.input_shape[-1]
        pad = aug.crop_padding if aug.crop_padding is not None else (4 if side >= 32 else 2)
        flip = aug.flip if aug.flip is not None else d.input_shape[0] == 3
        return BatchPreparer(
            is_image=True,
            mean=d.mean,
            std=d.std,
            crop_padding=pad,
            flip=flip,
            channels_last=channels_last,
        )

    # ------------------------------------------------------------------------------ the loop
    def fit(self, method, run_dir: Path | None, resume_state: dict[str, Any] | None = None) -> dict[str, Any]:
        """Train ``method`` for ``cfg.epochs`` epochs, evaluating, logging and checkpointing each epoch."""
        history: list[dict[str, Any]] = []
        elapsed = 0.0
        if resume_state is not None:
            method.load_state_dict(resume_state["method"])
            self._load_rng(resume_state["rng"])
            history, elapsed = resume_state["history"], resume_state["elapsed"]
            self.epoch = resume_state["epoch"]
        if run_dir is not None and self.dist.is_main:
            # One line per epoch: the log restarts from the checkpoint's history (empty for a fresh
            # start), dropping epochs logged after the last checkpoint by a run that was killed.
            (run_dir / "metrics.jsonl").write_text("".join(_json_line(r) for r in history))
        writer = self._tensorboard(run_dir)
        for epoch in range(self.epoch, self.cfg.epochs):
            self.epoch = epoch
            start = time.perf_counter()
            train_stats = self.train_epoch(method, epoch)
            epoch_seconds = time.perf_counter() - start
            elapsed += epoch_seconds
            record = {"epoch": epoch + 1, **train_stats, **self.evaluate(method), "seconds": epoch_seconds}
            history.append(record)
            self._warn_if_unstable(record)
            self.epoch = epoch + 1
            self.step_in_epoch = 0
            if run_dir is not None and self.dist.is_main:
                self._log(run_dir, record, writer)
                if self.epoch % self.cfg.checkpoint_every == 0 or self.epoch == self.cfg.epochs:
                    save_checkpoint(run_dir, self._checkpoint(method, history, elapsed))
        if writer is not None:
            writer.close()
        return summarize(history, elapsed)

    def _warn_if_unstable(self, record: dict[str, Any]) -> None:
        """A first-epoch training loss far above a uniform guess's ``ln C`` means the step is too large."""
        loss, uniform = record.get("train_loss"), math.log(self.num_classes)
        if record["epoch"] == 1 and loss is not None and loss > 2 * uniform and self.dist.is_main:
            warnings.warn(
                f"the first epoch's training loss {loss:.2f} is above twice a uniform guess's {uniform:.2f}:"
                f" the step size (optim.lr = {self.cfg.optim.lr:g}) is likely too large for this model"
                " (see noisy_labels.defaults).",
                stacklevel=2,
            )

    def train_epoch(self, method, epoch: int) -> dict[str, float]:
        from tqdm.auto import tqdm

        for module in method.eval_modules():
            module.train()
        method.on_epoch_start(epoch)
        totals: dict[str, torch.Tensor] = {}
        bar = tqdm(
            self.batches(),
            total=self.steps_per_epoch,
            desc=f"epoch {epoch + 1}/{self.cfg.epochs}",
            disable=self.cfg.quiet or not self.dist.is_main,
            leave=False,
            mininterval=0.5,
        )
        for i, batch in enumerate(bar):
            stats = method.train_step(batch)
            for key, value in stats.items():
                totals[key] = totals.get(key, 0.0) + value.detach().float()
            if i % 20 == 0 and not bar.disable:
                bar.set_postfix({k: f"{float(v) / (i + 1):.3f}" for k, v in totals.items()}, refresh=False)
        epoch_stats = method.on_epoch_end(epoch) or {}
        lr = self._scheduled[0].param_groups[0]["lr"] if self._scheduled else float("nan")
        record = {f"train_{k}": float(v) / self.steps_per_epoch for k, v in totals.items()}
        return record | {f"train_{k}": float(v) for k, v in epoch_stats.items()} | {"lr": lr}

    @torch.no_grad()
    def evaluate(self, method) -> dict[str, float]:
        """Test accuracy; label accuracy and cleanness AUC where the method and clean labels allow."""
        modules = method.eval_modules()
        modes = [m.training for m in modules]
        for m in modules:
            m.eval()
        out: dict[str, float] = {}
        try:
            if self.data.test_x is not None:
                logits = self.predict(method.predict, self.data.test_x)
                ks = (1, 5) if self.num_classes > 5 else (1,)
                accs = metrics.topk_accuracy(logits.cpu(), self.data.test_y.cpu(), k=ks)
                out["test_acc"] = accs[0]
                if len(ks) > 1:
                    out["test_top5"] = accs[1]
            out.update(self._label_metrics(method))
        finally:
            for m, mode in zip(modules, modes, strict=True):
                m.train(mode)
        return out

    def _label_metrics(self, method) -> dict[str, float]:
        clean = self.data.train_clean_y
        if clean is None:
            return {}
        out = {}
        corrected = method.corrected_labels()
        if corrected is not None:
            out["label_acc"] = metrics.label_accuracy(corrected, clean.cpu())
        scores = method.cleanness()
        if scores is not None:
            auc = metrics.cleanness_auc(scores, self.data.train_y.cpu(), clean.cpu())
            if not math.isnan(auc):
                out["cleanness_auc"] = auc
        return out

    # ------------------------------------------------------------------------------ state and logs
    def _checkpoint(self, method, history, elapsed) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "method": method.state_dict(),
            "history": history,
            "elapsed": elapsed,
            "rng": {
                "generator": self.generator.get_state(),
                "torch": torch.get_rng_state(),
                "scaler": self.scaler.state_dict(),
            },
        }

    def _load_rng(self, rng: dict[str, Any]) -> None:
        self.generator.set_state(rng["generator"])
        torch.set_rng_state(rng["torch"])
        self.scaler.load_state_dict(rng["scaler"])

    def _log(self, run_dir: Path, record: dict[str, Any], writer) -> None:
        with open(run_dir / "metrics.jsonl", "a") as f:
            f.write(_json_line(record))
        if writer is not None:
            for key, value in record.items():
                if key != "epoch" and isinstance(value, float):
                    writer.add_scalar(key, value, record["epoch"])
        if not self.cfg.quiet:
            shown = [
                f"{k}={v:.4f}"
                for k, v in record.items()
                if k in ("train_loss", "test_acc", "label_acc", "cleanness_auc")
            ]
            print(f"epoch {record['epoch']:3d}/{self.cfg.epochs}  " + "  ".join(shown), flush=True)

    def _tensorboard(self, run_dir: Path | None):
        if not self.cfg.tensorboard or run_dir is None or not self.dist.is_main:
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:
            raise ImportError(
                "tensorboard=true needs the optional extra: pip install noisy-labels[tensorboard]"
            ) from exc
        return SummaryWriter(log_dir=str(run_dir / "tensorboard"))


def _json_line(record: dict[str, Any]) -> str:
    import json

    return (
        json.dumps({k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in record.items()})
        + "\n"
    )


def summarize(history: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    """Best/last test accuracy and the last label metrics from a per-epoch history."""
    summary: dict[str, Any] = {"epochs": len(history), "seconds": seconds}
    tests = [r["test_acc"] for r in history if "test_acc" in r]
    if tests:
        summary["best_test_acc"], summary["last_test_acc"] = metrics.best_and_last(tests)
        summary["best_epoch"] = int(np.argmax(tests)) + 1
    for key in ("label_acc", "cleanness_auc"):
        values = [r[key] for r in history if key in r]
        if values:
            summary[key] = values[-1]
            summary[f"best_{key}"] = max(values)
    return summary


__all__ = ["Batch", "Engine", "resolve_device", "summarize", "write_json"]
