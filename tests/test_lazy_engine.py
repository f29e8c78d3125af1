"""Training from image lists decoded per batch (Clothing1M layout) through `noisy-labels run`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from noisy_labels.cli import main
from noisy_labels.engine.lazy import balanced_draw
from shared_settings import CLOTHING1M_CLASSES as CLASSES
from shared_settings import clothing1m_colours as _colours
from shared_settings import write_clothing1m as _write_clothing1m

pytest.importorskip("PIL.Image")  # write_clothing1m draws the images with Pillow


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


def test_lazy_images_decode_per_batch_and_batches_are_class_balanced(clothing):
    from noisy_labels.engine import Engine, TrainingContext, load_config, prepare_data

    sets = ["dataset=clothing1m", f"root={clothing}", "dataset_options={image_size: 16, resize: 16}",
            "noise.protocol=none", "meta.size=14", "batch_size=14", "batches_per_epoch=3"]  # fmt: skip
    cfg = load_config(None, sets)
    data = prepare_data(cfg, torch.device("cpu"), corrupt_meta=False)
    colours = np.array(_colours())
    images = data.train_x[torch.arange(len(data.train_y))].numpy()  # (N, 16, 16, 3) uint8, decoded now
    given = data.train_y.numpy()
    # Flat colours survive JPEG to a few levels: every image decodes to its folder's (true class's) colour.
    nearest = np.abs(images.reshape(len(images), -1, 3).mean(1)[:, None] - colours[None]).sum(2).argmin(1)
    folders = [int(Path(path).parent.name) for path in data.train_x.dataset.paths]
    assert nearest.tolist() == folders and (np.array(folders) != given).any()  # labels are noisy, pixels not
    assert sorted(data.meta_y.tolist()) == list(range(CLASSES))  # one trusted image per class
    order = Engine(cfg, data, TrainingContext(cfg, data, torch.device("cpu")))._epoch_order()
    assert len(order) == 42 and np.bincount(given[order.numpy()], minlength=CLASSES).tolist() == [3] * CLASSES


@pytest.mark.parametrize("method", ["ce", "l2rw"])
def test_clothing1m_layout_trains_through_run(tmp_path, clothing, method):
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
