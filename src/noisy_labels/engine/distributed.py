"""Distributed data parallel when launched with ``torchrun`` (gloo on the CPU, nccl on GPUs).

Every rank draws the same global batch order from the same seeded generator and trains on its slice
``batch[rank::world_size]``; DDP averages the gradients, which equals the single-process gradient of the
global batch when each rank's loss is the mean over its slice and the slices are of equal size.

What keeps a run under ``torchrun`` equal to one process on the same global batches:

* The global batch is prepared (augmented) on every rank with the shared generator, then sliced, so the
  views are one process's and the ranks' generators stay in step.
* ``ctx.step(loss, reduction=...)`` scales this rank's loss so that DDP's average is the global batch's
  gradient: a slice mean by its share of the batch (slices of unequal length too), a slice's part of a
  global sum by the number of ranks.
* Per-sample state (weights, corrected labels, loss histories) is one global tensor on every rank: each
  batch's writes are all-gathered (:func:`gather_slices`) and applied in the global batch's order, so every
  rank holds the same copy and rank 0's checkpoint and outputs cover all samples.
* Batch-wise rules run on the global batch: sums over the ranks (:func:`all_sum`, differentiable where a
  network learns through them), or the gathered values (``ctx.gather_batch``). Networks outside DDP that
  learn from a meta-gradient sum their gradients over the ranks (:func:`sum_grads`).
* Only rank 0 writes files and prints; every rank loads the same checkpoint on resume.

Every method is equal to one process within float tolerance (``tests/test_distributed.py``: two gloo
ranks against one process; mixup partners, co-teaching's and DivideMix's selections, contrastive
negatives and the meta-gradients all range over the global batch). What stays per rank, as in any DDP
run: BatchNorm statistics and dropout masks (SyncBatchNorm has no CPU kernels and would break the
forward-mode meta-gradient). Redundant work: DivideMix builds and labels the whole MixMatch batch on
every rank (no-grad forwards) and trains on its rows; every rank draws the same meta batches.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_rank() -> int:
    """This process's rank as ``torchrun`` set it (0 when not launched by it)."""
    return int(os.environ.get("RANK", "0"))


def init_distributed(device: torch.device) -> DistInfo:
    """Join the process group that ``torchrun`` describes through its environment; a no-op otherwise."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        # Left to interpreter teardown, gloo's worker threads can free tensors after Python is gone and
        # abort the process (SIGABRT on a rank that had finished: seen once in CI on a resumed run).
        atexit.register(_leave_process_group)
    return DistInfo(rank=dist.get_rank(), world_size=dist.get_world_size())


def _leave_process_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def wrap_model(model: torch.nn.Module, info: DistInfo, device: torch.device) -> torch.nn.Module:
    if not info.enabled:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)


def gather_slices(info: DistInfo, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Every rank's rows of ``tensors`` (equal first dimensions), concatenated in the global batch's order.

    Rank ``r`` holds the global rows ``r, r + world_size, ...`` (the loop's slicing); the result puts row
    ``j`` of rank ``r`` back at global position ``j * world_size + r``, so a write that follows equals the
    single-process write of the whole batch, duplicates included. Slices may differ in length by one (a
    global batch that the ranks do not divide); the shorter ones are padded for the collective. Boolean
    tensors travel as bytes (gloo gathers no booleans). Not distributed: the tensors unchanged.
    """
    if not info.enabled:
        return tensors
    n = tensors[0].shape[0]
    lengths = [torch.zeros(1, dtype=torch.long, device=tensors[0].device) for _ in range(info.world_size)]
    dist.all_gather(lengths, torch.tensor([n], dtype=torch.long, device=tensors[0].device))
    sizes = [int(x) for x in lengths]
    longest = max(sizes)
    positions = torch.cat([torch.arange(k) * info.world_size + r for r, k in enumerate(sizes)])
    order = torch.argsort(positions).to(tensors[0].device)
    return tuple(_gather_rows(t, sizes, longest, info)[order] for t in tensors)


def gather_slices_replicated(info: DistInfo, value: torch.Tensor) -> torch.Tensor:
    """:func:`gather_slices` of one tensor with gradients: every rank computes the same objective from the
    gathered batch (a contrastive loss over all its samples), and each rank's input gets its own rows'
    gradient of it; its network's gradient is then its part of the whole, for DDP to combine."""
    if not info.enabled:
        return value
    return _GatherReplicated.apply(value, info)


class _GatherReplicated(torch.autograd.Function):
    @staticmethod
    def forward(ctx, value: torch.Tensor, info: DistInfo) -> torch.Tensor:  # type: ignore[override]
        ctx.info = info
        (whole,) = gather_slices(info, value.detach())
        return whole

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        info = ctx.info
        return grad[info.rank :: info.world_size], None


def _gather_rows(t: torch.Tensor, sizes: list[int], longest: int, info: DistInfo) -> torch.Tensor:
    wire = t.to(torch.uint8) if t.dtype == torch.bool else t.contiguous()
    padded = torch.zeros((longest, *wire.shape[1:]), dtype=wire.dtype, device=wire.device)
    padded[: len(wire)] = wire
    parts = [torch.empty_like(padded) for _ in range(info.world_size)]
    dist.all_gather(parts, padded)
    rows = torch.cat([part[:k] for part, k in zip(parts, sizes, strict=True)])
    return rows.to(torch.bool) if t.dtype == torch.bool else rows


#: How gradients pass back through a sum over the ranks (:func:`all_sum`).
SUM_GRADS = ("none", "parts", "replicated")


def all_sum(info: DistInfo, value: torch.Tensor, *, grad: str = "none") -> torch.Tensor:
    """``value`` summed over the ranks (``value`` itself when not distributed).

    ``grad`` says what the ranks compute from the sum, and so how gradients pass back: ``"none"``, a
    constant; ``"parts"``, each rank a different part of one objective (its slice's terms), so a rank's
    input gets the sum of all ranks' gradients; ``"replicated"``, every rank the same objective (a meta
    loss at look-ahead weights built from the sum), so each rank's own gradient is already the whole one.
    """
    if grad not in SUM_GRADS:
        raise ValueError(f"grad must be one of {', '.join(SUM_GRADS)}, got {grad!r}.")
    if not info.enabled:
        return value
    if grad == "parts":
        return _SumOfParts.apply(value)
    if grad == "replicated":
        return _ReplicatedSum.apply(value)
    total = value.detach().clone()
    dist.all_reduce(total)
    return total


def _reduced(value: torch.Tensor) -> torch.Tensor:
    total = value.clone()
    dist.all_reduce(total)
    return total


class _SumOfParts(torch.autograd.Function):
    """Sum over the ranks; backward: the ranks' gradients summed (each holds a part of the objective)."""

    @staticmethod
    def forward(ctx, value: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return _reduced(value)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return _reduced(grad)


class _ReplicatedSum(_SumOfParts):
    """Sum over the ranks; backward: this rank's gradient as it is (every rank holds the whole objective)."""

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return grad


def sum_grads(info: DistInfo, params: Iterable[torch.Tensor]) -> None:
    """Sum the parameters' ``.grad`` over the ranks in place (missing gradients count as zero)."""
    if not info.enabled:
        return
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        dist.all_reduce(p.grad)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()
