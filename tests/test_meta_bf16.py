"""bf16 autocast on the CPU: the meta-gradients stay those of float32, and ``bf16_cpu: auto`` is probed.

The one-step meta methods run their meta step under the run's bf16 autocast (``ctx.meta_autocast``), so
they keep their cost ratio to CE when CE trains in bf16. The meta-gradient through the airbench network
in bf16 must agree with the float32 one: cosine >= 0.99 and relative L2 error <= 0.15 (bf16 keeps 8
significant bits; measured 0.997 and 0.08 on this network, 0.9999 and 0.01 on the small CNN).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from noisy_labels.config import ConfigError, config_from_dict
from noisy_labels.engine.precision import cpu_bf16_enabled, cpu_has_native_bf16
from noisy_labels.losses import per_sample_ce
from noisy_labels.meta import weight_grad
from noisy_labels.models import create_model

COSINE, RELATIVE = 0.99, 0.15


def _trained_airbench() -> tuple[torch.nn.Module, dict[str, torch.Tensor], tuple[torch.Tensor, ...]]:
    torch.manual_seed(0)
    model = create_model("airbench", num_classes=10, input_shape=(3, 32, 32))
    x, y = torch.randn(48, 3, 32, 32), torch.randint(0, 10, (48,))
    meta_x, meta_y = torch.randn(24, 3, 32, 32), torch.randint(0, 10, (24,))
    model.data_init(x)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    for _ in range(3):  # away from the initialisation, where every gradient is alike
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    return model, {k: v.clone() for k, v in model.state_dict().items()}, (x, y, meta_x, meta_y)


@pytest.mark.parametrize("lookahead_weights", [False, True], ids=["w=0 (L2RW, L2B)", "w!=0 (MW-Net)"])
def test_bf16_meta_gradient_agrees_with_float32(lookahead_weights: bool) -> None:
    model, state, (x, y, meta_x, meta_y) = _trained_airbench()
    weights = torch.full((len(y),), 1 / len(y)) if lookahead_weights else None

    def grad() -> torch.Tensor:
        model.load_state_dict(state)  # both passes from the same weights and BatchNorm statistics
        return weight_grad(
            model, x, per_sample_ce(y), meta_x, meta_y, F.cross_entropy, lr=0.1, weights=weights
        ).grad

    full = grad()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        half = grad()
    assert half.dtype == torch.float32  # the loss vector is computed in float32 under autocast
    assert F.cosine_similarity(full, half, dim=0) >= COSINE
    assert (full - half).norm() / full.norm() <= RELATIVE


def test_a_broken_meta_gradient_fails_the_same_check() -> None:
    """The tolerance is tight enough to catch a wrong gradient: a sign-flipped half fails it."""
    model, state, (x, y, meta_x, meta_y) = _trained_airbench()
    full = weight_grad(model, x, per_sample_ce(y), meta_x, meta_y, F.cross_entropy, lr=0.1).grad
    broken = full.clone()
    broken[: len(broken) // 2] *= -1
    assert (
        F.cosine_similarity(full, broken, dim=0) < COSINE or (full - broken).norm() / full.norm() > RELATIVE
    )


def test_bf16_cpu_auto_asks_the_processor(monkeypatch: pytest.MonkeyPatch) -> None:
    assert cpu_bf16_enabled(True) and not cpu_bf16_enabled(False)
    assert cpu_bf16_enabled("auto") == cpu_has_native_bf16()
    for probe in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"):
        monkeypatch.setattr(torch.cpu, probe, lambda: False, raising=False)
    assert not cpu_has_native_bf16() and not cpu_bf16_enabled("auto")
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)
    assert cpu_bf16_enabled("auto")


def test_bf16_cpu_takes_only_true_false_or_auto() -> None:
    assert config_from_dict({"bf16_cpu": "auto"}).bf16_cpu == "auto"
    with pytest.raises(ConfigError, match="bf16_cpu"):
        config_from_dict({"bf16_cpu": "sometimes"})
