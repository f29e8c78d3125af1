"""The training loop every method runs in: :class:`Engine`.

The loop owns the epochs, the batch order, the learning-rate schedule, evaluation, checkpoints and logs.
What a method may use while it trains is the loop's :class:`~noisy_labels.engine.context.TrainingContext`
(``engine.ctx``), which the method receives instead of the loop.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import metrics
from ..config import Config
from ..methods.base import Batch, Method
from ..models import eval_mode
from .checkpoint import save_checkpoint, write_json
from .context import TrainingContext
from .experiment_data import ExperimentData


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device=cuda was requested but no CUDA device is available; use device=cpu.")
    return device


def flip_averaged(predict: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
    """``predict`` averaged over each image and its mirror image (``eval_flip``, airbench's test view)."""

    def averaged(x: torch.Tensor) -> torch.Tensor:
        return (predict(x) + predict(x.flip(-1))) / 2

    return averaged


class Engine:
    """The loop around one method; :attr:`ctx` is what the method sees."""

    def __init__(self, cfg: Config, data: ExperimentData, ctx: TrainingContext) -> None:
        """``ctx``: the run's :class:`TrainingContext`, built from the same ``cfg`` and ``data``."""
        self.cfg = cfg
        self.data = data
        self.ctx = ctx
        self.dist = ctx.dist

    # ------------------------------------------------------------------------------ batches
    def _epoch_order(self) -> torch.Tensor:
        """This epoch's sample order for all ranks: a permutation, or class-balanced draws by noisy label."""
        if not self.cfg.batches_per_epoch:
            return torch.randperm(self.ctx.num_train, generator=self.ctx.generator)
        total = self.cfg.batches_per_epoch * self.cfg.batch_size
        per_class = math.ceil(total / self.ctx.num_classes)
        labels = self.data.train_y.cpu()
        picks = []
        for c in range(self.ctx.num_classes):
            members = torch.nonzero(labels == c).flatten()
            if len(members) == 0:
                continue
            reps = math.ceil(per_class / len(members))
            pool = torch.cat(
                [members[torch.randperm(len(members), generator=self.ctx.generator)] for _ in range(reps)]
            )
            picks.append(pool[:per_class])
        order = torch.cat(picks)
        return order[torch.randperm(len(order), generator=self.ctx.generator)][:total]

    def batches(self) -> Iterator[Batch]:
        ctx = self.ctx
        order = self._epoch_order().to(ctx.device)
        bs = self.cfg.batch_size
        for step in range(self.ctx.clock.steps_per_epoch):
            idx = order[step * bs : (step + 1) * bs]
            ctx.clock.step_in_epoch = step
            self._apply_schedule()
            raw = self.data.train_x[idx]
            # the whole global batch is prepared on every rank (the same augmentation draws as one process,
            # the generators stay in step), then each rank keeps its slice
            batch = Batch(index=idx, raw=raw, x=ctx.prepare(raw, "weak"), y=self.data.train_y[idx])
            ctx.clock.batch_share, ctx.clock.batch_len = 1.0, len(idx)
            if self.dist.enabled:
                mine = slice(self.dist.rank, None, self.dist.world_size)
                ctx.clock.batch_share = len(idx[mine]) / len(idx)
                batch = Batch(idx[mine], raw[mine], batch.x[mine], batch.y[mine], whole=batch)
            yield batch

    # ------------------------------------------------------------------------------ LR schedule
    def lr_factor(self, t: float) -> float:
        """Multiplier of the base learning rate at progress ``t`` (epochs)."""
        s = self.cfg.schedule
        warm = s.lr_warmup_epochs
        if warm > 0 and t < warm:
            return (t + 1.0 / self.ctx.clock.steps_per_epoch) / warm
        if s.name == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * min(t, self.cfg.epochs) / self.cfg.epochs))
        if s.name == "multistep":
            return s.gamma ** sum(t >= m for m in s.milestones)
        return 1.0

    def _apply_schedule(self) -> None:
        factor = self.lr_factor(self.ctx.progress())
        for opt in self.ctx.scheduled:
            for group in opt.param_groups:
                group["lr"] = group["base_lr"] * factor

    # ------------------------------------------------------------------------------ the loop
    def fit(
        self, method: Method, run_dir: Path | None, resume_state: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Train ``method`` for ``cfg.epochs`` epochs, evaluating, logging and checkpointing each epoch."""
        history: list[dict[str, Any]] = []
        elapsed = 0.0
        if resume_state is not None:
            method.load_state_dict(resume_state["method"])
            self._load_rng(resume_state["rng"])
            history, elapsed = resume_state["history"], resume_state["elapsed"]
            self.ctx.clock.epoch = resume_state["epoch"]
        if run_dir is not None and self.dist.is_main:
            # One line per epoch: the log restarts from the checkpoint's history (empty for a fresh
            # start), dropping epochs logged after the last checkpoint by a run that was killed.
            (run_dir / "metrics.jsonl").write_text("".join(_json_line(r) for r in history))
        writer = self._tensorboard(run_dir)
        clock = self.ctx.clock
        for epoch in range(clock.epoch, self.cfg.epochs):
            clock.epoch = epoch
            start = time.perf_counter()
            train_stats = self.train_epoch(method, epoch)
            epoch_seconds = time.perf_counter() - start
            elapsed += epoch_seconds
            record = {"epoch": epoch + 1, **train_stats, **self.evaluate(method), "seconds": epoch_seconds}
            history.append(record)
            self._warn_if_unstable(record)
            clock.epoch, clock.step_in_epoch = epoch + 1, 0
            if run_dir is not None and self.dist.is_main:
                self._log(run_dir, record, writer)
                if clock.epoch % self.cfg.checkpoint_every == 0 or clock.epoch == self.cfg.epochs:
                    save_checkpoint(run_dir, self._checkpoint(method, history, elapsed))
        if writer is not None:
            writer.close()
        return summarize(history, elapsed)

    def _warn_if_unstable(self, record: dict[str, Any]) -> None:
        """A first-epoch training loss far above a uniform guess's ``ln C`` means the step is too large
        (not judged in smoke mode: two batches of a paper-scale network say nothing about its step)."""
        loss, uniform = record.get("train_loss"), math.log(self.ctx.num_classes)
        judged = record["epoch"] == 1 and not self.cfg.smoke and self.dist.is_main
        if judged and loss is not None and loss > 2 * uniform:
            warnings.warn(
                f"the first epoch's training loss {loss:.2f} is above twice a uniform guess's {uniform:.2f}:"
                f" the step size (optim.lr = {self.cfg.optim.lr:g}) is likely too large for this model"
                " (see noisy_labels.defaults).",
                stacklevel=2,
            )

    def train_epoch(self, method: Method, epoch: int) -> dict[str, float]:
        for module in method.eval_modules():
            module.train()
        method.on_epoch_start(epoch)
        totals: dict[str, torch.Tensor | float] = {}
        bar = tqdm(
            self.batches(),
            total=self.ctx.clock.steps_per_epoch,
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
        scheduled = self.ctx.scheduled
        lr = scheduled[0].param_groups[0]["lr"] if scheduled else float("nan")
        record = {f"train_{k}": float(v) / self.ctx.clock.steps_per_epoch for k, v in totals.items()}
        return record | {f"train_{k}": float(v) for k, v in epoch_stats.items()} | {"lr": lr}

    @torch.no_grad()
    def evaluate(self, method: Method) -> dict[str, float]:
        """Test accuracy; label accuracy and cleanness AUC where the method and clean labels allow."""
        out: dict[str, float] = {}
        with eval_mode(*method.eval_modules()):
            if self.data.test_x is not None and self.data.test_y is not None:
                flip = self.cfg.eval_flip and self.ctx.is_image  # a feature vector has no mirror image
                predict = flip_averaged(method.predict) if flip else method.predict
                logits = self.ctx.predict(predict, self.data.test_x)
                ks = (1, 5) if self.ctx.num_classes > 5 else (1,)
                accs = metrics.topk_accuracy(logits.cpu(), self.data.test_y.cpu(), k=ks)
                assert isinstance(accs, tuple)  # a sequence of k gives one accuracy per k
                out["test_acc"] = accs[0]
                if len(ks) > 1:
                    out["test_top5"] = accs[1]
            out.update(self._label_metrics(method))
        return out

    def _label_metrics(self, method: Method) -> dict[str, float]:
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
    def _checkpoint(self, method: Method, history: list[dict[str, Any]], elapsed: float) -> dict[str, Any]:
        return {
            "epoch": self.ctx.epoch,
            "method": method.state_dict(),
            "history": history,
            "elapsed": elapsed,
            "rng": {
                "generator": self.ctx.generator.get_state(),
                "torch": torch.get_rng_state(),
                "scaler": self.ctx.scaler.state_dict(),
            },
        }

    def _load_rng(self, rng: dict[str, Any]) -> None:
        self.ctx.generator.set_state(rng["generator"])
        torch.set_rng_state(rng["torch"])
        self.ctx.scaler.load_state_dict(rng["scaler"])

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
