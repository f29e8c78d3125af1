"""The airbench network: its whitening stem, the engine's data initialisation, and model.init round trips."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from noisy_labels.engine import load_config, run_experiment
from noisy_labels.engine.build import build_experiment
from noisy_labels.models import AirbenchNet, create_model, init_backbone
from noisy_labels.models.airbench import patch_whitening

pytestmark = pytest.mark.usefixtures("one_thread")


def _images(n: int = 256, seed: int = 0) -> torch.Tensor:
    """Correlated channels and neighbouring pixels, as in photographs: whitening has work to do."""
    g = torch.Generator().manual_seed(seed)
    base = F.avg_pool2d(torch.randn(n, 1, 34, 34, generator=g), 3, stride=1)
    noise = torch.randn(n, 2, 32, 32, generator=g)
    return torch.cat([base, 0.5 * base + 0.1 * noise[:, :1], 0.2 * noise[:, 1:] - base], 1)


def test_the_stem_whitens_two_by_two_patches():
    x = _images()
    weight = patch_whitening(x, eps=1e-9)
    assert weight.shape == (24, 3, 2, 2)  # 12 directions and their negatives
    assert torch.equal(weight[12:], -weight[:12])
    cov = torch.cov(F.conv2d(x.double(), weight[:12].double()).permute(1, 0, 2, 3).reshape(12, -1))
    assert torch.allclose(cov, torch.eye(12, dtype=cov.dtype), atol=1e-3)  # white: identity covariance
    # the default eps damps the directions of least spread, as airbench's does, and no others
    damped = torch.cov(F.conv2d(x, patch_whitening(x)[:12]).permute(1, 0, 2, 3).reshape(12, -1)).diagonal()
    assert (damped < 1).all() and damped.max() > 0.99
    assert not torch.allclose(torch.cov(x[:, :, :2, :2].reshape(len(x), -1).T), torch.eye(12), atol=0.1)


def test_shapes_widths_and_a_training_step():
    net = create_model("airbench", num_classes=7, input_shape=(3, 32, 32), widths=(8, 16, 16))
    assert isinstance(net, AirbenchNet) and net.feature_dim == 16
    logits, feats = net.forward_with_features(torch.randn(4, 3, 32, 32))
    assert logits.shape == (4, 7) and feats.shape == (4, 16)
    assert "weight" not in dict(net.backbone[0].named_parameters())  # the whitening is a buffer
    loss = F.cross_entropy(net(torch.randn(8, 3, 32, 32)), torch.arange(8) % 7)
    loss.backward()
    assert all(p.grad is not None for p in net.parameters())
    with pytest.raises(ValueError, match="three conv groups"):
        create_model("airbench", num_classes=7, input_shape=(3, 32, 32), widths=(8, 16))


def _image_file(tmp_path) -> str:
    rng = np.random.default_rng(0)
    y = np.arange(200) % 4
    x = (rng.integers(0, 60, size=(200, 32, 32, 3)) + 50 * y[:, None, None, None]).astype(np.uint8)
    np.savez(tmp_path / "images.npz", x=x, y=y, x_test=x[:40], y_test=y[:40])
    return str(tmp_path / "images.npz")


def test_the_engine_whitens_every_network_it_builds_from_training_images(tmp_path):
    settings = [f"dataset={_image_file(tmp_path)}", "model.name=airbench", "noise.rate=0.2", "epochs=1"]
    method = build_experiment(load_config(None, [*settings, "method=coteaching"])).method
    stems = [net.backbone[0].weight for net in (method.net1, method.net2)]
    random_stem = create_model("airbench", num_classes=4, input_shape=(3, 32, 32)).backbone[0].weight
    assert torch.equal(stems[0], stems[1]) and not torch.allclose(stems[0], random_stem)


def test_model_init_carries_the_whitening_with_the_backbone(tmp_path):
    settings = [f"dataset={_image_file(tmp_path)}", "model.name=airbench", "noise.rate=0.2", "epochs=1"]
    run_experiment(load_config(None, [*settings, f"out={tmp_path / 'run'}", "quiet=true"]))
    fresh = create_model("airbench", num_classes=4, input_shape=(3, 32, 32))
    init_backbone(fresh, tmp_path / "run")
    trained = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    stem_key = next(k for k in trained["method"]["model"] if k.endswith("backbone.0.weight"))
    assert torch.equal(fresh.backbone[0].weight, trained["method"]["model"][stem_key])
