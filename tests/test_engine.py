"""The training engine: run directories, determinism, resume after a kill, DDP, progress and errors."""

import json
import os
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest
import torch

from noisy_labels.engine import load_config, run_experiment

FAST = ["dataset=digits", "epochs=3", "quiet=true", "noise.rate=0.4", "batch_size=64"]


def run(tmp_path, *settings, name="run", **kwargs):
    cfg = load_config(None, [*FAST, *settings, f"out={tmp_path / name}"])
    return run_experiment(cfg, **kwargs)


def write_blobs(path, n=1024, d=32, classes=4, seed=0, n_test=512):
    """Gaussian blobs as a practitioner's features file (a data set given by path)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1.0, (classes, d))
    y = rng.integers(0, classes, n + n_test)
    x = (centres[y] + rng.normal(0, 1.5, (n + n_test, d))).astype(np.float32)
    np.savez(path, x=x[:n], y=y[:n], x_test=x[n:], y_test=y[n:])
    return path


def test_run_leaves_the_contracted_files(tmp_path):
    summary = run(tmp_path)
    out = tmp_path / "run"
    disk = json.loads((out / "summary.json").read_text())
    for key in ("best_test_acc", "last_test_acc", "epochs", "seconds"):
        assert key in disk
    assert 0.0 <= disk["last_test_acc"] <= disk["best_test_acc"] <= 1.0
    assert disk["epochs"] == 3 and summary["best_test_acc"] == disk["best_test_acc"]
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2, 3]
    noise = json.loads((out / "noise.json").read_text())
    assert noise["protocol"] == "symmetric" and abs(noise["realised_rate"] - 0.4) < 0.05
    split = np.load(out / "split.npz")
    assert len(split["noisy_labels"]) == len(split["train_index"])
    assert (out / "config.yaml").exists() and (out / "checkpoint.pt").exists()


def test_existing_run_directory_is_never_overwritten_silently(tmp_path):
    run(tmp_path, "epochs=1")
    before = (tmp_path / "run" / "summary.json").read_text()
    with pytest.raises(FileExistsError, match="--overwrite"):
        run(tmp_path, "epochs=1")
    assert (tmp_path / "run" / "summary.json").read_text() == before
    run(tmp_path, "epochs=1", "seed=1", overwrite=True)
    assert (tmp_path / "run" / "summary.json").read_text() != before


def test_same_seed_same_result_other_seed_differs(tmp_path):
    a = run(tmp_path, "model.name=mlp", name="a")
    b = run(tmp_path, "model.name=mlp", name="b")
    c = run(tmp_path, "model.name=mlp", "seed=1", name="c")
    hist = [(tmp_path / n / "metrics.jsonl").read_text() for n in "abc"]
    strip = [
        [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in h.splitlines()]
        for h in hist
    ]
    assert strip[0] == strip[1]
    assert strip[0] != strip[2]
    assert a["best_test_acc"] == b["best_test_acc"] and a["seed"] != c["seed"]


def test_meta_method_without_meta_set_is_an_error(tmp_path):
    from noisy_labels.methods import Method
    from noisy_labels.methods.base import _REGISTRY

    class NeedsMeta(Method, name="needs_meta_test_only"):
        requires_meta = True

    try:
        with pytest.raises(ValueError, match="meta.size"):
            run(tmp_path, "method=needs_meta_test_only")
    finally:
        _REGISTRY.pop("needs_meta_test_only")


def test_image_batches_are_augmented_and_balanced_sampling_balances(tmp_path):
    from noisy_labels.engine import Engine, TrainingContext, prepare_data

    cfg = load_config(None, ["dataset=digits", "batches_per_epoch=5", "batch_size=100", "seed=3"])
    data = prepare_data(cfg, torch.device("cpu"), corrupt_meta=False)
    engine = Engine(cfg, data, TrainingContext(cfg, data, torch.device("cpu")))
    labels = torch.cat([b.y for b in engine.batches()])
    assert len(labels) == 500
    counts = torch.bincount(labels, minlength=10)
    assert counts.max() - counts.min() <= 1


def test_resume_after_kill_matches_an_uninterrupted_run(tmp_path):
    data = write_blobs(tmp_path / "blobs.npz", n=20000, d=64, classes=5)
    settings = [
        f"dataset={data}",
        "model.name=mlp",
        "model.params={hidden: [256, 256]}",
        "epochs=8",
        "noise.rate=0.5",
        "batch_size=64",
        "quiet=true",
    ]
    full = run_experiment(load_config(None, [*settings, f"out={tmp_path / 'full'}"]))
    killed = tmp_path / "killed"
    cmd = [
        sys.executable,
        "-m",
        "noisy_labels.cli",
        "run",
        *sum((["--set", s] for s in settings), []),
        "--out",
        str(killed),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    metrics = killed / "metrics.jsonl"
    while time.time() < deadline and proc.poll() is None:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 3:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed mid-way"
    assert not (killed / "summary.json").exists()
    resumed = run_experiment(load_config(None, [f"out={killed}"]), resume=True)
    for key in ("best_test_acc", "last_test_acc", "best_epoch", "epochs"):
        assert resumed[key] == full[key], key
    a = [json.loads(x)["test_acc"] for x in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    b = [json.loads(x)["test_acc"] for x in metrics.read_text().splitlines()]
    assert a == b


@pytest.mark.slow
def test_ddp_two_processes_match_one_process(tmp_path):
    data = write_blobs(tmp_path / "blobs.npz", n=1024, d=16, classes=4)
    settings = [
        f"dataset={data}",
        "model.name=linear",
        "epochs=3",
        "batch_size=64",
        "noise.rate=0.3",
        "quiet=true",
        "optim.weight_decay=0.0",
    ]
    single = run_experiment(load_config(None, [*settings, f"out={tmp_path / 'one'}"]))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_port=29533",
        "-m",
        "noisy_labels.cli",
        "run",
        *sum((["--set", s] for s in settings), []),
        "--out",
        str(tmp_path / "two"),
    ]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    two = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert two["last_test_acc"] == pytest.approx(single["last_test_acc"], abs=0.01)
    w1 = torch.load(tmp_path / "one" / "checkpoint.pt", weights_only=True)["method"]["model"]
    w2 = torch.load(tmp_path / "two" / "checkpoint.pt", weights_only=True)["method"]["model"]
    for key in w1:
        torch.testing.assert_close(w1[key], w2[key], atol=1e-4, rtol=1e-4)


def test_cifar10_images_with_cifar10n_labels_and_augmentation(tmp_path, cifar10_root, shared_data):
    human = shared_data / "cifar-n" / "CIFAR-10_human.pt"
    summary = run_experiment(
        load_config(
            None,
            [
                "dataset=cifar10",
                f"root={cifar10_root}",
                f"dataset_options={{human_labels: '{human}'}}",
                "noise.protocol=human",
                "noise.label_set=aggre",
                "train_subset=1000",
                "meta.size=100",
                "epochs=3",
                "batch_size=100",
                "quiet=true",
                f"out={tmp_path / 'c10'}",
            ],
        )
    )
    assert summary["model"] == "small_cnn" and summary["num_train"] == 900
    assert 0.05 < summary["realised_rate"] < 0.14  # aggre is 9% noisy
    assert summary["last_test_acc"] > 0.15  # above chance (0.10) after three epochs on 900 images (0.18 here)


def test_weak_and_cutout_jitter_views_differ_but_keep_shape():
    from noisy_labels.engine.augment import BatchPreparer

    g = torch.Generator().manual_seed(0)
    raw = torch.randint(0, 256, (8, 32, 32, 3), dtype=torch.uint8)
    prep = BatchPreparer(
        is_image=True, mean=torch.full((3,), 0.5), std=torch.full((3,), 0.25), crop_padding=4, flip=True
    )
    test, weak, strong = prep(raw, "test"), prep(raw, "weak", g), prep(raw, "cutout_jitter", g)
    assert test.shape == weak.shape == strong.shape == (8, 3, 32, 32)
    torch.testing.assert_close(test, (raw.permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.25)
    assert not torch.equal(test, weak) and not torch.equal(weak, strong)
    # A pure translation keeps each image's pixels (up to the zero padding that enters).
    shifted = prep.__class__(is_image=True, mean=torch.zeros(3), std=torch.ones(3), crop_padding=2)(
        raw, "weak", g
    )
    assert (shifted * 255).round().to(torch.uint8).unique().numel() <= raw.unique().numel() + 1


def test_asymmetric_noise_through_run(tmp_path):
    # The protocol's `dataset` option must not collide with make_noisy_split's data set argument.
    summary = run(
        tmp_path, "noise.protocol=asymmetric", "noise.dataset=cifar10", "noise.rate=0.4", "epochs=1"
    )
    noise = json.loads((tmp_path / "run" / "noise.json").read_text())
    assert noise["protocol"] == "asymmetric" and summary["realised_rate"] > 0.05


def test_a_step_far_too_large_is_reported(tmp_path):
    """The papers' lr 0.1 with momentum 0.9 on a linear head over 1,280 standardised features oscillates;
    here a deliberately huge step on digits must trip the same warning, the default must not."""
    sets = ["dataset=digits", "epochs=1", "quiet=true", "noise.rate=0.5"]
    with pytest.warns(UserWarning, match="step size"):
        run_experiment(load_config(None, [*sets, "optim.lr=20", f"out={tmp_path / 'huge'}"]))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        run_experiment(load_config(None, [*sets, f"out={tmp_path / 'default'}"]))
