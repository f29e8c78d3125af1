"""SimCLR: NT-Xent against a naive loop, the augmentations, and a MNIST linear probe that beats raw pixels."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from noisy_labels.ssl import SimCLRParams, extract_features, nt_xent_loss, simclr_views, train_simclr
from noisy_labels.ssl.simclr import image_stats
from shared_settings import tiny_image_set

MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: small ops, one thread


def test_nt_xent_matches_a_naive_loop():
    g = torch.Generator().manual_seed(0)
    z1, z2, tau = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g), 0.3
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    n, total = 5, 0.0
    for i in range(2 * n):
        j = (i + n) % (2 * n)
        others = [math.exp(float(z[i] @ z[k]) / tau) for k in range(2 * n) if k != i]
        total += -math.log(math.exp(float(z[i] @ z[j]) / tau) / sum(others))
    assert float(nt_xent_loss(z1, z2, tau)) == pytest.approx(total / (2 * n), rel=1e-5)


@pytest.mark.parametrize("channels", [1, 3])
def test_views_are_random_normalised_and_keep_the_shape(channels):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (8, 16, 16, channels), dtype=torch.uint8, generator=g)
    mean, std = image_stats(images)
    a = simclr_views(images, SimCLRParams(), mean, std, g)
    b = simclr_views(images, SimCLRParams(), mean, std, g)
    assert a.shape == (8, channels, 16, 16) and a.dtype == torch.float32
    assert not torch.allclose(a, b)  # two draws differ
    assert abs(float(a.mean())) < 0.5


def test_simclr_rejects_float_images():
    with pytest.raises(ValueError, match="uint8"):
        train_simclr(torch.nn.Flatten(), torch.zeros(4, 8, 8, 1), feature_dim=64)


@pytest.mark.skipif(not MNIST.is_dir(), reason="needs the shared MNIST files")
def test_simclr_features_beat_raw_pixels_in_a_linear_probe():
    """MNIST, 5000 unlabelled images, 10 epochs of an MLP encoder (~25 s on one core).

    The probe has 20 labels per class (DMLP's regime: a small clean set) and is scored on 2000 test
    images. SimCLR must beat both raw pixels and the same network untrained, so a loss that does not
    learn (a wrong positive index, no normalisation) fails.
    """
    from sklearn.linear_model import LogisticRegression

    from noisy_labels.data.mnist import load_mnist
    from noisy_labels.models import create_model

    bundle = load_mnist(MNIST)
    order = np.random.default_rng(0).permutation(len(bundle.train.y))[:5000]
    images, labels = torch.from_numpy(bundle.train.x[order]), bundle.train.y[order]
    labelled = np.concatenate([np.flatnonzero(labels == c)[:20] for c in range(10)])
    test_x, test_y = bundle.test.x[:2000], bundle.test.y[:2000]

    def probe(train_feats, test_feats):
        mu, sd = train_feats.mean(0), train_feats.std(0) + 1e-6
        clf = LogisticRegression(max_iter=2000).fit((train_feats - mu) / sd, labels[labelled])
        return clf.score((test_feats - mu) / sd, test_y)

    raw = probe(bundle.train.x[order][labelled].reshape(200, -1) / 255.0, test_x.reshape(2000, -1) / 255.0)
    torch.manual_seed(0)
    net = create_model("mlp", num_classes=10, input_shape=(1, 28, 28), hidden=(512, 128))
    mean, std = image_stats(images)

    def features(x):
        return extract_features(net.backbone, x, mean=mean, std=std)

    untrained = probe(features(images[labelled]), features(test_x))
    history = train_simclr(net.backbone, images, SimCLRParams(epochs=10), feature_dim=net.feature_dim, seed=0)
    assert history[-1]["loss"] < history[0]["loss"] - 0.3
    simclr = probe(features(images[labelled]), features(test_x))
    assert simclr > raw + 0.02, (simclr, raw)
    assert simclr > untrained + 0.08, (simclr, untrained)


@pytest.mark.skipif(not MNIST.is_dir(), reason="needs the shared MNIST files")
def test_lars_recipe_learns_on_mnist():
    """The paper's optimisation (LARS, lr x B / 256, warm-up then cosine) lowers NT-Xent from chance.

    Only the loss is checked: at CPU scale (a few hundred steps) LARS's small trust ratio moves the
    weights too little for the linear probe to beat raw pixels reliably; Adam (above) is the CPU recipe.
    """
    from noisy_labels.data.mnist import load_mnist
    from noisy_labels.models import create_model

    bundle = load_mnist(MNIST)
    order = np.random.default_rng(0).permutation(len(bundle.train.y))[:2000]
    torch.manual_seed(0)
    net = create_model("mlp", num_classes=10, input_shape=(1, 28, 28), hidden=(512, 128))
    params = SimCLRParams(epochs=6, optimizer="lars", lr=1.0, lr_scaling="linear", warmup_epochs=1)
    history = train_simclr(
        net.backbone, torch.from_numpy(bundle.train.x[order]), params, feature_dim=net.feature_dim, seed=0
    )
    assert history[0]["loss"] < math.log(2 * 256 - 1) and history[-1]["loss"] < history[0]["loss"] - 0.4


def test_features_command_simclr_cache_and_checkpoint(tmp_path, capsys):
    """``noisy-labels features``: SimCLR -> an .npz data set; the cache; a run's checkpoint as backbone."""
    from noisy_labels.cli import main
    from noisy_labels.data.features import load_features

    data = tiny_image_set(tmp_path / "tiny.npz")
    out = tmp_path / "feats.npz"
    args = [
        "features",
        "--dataset",
        str(data),
        "--out",
        str(out),
        "--simclr",
        "--simclr-epochs",
        "1",
        "--quiet",
    ]
    assert main(args) == 0
    assert "simclr small_cnn" in capsys.readouterr().out
    bundle = load_features(out)
    assert bundle.train.x.shape == (240, 128) and bundle.test.x.shape == (60, 128)
    np.testing.assert_array_equal(bundle.train.y, np.arange(240) % 3)
    assert (tmp_path / "feats.encoder.pt").is_file()
    stamp = out.stat().st_mtime_ns
    assert main(args) == 0 and "reusing" in capsys.readouterr().out and out.stat().st_mtime_ns == stamp
    # The features are a data set: a linear head trains on them.
    run = tmp_path / "run"
    assert (
        main(
            ["run", "--set", f"dataset={out}", "--set", "epochs=1", "--set", "quiet=true", "--out", str(run)]
        )
        == 0
    )
    # A run's trained network as the backbone (model 'auto' resolved from the checkpoint's weights).
    img_run = tmp_path / "img-run"
    assert (
        main(
            [
                "run",
                "--set",
                f"dataset={data}",
                "--set",
                "epochs=1",
                "--set",
                "quiet=true",
                "--out",
                str(img_run),
            ]
        )
        == 0
    )
    out2 = tmp_path / "from-run.npz"
    assert (
        main(
            ["features", "--dataset", str(data), "--checkpoint", str(img_run), "--out", str(out2), "--quiet"]
        )
        == 0
    )
    assert load_features(out2).train.x.shape == (240, 128)
    bad = [
        "features",
        "--dataset",
        str(data),
        "--checkpoint",
        str(tmp_path),
        "--out",
        str(tmp_path / "x.npz"),
    ]
    assert main(bad) == 2
    assert "not a run directory" in capsys.readouterr().err
