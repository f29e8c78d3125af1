"""SimCLR's recipe as keys: LARS against a float64 hand computation, the learning-rate rule and schedule,
blur and hue, the parameter checks, and the keys in a DMLP config and on the ``features`` command line."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from noisy_labels.config import ConfigError
from noisy_labels.engine import load_config
from noisy_labels.engine.build import method_params
from noisy_labels.ssl import SimCLRParams, train_simclr
from noisy_labels.ssl.lars import LARS, lars_param_groups
from noisy_labels.ssl.optim import WarmupCosine, make_optimizer, peak_learning_rate
from noisy_labels.ssl.simclr import _optimizer_and_schedule, gaussian_blur, rotate_hue
from shared_settings import tiny_image_set

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: small ops, one thread


# ----------------------------------------------------------------------------------------------- LARS


def _lars_by_hand(w0, b0, grads, *, lr, momentum, wd, eta):
    """Two LARS steps written out in numpy: the weight adapted and decayed, the bias plain momentum SGD."""
    w, b = w0.copy(), b0.copy()
    vw, vb = np.zeros_like(w), np.zeros_like(b)
    for gw, gb in grads:
        update = gw + wd * w
        ratio = eta * np.sqrt((w**2).sum()) / np.sqrt((update**2).sum())
        vw = momentum * vw + lr * ratio * update
        vb = momentum * vb + lr * gb
        w, b = w - vw, b - vb
    return w, b


def test_lars_matches_a_float64_hand_computation():
    rng = np.random.default_rng(0)
    w0, b0 = rng.normal(size=(3, 4)), rng.normal(size=4)
    grads = [(rng.normal(size=(3, 4)), rng.normal(size=4)) for _ in range(2)]
    hp = {"lr": 0.7, "momentum": 0.9, "wd": 0.05, "eta": 0.02}
    w = nn.Parameter(torch.tensor(w0))
    b = nn.Parameter(torch.tensor(b0))
    opt = LARS(
        lars_param_groups([w, b], hp["wd"]), lr=hp["lr"], momentum=hp["momentum"], trust_coefficient=hp["eta"]
    )
    for gw, gb in grads:
        w.grad, b.grad = torch.tensor(gw), torch.tensor(gb)
        opt.step()
    want_w, want_b = _lars_by_hand(w0, b0, grads, **hp)
    np.testing.assert_allclose(w.detach().numpy(), want_w, rtol=0, atol=1e-13)
    np.testing.assert_allclose(b.detach().numpy(), want_b, rtol=0, atol=1e-13)
    assert w.grad is not None and torch.equal(
        w.grad, torch.tensor(grads[-1][0])
    )  # gradients left as they are


def test_lars_trust_ratio_is_one_for_a_zero_weight():
    w = nn.Parameter(torch.zeros(2, 2, dtype=torch.float64))
    w.grad = torch.ones(2, 2, dtype=torch.float64)
    LARS([w], lr=0.1, momentum=0.0, trust_coefficient=1e-3).step()
    torch.testing.assert_close(w.detach(), torch.full((2, 2), -0.1, dtype=torch.float64))


def test_lars_groups_leave_biases_and_batchnorm_alone():
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(8, 3))
    adapted, plain = lars_param_groups(net.parameters(), weight_decay=1e-6)
    assert (
        {p.ndim for p in adapted["params"]} == {2, 4} and adapted["weight_decay"] == 1e-6 and adapted["adapt"]
    )
    assert len(plain["params"]) == 4 and plain["weight_decay"] == 0.0 and not plain["adapt"]  # 2 biases, BN


# ------------------------------------------------------------------------------ learning-rate rule


@pytest.mark.parametrize(
    ("lr", "batch", "scaling", "peak"),
    [
        (0.3, 4096, "linear", 4.8),
        (1.0, 1024, "linear", 4.0),
        (0.075, 4096, "sqrt", 4.8),
        (1e-3, 256, "none", 1e-3),
    ],
)
def test_peak_learning_rate(lr, batch, scaling, peak):
    assert peak_learning_rate(lr, batch, scaling) == pytest.approx(peak)


def _rates(warmup_steps, total_steps, peak=1.2):
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=peak)
    schedule, rates = WarmupCosine(opt, warmup_steps, total_steps), []
    for _ in range(total_steps):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        schedule.step()
    return rates + [opt.param_groups[0]["lr"]]


def test_warmup_then_cosine_values():
    rates = _rates(warmup_steps=4, total_steps=12)
    # linear from 0 over 4 steps, the peak at step 4, then cosine over the 8 left: half way at step 8
    expected = {0: 0.0, 1: 0.3, 2: 0.6, 4: 1.2, 6: 1.2 * (1 + math.cos(math.pi / 4)) / 2, 8: 0.6, 12: 0.0}
    for step, rate in expected.items():
        assert rates[step] == pytest.approx(rate, abs=1e-12), step


def test_no_warmup_is_torch_cosine_annealing_exactly():
    """The default recipe keeps today's rates bit for bit (a run with the defaults is unchanged)."""
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1e-3)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=30)
    reference = [opt.param_groups[0]["lr"]]
    for _ in range(30):
        opt.step()
        cosine.step()
        reference.append(opt.param_groups[0]["lr"])
    assert _rates(0, 30, peak=1e-3) == reference


def test_default_recipe_is_adam_and_lars_recipe_is_lars():
    net = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    opt, _ = _optimizer_and_schedule([net], SimCLRParams(), 256, 10)
    assert type(opt) is torch.optim.Adam and opt.param_groups[0]["lr"] == 1e-3
    paper = SimCLRParams(epochs=100, optimizer="lars", lr=1.0, lr_scaling="linear", warmup_epochs=10)
    opt, schedule = _optimizer_and_schedule([net], paper, 1024, 49)
    assert isinstance(opt, LARS) and schedule.peaks == [4.0, 4.0] and schedule.warmup_steps == 490
    assert opt.param_groups[0]["lr"] == 0.0  # the warm-up starts at 0
    sgd = make_optimizer(
        "sgd", net.parameters(), lr=0.1, weight_decay=0.0, momentum=0.9, trust_coefficient=1e-3
    )
    assert type(sgd) is torch.optim.SGD and sgd.param_groups[0]["momentum"] == 0.9


# ------------------------------------------------------------------------------------ augmentations


def test_gaussian_blur_keeps_constants_and_smooths_noise():
    g = torch.Generator().manual_seed(0)
    flat = torch.full((2, 3, 10, 10), 0.25)
    torch.testing.assert_close(gaussian_blur(flat, torch.tensor([0.5, 2.0]), 2), flat)
    noise = torch.rand(2, 1, 32, 32, generator=g)
    blurred = gaussian_blur(noise, torch.tensor([0.1, 2.0]), 1)
    torch.testing.assert_close(blurred[0], noise[0], atol=1e-6, rtol=0)  # sigma 0.1: almost no blur
    assert blurred[1].std() < 0.7 * noise[1].std()
    assert torch.equal(gaussian_blur(noise, torch.tensor([1.0, 1.0]), 0), noise)  # images under 20 px


def test_hue_rotation_keeps_grey_and_luma_and_a_full_turn():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 5, 5, generator=g) * 0.5 + 0.25
    turns = torch.tensor([0.0, 0.1, -0.2, 1.0])
    y = rotate_hue(x, turns)
    luma = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    torch.testing.assert_close((y * luma).sum(1), (x * luma).sum(1), atol=1e-5, rtol=0)
    torch.testing.assert_close(y[[0, 3]], x[[0, 3]], atol=1e-5, rtol=0)
    assert not torch.allclose(y[1], x[1], atol=1e-3)
    grey = x[:, :1].expand(-1, 3, -1, -1)
    torch.testing.assert_close(rotate_hue(grey, turns), grey, atol=1e-5, rtol=0)


def test_blur_and_hue_views_and_a_lars_run():
    """The paper's switches (hue, blur, LARS with warm-up) run end to end on a tiny RGB set."""
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (64, 20, 20, 3), dtype=torch.uint8, generator=g)
    encoder = nn.Sequential(
        nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()
    )
    params = SimCLRParams(
        epochs=3,
        batch_size=32,
        optimizer="lars",
        lr=1.0,
        lr_scaling="linear",
        warmup_epochs=1,
        hue=True,
        blur=True,
    )
    history = train_simclr(encoder, images, params, feature_dim=8, seed=0)
    assert len(history) == 3 and all(math.isfinite(h["loss"]) for h in history)


# ---------------------------------------------------------------------------------------- the keys


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"optimizer": "rmsprop"}, r"optimizer must be one of adam, sgd, lars, got 'rmsprop'"),
        ({"lr_scaling": "cubic"}, r"lr_scaling must be one of none, linear, sqrt"),
        ({"lr": 0.0}, r"lr must be > 0"),
        ({"batch_size": 1}, r"batch_size must be >= 2"),
        ({"warmup_epochs": 10}, r"warmup_epochs must be below SimCLR's epochs \(10\)"),
        ({"warmup_epochs": -1}, r"warmup_epochs must be >= 0"),
        ({"momentum": 1.0}, r"momentum must lie in \[0, 1\)"),
        ({"temperature": 0.0}, r"temperature must be > 0"),
        ({"color_strength": 2.0}, r"color_strength must lie in \[0, 1.25\]"),
        ({"crop_scale": (0.5, 0.2)}, r"crop_scale must be \(low, high\)"),
        ({"proj_hidden": 0}, r"proj_hidden must be >= 1"),
        ({"weight_decay": -1e-6}, r"weight_decay must be >= 0"),
    ],
)
def test_bad_values_name_the_key(change, message):
    with pytest.raises(ValueError, match=message):
        SimCLRParams(**change)


DMLP = ["method=dmlp", "meta.size=30"]


def test_dmlp_section_carries_every_simclr_key():
    """Each SimCLRParams key is a dmlp.simclr_* key with the same default (no second set of defaults)."""
    import dataclasses

    from noisy_labels.methods.dmlp import DMLPParams

    defaults = DMLPParams()
    for f in dataclasses.fields(SimCLRParams):
        assert getattr(defaults, f"simclr_{f.name}") == f.default, f.name
    assert defaults.simclr_params() == SimCLRParams()
    sets = ["dmlp.simclr_optimizer=lars", "dmlp.simclr_crop_scale=[0.08, 1]", "dmlp.simclr_blur=true"]
    params = method_params(load_config(None, [*DMLP, *sets]), "dmlp").simclr_params()
    assert (params.optimizer, params.crop_scale, params.blur) == ("lars", (0.08, 1.0), True)


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("dmlp.simclr_lr=-1", r"^dmlp\.simclr_lr must be > 0, got -1\.0\.$"),
        ("dmlp.simclr_optimizer=adamw", r"^dmlp\.simclr_optimizer must be one of adam, sgd, lars"),
        ("dmlp.simclr_blur=sometimes", r"^dmlp\.simclr_blur: expected bool"),
        ("dmlp.simclr_warmup_epochs=10", r"^dmlp\.simclr_warmup_epochs must be below SimCLR's epochs"),
    ],
)
def test_bad_dmlp_simclr_keys_are_one_line(setting, message):
    with pytest.raises(ConfigError, match=message) as info:
        load_config(None, [*DMLP, setting])
    assert "\n" not in str(info.value)


def test_paper_configs_carry_simclrs_cifar_recipe():
    cfg = load_config(ROOT / "configs" / "cifar10_dmlp_sym50_paper.yaml")
    params = method_params(cfg, "dmlp").simclr_params()
    assert (params.optimizer, params.batch_size, params.lr, params.lr_scaling) == (
        "lars",
        1024,
        1.0,
        "linear",
    )
    assert (params.warmup_epochs, params.temperature, params.proj_dim, params.blur) == (10, 0.5, 128, False)


def test_features_command_takes_the_recipe_as_flags(tmp_path, capsys):
    from noisy_labels.cli import main

    data = tiny_image_set(tmp_path / "tiny.npz")
    base = ["features", "--dataset", str(data), "--out", str(tmp_path / "f.npz"), "--quiet", "--simclr"]
    recipe = ["--simclr-epochs", "2", "--simclr-optimizer", "lars", "--simclr-lr-scaling", "linear"]
    recipe += ["--simclr-warmup-epochs", "1", "--simclr-crop-scale", "[0.3, 1]", "--simclr-blur", "true"]
    assert main([*base, *recipe]) == 0
    assert "simclr small_cnn" in capsys.readouterr().out
    stored = np.load(tmp_path / "f.npz")["recipe"]
    assert '"optimizer": "lars"' in str(stored) and '"crop_scale": [0.3, 1.0]' in str(stored)
    for flags, message in [
        (["--simclr-lr", "-1"], "--simclr-lr must be > 0, got -1.0."),
        (["--simclr-lr-scaling", "cubic"], "--simclr-lr-scaling must be one of none, linear, sqrt"),
        (["--simclr-crop-scale", "[0.3]"], "--simclr-crop-scale: expected 2 values, got 1."),
        (["--simclr-crop-scale", "["], "--simclr-crop-scale: cannot parse value '['"),
    ]:
        assert main([*base, "--overwrite", *flags]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert main([*base[:-1], "--simclr-lr", "1"]) == 2
    assert "--simclr-lr sets SimCLR's recipe: add --simclr." in capsys.readouterr().err
