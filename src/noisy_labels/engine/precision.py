"""Which floating-point precision a run computes in: bf16 autocast on CPUs that have native bf16.

A CPU with AMX (``amx_bf16``) or AVX512-BF16 runs bf16 convolutions and matrix products natively: an
airbench-style CIFAR net trains ~2.7x faster under bf16 autocast than in float32 on one thread
(``../shared/research/cpu-training.md``). Without them bf16 is emulated and can be *slower* than float32,
so ``bf16_cpu: auto`` asks the processor (PyTorch's own CPU-capability probes) instead of assuming.
"""

from __future__ import annotations

import torch

__all__ = ["cpu_has_native_bf16", "cpu_bf16_enabled"]


def cpu_has_native_bf16() -> bool:
    """True where the processor computes bf16 natively (AMX tiles or AVX512-BF16); False if unknown."""
    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    for name in probes:
        probe = getattr(torch.cpu, name, None)  # private PyTorch probes; absent in some builds
        try:
            if probe is not None and probe():
                return True
        except RuntimeError:  # a build without the CPU-info backend
            continue
    return False


def cpu_bf16_enabled(setting: bool | str) -> bool:
    """``bf16_cpu`` resolved: True / False as given, ``"auto"`` by :func:`cpu_has_native_bf16`."""
    if setting == "auto":
        return cpu_has_native_bf16()
    return bool(setting)
