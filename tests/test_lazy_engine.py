"""Training from image lists decoded per batch (Clothing1M layout) through `noisy-labels run`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from noisy_labels.cli import main
from noisy_labels.engine.lazy import balanced_draw

Image = pytest.importorskip("PIL.Image")

CLASSES = 14


def _write_clothing1m(root: Path, per_class: int = 3) -> None:
    """A tiny Clothing1M tree: class c is a flat colour, so a CNN can learn it in a few steps."""
    rng = np.random.default_rng(0)
    lines: dict[str, list[str]] = {"noisy": [], "clean": [], "train": [], "ctrain": [], "val": [], "test": []}
    for c in range(CLASSES):
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        for i in range(per_class * 3):
            key = f"images/{c}/{i}.jpg"
            (root / key).parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (20, 18), colour).save(root / key)
            role = ("train", "ctrain", "test")[i % 3]
            lines[role].append(key)
            noisy = c if i % 2 == 0 else (c + 1) % CLASSES  # half of the noisy labels are wrong
            lines["noisy"].append(f"{key} {noisy}")
            lines["clean"].append(f"{key} {c}")
    (root / "noisy_label_kv.txt").write_text("\n".join(lines["noisy"]) + "\n")
    (root / "clean_label_kv.txt").write_text("\n".join(lines["clean"]) + "\n")
    (root / "noisy_train_key_list.txt").write_text("\n".join(lines["train"]) + "\n")
    (root / "clean_train_key_list.txt").write_text("\n".join(lines["ctrain"]) + "\n")
    (root / "clean_val_key_list.txt").write_text("\n".join(lines["test"]) + "\n")
    (root / "clean_test_key_list.txt").write_text("\n".join(lines["test"]) + "\n")


@pytest.fixture(scope="module")
def clothing(tmp_path_factory):
    root = tmp_path_factory.mktemp("clothing1m")
    _write_clothing1m(root)
    return root


def _run(tmp_path, root, *sets):
    args = ["run", "--out", str(tmp_path / "run")]
    base = [
        "dataset=clothing1m",
        f"root={root}",
        "dataset_options={image_size: 16, resize: 16}",
        "noise.protocol=none",
        "model.name=small_cnn",
        "epochs=2",
        "batch_size=14",
        "batches_per_epoch=3",
        "quiet=true",
        *sets,
    ]
    for s in base:
        args += ["--set", s]
    return main(args)


@pytest.mark.parametrize("method", ["ce", "l2rw"])
def test_clothing1m_layout_trains_with_class_balanced_batches(tmp_path, clothing, method):
    meta = "meta.size=14" if method == "l2rw" else "meta.size=0"
    assert _run(tmp_path, clothing, f"method={method}", meta) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["epochs"] == 2 and summary["num_train"] == 42 and 0.0 <= summary["last_test_acc"] <= 1.0
    history = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    assert len(history) == 2 and all("test_acc" in h for h in history)


def test_real_noise_rejects_synthetic_protocols(tmp_path, clothing, capsys):
    assert _run(tmp_path, clothing, "noise.protocol=symmetric", "noise.rate=0.4") == 2
    assert "real label noise: set noise.protocol=none" in capsys.readouterr().err


def test_meta_set_larger_than_the_trusted_images_is_an_error(tmp_path, clothing, capsys):
    assert _run(tmp_path, clothing, "method=l2rw", "meta.size=500") == 2
    assert "meta.size=500 is larger than the 42 trusted images" in capsys.readouterr().err


def test_balanced_draw_spreads_over_classes():
    labels = np.array([0] * 10 + [1] * 2 + [2] * 10)
    picked = balanced_draw(labels, 9, 3, seed=0)
    counts = np.bincount(labels[picked], minlength=3)
    assert len(set(picked.tolist())) == 9 and counts.tolist() == [4, 2, 3]  # rounds of one per class
