"""Settings shared by several test modules (imported by name: pytest puts this folder on sys.path)."""

import contextlib
from pathlib import Path

import numpy as np
import torch


@contextlib.contextmanager
def one_torch_thread():
    """Small ops on a shared 2-core machine: a second thread only adds contention (see performance.md)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def three_epochs_and_two_plus_one(tmp_path, settings: list[str]):
    """``(full, resumed, checkpointed method state)``: 3 epochs in one go, and 2 epochs resumed for a 3rd."""
    from noisy_labels.engine import load_config, run_experiment

    full = run_experiment(load_config(None, [*settings, "epochs=3", f"out={tmp_path / 'full'}"]))
    part = tmp_path / "part"
    run_experiment(load_config(None, [*settings, "epochs=2", f"out={part}"]))
    state = torch.load(part / "checkpoint.pt", weights_only=False)["method"]
    resumed = run_experiment(load_config(None, [f"out={part}"]), resume=True, changes={"epochs": 3})
    return full, resumed, state


#: MNIST with 60% uniform noise and a 1,000-sample meta set, MLP, CPU-sized: the "beats CE" problem of
#: the meta methods (issues 4 and 6). CE ends near 0.55 here; a working meta-gradient reaches 0.8-0.9.
MNIST_UNIF60 = [
    "dataset=mnist",
    "train_subset=4000",
    "meta.size=1000",
    "noise.protocol=uniform",
    "noise.rate=0.6",
    "model.name=mlp",
    "model.params={hidden: [128]}",
    "augment.crop_padding=0",
    "epochs=20",
    "batch_size=100",
    "optim.lr=0.1",
    "optim.momentum=0.0",
    "optim.weight_decay=0.0",
    "schedule.name=constant",
    "quiet=true",
]


def noisy_blobs(n=1500, n_clean=100, d=20, c=4, noise=0.5, scale=1.2, seed=0):
    """Gaussian blobs (closer for smaller ``scale``) with symmetric noise on the training part.

    Returns the noisy training features and labels, the clean set's features and labels, and the
    training part's true labels.
    """
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(c, d)) * scale
    y = rng.integers(0, c, n + n_clean)
    y[n:] = np.arange(n_clean) % c
    x = centres[y] + rng.normal(size=(n + n_clean, d))
    flip = rng.random(n) < noise
    noisy = y[:n].copy()
    noisy[flip] = (y[:n][flip] + rng.integers(1, c, flip.sum())) % c
    return x[:n], noisy, x[n:], y[n:], y[:n]


def tiny_image_set(path):
    """300 grey 16x16 images of 3 classes (a bright square in a class-specific corner) as an .npz data set:
    240 for training, 60 for testing."""
    rng = np.random.default_rng(0)
    y = np.arange(300) % 3
    x = rng.integers(0, 60, (300, 16, 16, 1)).astype(np.uint8)
    for c, (r, s) in enumerate([(0, 0), (8, 8), (0, 8)]):
        x[y == c, r : r + 8, s : s + 8] += 150
    np.savez(path, x=x[:240], y=y[:240], x_test=x[240:], y_test=y[240:])
    return path


def settings_for(name: str) -> list[str]:
    """A short CPU job for any registered method: digits, 2 epochs, an MLP (a small CNN for image-only
    methods), a meta set where the method takes one."""
    from noisy_labels.methods import get_method_class

    cls = get_method_class(name)
    s = [
        "dataset=digits",
        "train_subset=600",
        f"method={name}",
        "epochs=2",
        "batch_size=100",
        "noise.rate=0.4",
        "quiet=true",
        "model.name=mlp",
        "model.params={hidden: [64]}",
        "optim.lr=0.05",
    ]
    if cls.requires_meta:
        s.append("meta.size=100")
    if not cls.supports_features:
        s += ["dataset_options={form: images}", "model.name=small_cnn", "model.params={}"]
    return s


CLOTHING1M_CLASSES = 14


def clothing1m_colours() -> list[tuple[int, int, int]]:
    rng = np.random.default_rng(0)
    return [tuple(int(v) for v in rng.integers(0, 256, 3)) for _ in range(CLOTHING1M_CLASSES)]


def write_clothing1m(root: Path, per_class: int = 3) -> None:
    """A tiny Clothing1M tree: class c is a flat colour (``clothing1m_colours()[c]``); of each class's
    ``3 * per_class`` images a third each trains, is clean training data, and validates and tests."""
    from PIL import Image

    lines: dict[str, list[str]] = {"noisy": [], "clean": [], "train": [], "ctrain": [], "val": [], "test": []}
    for c, colour in enumerate(clothing1m_colours()):
        for i in range(per_class * 3):
            key = f"images/{c}/{i}.jpg"
            (root / key).parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (20, 18), colour).save(root / key)
            role = ("train", "ctrain", "test")[i % 3]
            lines[role].append(key)
            noisy = c if i % 2 == 0 else (c + 1) % CLOTHING1M_CLASSES  # half of the noisy labels are wrong
            lines["noisy"].append(f"{key} {noisy}")
            lines["clean"].append(f"{key} {c}")
    (root / "noisy_label_kv.txt").write_text("\n".join(lines["noisy"]) + "\n")
    (root / "clean_label_kv.txt").write_text("\n".join(lines["clean"]) + "\n")
    (root / "noisy_train_key_list.txt").write_text("\n".join(lines["train"]) + "\n")
    (root / "clean_train_key_list.txt").write_text("\n".join(lines["ctrain"]) + "\n")
    (root / "clean_val_key_list.txt").write_text("\n".join(lines["test"]) + "\n")
    (root / "clean_test_key_list.txt").write_text("\n".join(lines["test"]) + "\n")
