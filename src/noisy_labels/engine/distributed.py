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

Equal to one process (``tests/test_distributed.py``, float tolerance): CE and the robust losses, CDR,
co-teaching, DMLP, ELR, L2RW, L2B, MW-Net, MNW-Net, RMNW-Net. Not yet: DivideMix, ELR+ and the flywheel
(mixup partners within each slice and, for DivideMix, unlabelled draws sized by the slice), MLC and EMLC (their look-ahead and teacher gradients are the slice's); they finish and write
outputs over every sample. BatchNorm statistics and dropout masks are per rank, as in any DDP run
(SyncBatchNorm has no CPU kernels and would break the forward-mode meta-gradient).
"""

from __future__ import annotations

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
    return DistInfo(rank=dist.get_rank(), world_size=dist.get_world_size())


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


def _gather_rows(t: torch.Tensor, sizes: list[int], longest: int, info: DistInfo) -> torch.Tensor:
    wire = t.to(torch.uint8) if t.dtype == torch.bool else t.contiguous()
    padded = torch.zeros((longest, *wire.shape[1:]), dtype=wire.dtype, device=wire.device)
    padded[: len(wire)] = wire
    parts = [torch.empty_like(padded) for _ in range(info.world_size)]
    dist.all_gather(parts, padded)
    rows = torch.cat([part[:k] for part, k in zip(parts, sizes, strict=True)])
    return rows.to(torch.bool) if t.dtype == torch.bool else rows


def all_sum(info: DistInfo, value: torch.Tensor, *, differentiable: bool = False) -> torch.Tensor:
    """``value`` summed over the ranks (``value`` itself when not distributed)."""
    if not info.enabled:
        return value
    if differentiable:
        return _SumOverRanks.apply(value)
    total = value.detach().clone()
    dist.all_reduce(total)
    return total


class _SumOverRanks(torch.autograd.Function):
    """A sum over the ranks whose backward sums the ranks' gradients: every rank's input feeds every
    rank's output, so its gradient is the sum of all ranks' output gradients."""

    @staticmethod
    def forward(ctx, value: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        total = value.clone()
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        total = grad.clone()
        dist.all_reduce(total)
        return total


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
