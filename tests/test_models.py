"""Tests for noisy_labels.models: every registered model, parameter counts, torch.func and forward-mode AD."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd import forward_ad as fwAD
from torch.func import functional_call

from noisy_labels.models import (
    MLP,
    Classifier,
    ResNet32,
    SmallCNN,
    WideResNet,
    create_model,
    list_models,
    register_model,
    torchvision_backbone,
)

NUM_CLASSES = 5
FEATURE_MODELS = {"linear", "mlp"}
EXTRA_KWARGS = {"torchvision": {"arch": "resnet18"}}  # only listed when torchvision is installed
# 8x8 is the smallest size most networks here reduce to at least 1x1 before pooling; the 9-layer CNN's
# unpadded convolutions need 7x7 after its two poolings; airbench's unpadded 2x2 stem and three poolings
# need 16x16.
IMAGE_SIDE = {"cnn9": 28, "airbench": 16}


def _example(name: str) -> tuple[torch.Tensor, dict]:
    """A batch of 2 small inputs for ``name`` and the create_model input arguments that fit it."""
    if name in FEATURE_MODELS:
        return torch.randn(2, 6), {"feature_dim": 6, **EXTRA_KWARGS.get(name, {})}
    side = IMAGE_SIDE.get(name, 8)
    return torch.randn(2, 3, side, side), {"in_channels": 3, **EXTRA_KWARGS.get(name, {})}


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: tiny batches, one thread


@pytest.fixture(scope="module", params=list_models())
def built(request) -> tuple[str, Classifier, torch.Tensor]:
    # Module scope: each model (WRN-28-10 has 36M parameters) is built once for all checks below.
    name = request.param
    torch.manual_seed(0)
    x, kwargs = _example(name)
    return name, create_model(name, num_classes=NUM_CLASSES, **kwargs), x


# ---------------------------------------------------------------- every registered model


def test_forward_shapes_and_features(built):
    name, model, x = built
    assert isinstance(model, Classifier)
    assert model.num_classes == NUM_CLASSES
    model.eval()
    with torch.no_grad():
        logits = model(x)
        logits2, feats = model.forward_with_features(x)
        assert logits.shape == (2, NUM_CLASSES)
        assert feats.shape == (2, model.feature_dim)
        torch.testing.assert_close(logits, logits2)
        torch.testing.assert_close(model.features(x), feats)
        torch.testing.assert_close(model.head(feats), logits)


def test_backward_and_modes(built):
    name, model, x = built
    model.train()
    assert all(m.training for m in model.modules())
    loss = F.cross_entropy(model(x), torch.tensor([0, 1]))
    loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
    model.zero_grad(set_to_none=True)
    model.eval()
    assert not any(m.training for m in model.modules())
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(x))  # eval mode is deterministic


@pytest.mark.parametrize("train", [False, True])
def test_functional_call_matches_module(built, train):
    name, model, x = built
    model.train(train)
    params = {k: v.detach() for k, v in model.named_parameters()}
    # Cloned buffers, so the functional train-mode call cannot touch the module's running statistics.
    buffers = {k: v.clone() for k, v in model.named_buffers()}
    with torch.no_grad():
        # Each call from the same RNG state: models with dropout (cnn9) draw the same masks.
        torch.manual_seed(1)
        expected = model(x)
        torch.manual_seed(1)
        got = functional_call(model, {**params, **buffers}, (x,))
        torch.manual_seed(1)
        logits, feats = functional_call(model, {**params, **buffers}, (x,), {"return_features": True})
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(logits, expected)
    assert feats.shape == (2, model.feature_dim)


def test_channels_last(built):
    name, model, x = built
    if x.dim() != 4:
        pytest.skip("feature model")
    model.eval()
    with torch.no_grad():
        expected = model(x)
        model.to(memory_format=torch.channels_last)
        try:
            got = model(x.contiguous(memory_format=torch.channels_last))
        finally:
            model.to(memory_format=torch.contiguous_format)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- architectures


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("resnet32", 0.46e6),  # He et al. 2016, Table 6
        ("resnet18", 11.17e6),  # the CIFAR ResNet-18 of the DivideMix / ELR code
        ("cnn9", 4.43e6),  # Co-teaching's 9-layer CNN (its reference code: 4.43M with conv biases)
        ("wrn28_10", 36.5e6),  # Zagoruyko & Komodakis 2016, Table 5
        ("preact_resnet18", 11.17e6),  # DivideMix's PreAct ResNet-18
        ("resnet34", 21.28e6),  # CIFAR ResNet-34 with a 3x3 stem
        ("resnet50", 23.52e6),
    ],
)
def test_parameter_counts_match_literature(name, expected):
    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        model = create_model(name, num_classes=10)
    count = sum(p.numel() for p in model.parameters())
    assert count == pytest.approx(expected, rel=0.01)


def test_resnet32_shortcut_options():
    count = {s: sum(p.numel() for p in ResNet32(shortcut=s).parameters()) for s in ("A", "B")}
    assert count["A"] == 464_154  # zero-padding shortcuts have no parameters
    assert count["B"] > count["A"]
    with pytest.raises(ValueError, match="shortcut"):
        ResNet32(shortcut="C")


@pytest.mark.parametrize(("shape", "channels"), [((1, 28, 28), 1), ((3, 32, 32), 3)])
def test_small_cnn_input_sizes(shape, channels):
    model = create_model("small_cnn", num_classes=10, input_shape=shape).eval()
    assert model.backbone[0].in_channels == channels
    assert model(torch.randn(2, *shape)).shape == (2, 10)


def test_small_cnn_compute_budget():
    # ~20 MFLOP per 32x32x3 image keeps CPU runs fast (about 1000 training images/s on one core).
    from torch.utils.flop_counter import FlopCounterMode

    model = SmallCNN(10).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.randn(1, 3, 32, 32))
    assert counter.get_total_flops() <= 21e6


def test_wide_resnet_parameters_and_dropout():
    with pytest.raises(ValueError, match="6n"):
        WideResNet(depth=27)
    torch.manual_seed(0)
    model = WideResNet(depth=10, widen=1, num_classes=3, dropout=0.5)
    assert model.feature_dim == 64
    x = torch.randn(2, 3, 8, 8)
    model.train()
    assert not torch.allclose(model(x), model(x))  # dropout is active in training
    model.eval()
    torch.testing.assert_close(model(x), model(x))


# ---------------------------------------------------------------- the papers' CIFAR networks
PAPER_CNNS = {"resnet18": 512, "cnn9": 128}  # name -> feature_dim


@pytest.mark.parametrize(("name", "feature_dim"), PAPER_CNNS.items())
def test_paper_cnns_on_a_cifar_batch(name, feature_dim):
    torch.manual_seed(0)
    model = create_model(name, num_classes=10, input_shape=(3, 32, 32)).eval()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        logits, feats = model.forward_with_features(x)
    assert model.feature_dim == feature_dim
    assert logits.shape == (4, 10) and feats.shape == (4, feature_dim)


def test_nine_layer_cnn_follows_coteaching_table_3():
    model = create_model("cnn9", num_classes=10)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [128, 128, 128, 256, 256, 256, 512, 256, 128]
    assert all(c.kernel_size == (3, 3) for c in convs)
    assert [c.padding for c in convs[6:]] == [(0, 0)] * 3  # unpadded, as the reference code
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 9
    slopes = {m.negative_slope for m in model.modules() if isinstance(m, nn.LeakyReLU)}
    assert slopes == {0.01}
    drops = [m.p for m in model.modules() if isinstance(m, nn.Dropout2d)]
    assert drops == [0.25, 0.25]
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.modules()) == 2
    mnist_sized = create_model("cnn9", num_classes=10, input_shape=(1, 28, 28))
    assert mnist_sized(torch.randn(2, 1, 28, 28)).shape == (2, 10)  # the smallest input it takes


@pytest.mark.parametrize("name", PAPER_CNNS)
def test_paper_cnns_under_bf16_autocast_and_channels_last(name):
    """The CPU recipe of the engine (``bf16_cpu``, channels_last): finite logits near fp32, a backward."""
    torch.manual_seed(0)
    model = create_model(name, num_classes=10).eval()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        expected = model(x)
        model.to(memory_format=torch.channels_last)
        x_last = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = model(x_last)
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), expected, rtol=0.1, atol=0.1 * expected.abs().max().item())
    model.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = F.cross_entropy(model(x_last), torch.arange(4))
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("name", PAPER_CNNS)
@pytest.mark.parametrize("method", ["ce", "l2b", "coteaching"])
def test_paper_cnns_train_one_step_under_the_engine(name, method):
    """One step of a plain, a functional (meta-gradient: torch.func and forward-mode AD) and a
    two-network method, with the engine's channels_last and bf16 autocast on the CPU."""
    from noisy_labels.engine import build_experiment, load_config
    from noisy_labels.engine.data import prepare_arrays

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (24, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(24) % 4
    cfg = load_config(
        None,
        [f"method={method}", f"model.name={name}", "batch_size=8", "bf16_cpu=true", "quiet=true"]
        + ([f"{method}.warmup_epochs=0"] if method == "l2b" else []),
    )
    data = prepare_arrays(
        cfg, torch.device("cpu"), images[:16], labels[:16], x_clean=images[16:], y_clean=labels[16:]
    )
    run = build_experiment(cfg, device=torch.device("cpu"), data=data)
    nets = run.method.eval_modules()
    before = [p.detach().clone() for net in nets for p in net.parameters()]
    run.method.train_step(next(iter(run.engine.batches())))
    after = [p.detach() for net in nets for p in net.parameters()]
    assert all(torch.isfinite(p).all() for p in after)
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))


def test_mlp_options_and_flattened_inputs():
    mlp = MLP(6, 3, hidden=(8, 4), batchnorm=True, dropout=0.1)
    assert mlp.feature_dim == 4
    assert any(isinstance(m, nn.BatchNorm1d) for m in mlp.modules())
    assert mlp(torch.randn(2, 6)).shape == (2, 3)
    linear = create_model("linear", num_classes=10, input_shape=(1, 28, 28))
    assert linear.feature_dim == 784
    assert linear(torch.randn(2, 1, 28, 28)).shape == (2, 10)


# torch's forward-AD decompositions call the deprecated torch.jit.script when first loaded; not ours.
@pytest.mark.filterwarnings("ignore:.*torch.jit.script.* is deprecated:DeprecationWarning")
@pytest.mark.parametrize(
    ("name", "kwargs"),
    [("small_cnn", {}), ("resnet32", {}), ("cnn9", {"dropout": 0.0})],  # dropout: one mask for both passes
)
def test_forward_mode_jvp_through_functional_call_in_train_mode(name, kwargs):
    # Exact meta-gradients (e.g. MW-Net via one JVP) push dual parameters through a train-mode forward.
    torch.manual_seed(0)
    model = create_model(name, num_classes=3, **kwargs).double().train()
    side = IMAGE_SIDE.get(name, 8)
    x = torch.randn(2, 3, side, side, dtype=torch.float64)
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = dict(model.named_buffers())
    before = {k: v.clone() for k, v in buffers.items()}
    tangents = {k: torch.randn_like(v) for k, v in params.items()}

    def run(p: dict[str, torch.Tensor]) -> torch.Tensor:
        return functional_call(model, {**p, **{k: v.clone() for k, v in buffers.items()}}, (x,))

    with fwAD.dual_level():
        out = run({k: fwAD.make_dual(p, tangents[k]) for k, p in params.items()})
        primal, tangent = fwAD.unpack_dual(out)
    assert tangent is not None
    # Exact reference by reverse mode: d/da f(theta + a * t) at a = 0, one output at a time. (Finite
    # differences are not exact here: a perturbation of every weight crosses ReLU kinks.)
    a = torch.zeros((), dtype=torch.float64, requires_grad=True)
    moved = run({k: p + a * tangents[k] for k, p in params.items()})
    expected = torch.stack([torch.autograd.grad(o, a, retain_graph=True)[0] for o in moved.flatten()])
    torch.testing.assert_close(tangent, expected.reshape(tangent.shape), rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(primal, moved.detach())
    for k, v in model.named_buffers():
        torch.testing.assert_close(v, before[k])  # running statistics untouched


# ---------------------------------------------------------------- registry


def test_unknown_model_lists_known_names():
    with pytest.raises(ValueError, match="Known models: .*resnet32") as err:
        create_model("resnet-32", num_classes=10)
    assert "Did you mean 'resnet32'" in str(err.value)


@pytest.mark.parametrize(
    ("name", "kwargs", "match"),
    [
        ("resnet32", {"feature_dim": 8}, "image model"),
        ("mlp", {}, "feature_dim=D"),
        ("linear", {"in_channels": 3}, "feature_dim=D"),
        ("small_cnn", {"input_shape": (28, 28)}, r"\(C, H, W\)"),
        ("small_cnn", {"input_shape": (1, 28, 28), "in_channels": 3}, "contradicts"),
        ("small_cnn", {"in_channels": 0}, "positive integer"),
        ("mlp", {"feature_dim": 6, "input_shape": (7,)}, "contradicts"),
    ],
)
def test_create_model_argument_errors(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        create_model(name, num_classes=10, **kwargs)


def test_create_model_rejects_bad_num_classes():
    with pytest.raises(ValueError, match="num_classes"):
        create_model("small_cnn", num_classes=1)


def test_register_duplicate_name_raises():
    assert list_models() == sorted(list_models())
    with pytest.raises(ValueError, match="already registered"):
        register_model("small_cnn")(SmallCNN)


# ---------------------------------------------------------------- torchvision (optional)


def test_torchvision_missing_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)  # makes `import torchvision` fail
    with pytest.raises(ImportError, match=r"pip install noisy-labels\[vision\]"):
        torchvision_backbone("resnet18", num_classes=10)
    with pytest.raises(ImportError, match=r"noisy-labels\[vision\]"):
        create_model("torchvision", arch="resnet18", num_classes=10)


def _fake_torchvision(url: str) -> types.ModuleType:
    def get_model(name, weights=None, **kwargs):
        torch.manual_seed(0)
        return nn.Sequential(nn.Flatten(), nn.Linear(12, 7), nn.ReLU(), nn.Linear(7, 1000))

    fake = types.ModuleType("torchvision")
    default = types.SimpleNamespace(url=url)
    fake.models = types.SimpleNamespace(
        get_model=get_model, get_model_weights=lambda name: types.SimpleNamespace(DEFAULT=default)
    )
    return fake


def test_torchvision_backbone_replaces_last_linear(monkeypatch, tmp_path):
    fake = _fake_torchvision("https://example.invalid/weights/fake-1234.pth")
    monkeypatch.setitem(sys.modules, "torchvision", fake)
    model = torchvision_backbone("fake", num_classes=4)
    assert model.feature_dim == 7 and isinstance(model.backbone[3], nn.Identity)
    logits, feats = model.forward_with_features(torch.randn(2, 3, 2, 2))
    assert logits.shape == (2, 4) and feats.shape == (2, 7)
    with pytest.raises(ValueError, match="3-channel"):
        torchvision_backbone("fake", num_classes=4, in_channels=1)

    # Pretrained weights come only from local files: the hub cache or an explicit path.
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(FileNotFoundError, match="does not download"):
        torchvision_backbone("fake", pretrained=True, num_classes=4)
    state = {k: v + 1.0 for k, v in fake.models.get_model("fake").state_dict().items()}
    (tmp_path / "checkpoints").mkdir()
    torch.save(state, tmp_path / "checkpoints" / "fake-1234.pth")
    loaded = torchvision_backbone("fake", pretrained=True, num_classes=4)
    torch.testing.assert_close(loaded.backbone[1].weight, state["1.weight"])
    torch.save(state, tmp_path / "w.pth")
    assert torchvision_backbone("fake", pretrained=tmp_path / "w.pth", num_classes=4).feature_dim == 7
