"""Every paper config runs: each ``configs/*_paper.yaml`` trains in smoke mode (``smoke: true``,
:mod:`noisy_labels.engine.smoke`) on the CPU, so a GPU user's first run never fails on a config.

The models, methods, recipes, views and noise protocols are the configs' own. What differs from a
GPU user's ``noisy-labels run CONFIG --set smoke=true``, so that all of them fit in about three minutes
on one thread (the table at the end of the module gives each config's seconds):

* the data sets are small files in the official layouts: CIFAR-10 the first 2,000 training and every
  50th test image of the real set (rebuilt from ``../shared/data``; without it a synthetic stand-in),
  CIFAR-100 and Clothing1M synthetic stand-ins with their classes (CIFAR-100's superclasses too);
* in-memory images are averaged down to 16x16 pixels once loaded, except for Co-teaching's CNN (whose
  unpadded convolutions need 28 pixels or more: ``FULL_SIZE_MODELS``) (a quarter of every convolution's
  cost; the models pool adaptively, the views and SimCLR's crops run at that size), Clothing1M's are
  decoded at 16 pixels, and its L2B config's trusted set (the whole validation split, 14,313 images)
  is what the stand-in's split holds;
* the Clothing1M configs' torchvision backbones start untrained (no download); without torchvision
  (an optional extra) a registered network of the same depth stands in;
* nothing is written: ``noisy-labels run --set smoke=true`` is checked once, on the CE config.
"""

from __future__ import annotations

import importlib.util
import pickle
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from noisy_labels.cli import main
from noisy_labels.config import Config, config_to_dict
from noisy_labels.data.cifar import CIFAR100_CLASSES, CIFAR100_SUPERCLASSES, cifar100_coarse_labels
from noisy_labels.data.registry import load_dataset
from noisy_labels.engine import ExperimentData, build_experiment, load_config, prepare_data
from noisy_labels.engine.build import checked_config, corrupts_meta
from noisy_labels.engine.smoke import SMOKE
from shared_settings import CLOTHING1M_CLASSES, write_clothing1m

ROOT = Path(__file__).resolve().parents[1]
PAPER_CONFIGS = sorted((ROOT / "configs").glob("*_paper.yaml"))
SIDE = 16  # pixels of the in-memory images once loaded
FULL_SIZE_MODELS = ("cnn9",)  # Co-teaching's CNN: its unpadded convolutions need 28 pixels or more
TRAIN_IMAGES, TEST_IMAGES = 2000, 200  # the small official files (meta.size 1000 needs 100 per class)
# The torchvision backbones of the Clothing1M configs, and a registered network of the same depth
TORCHVISION_STAND_IN = {"resnet50": "resnet50", "resnet18": "preact_resnet18"}
HAS_TORCHVISION = importlib.util.find_spec("torchvision") is not None

pytestmark = pytest.mark.usefixtures("one_thread")

_TIMES: dict[str, tuple[float, float, str]] = {}  # config -> (seconds, CPU seconds, what stood in)


# --------------------------------------------------------------------------------------- data files
def _dump(path: Path, images: np.ndarray, labels: dict[str, np.ndarray]) -> None:
    """One batch file of the official CIFAR python layout (planes of NHWC uint8 ``images``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    batch = {"data": images.transpose(0, 3, 1, 2).reshape(len(images), -1)}
    batch |= {key: [int(v) for v in y] for key, y in labels.items()}
    path.write_bytes(pickle.dumps(batch))


def _write_cifar10(folder: Path, train, test, classes) -> None:
    """``cifar-10-batches-py``: five training files, the test file, the class names."""
    for i, part in enumerate(np.array_split(np.arange(len(train[1])), 5)):
        _dump(folder / f"data_batch_{i + 1}", train[0][part], {"labels": train[1][part]})
    _dump(folder / "test_batch", test[0], {"labels": test[1]})
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": list(classes)}))


def _synthetic(num_classes: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Noise images, the classes in turn."""
    y = np.arange(size) % num_classes
    return np.random.default_rng(seed).integers(0, 256, (size, 32, 32, 3), dtype=np.uint8), y


@pytest.fixture(scope="module")
def cifar10_files(request, tmp_path_factory) -> tuple[Path, str]:
    """A small CIFAR-10 root: a slice of the real set, or a synthetic stand-in without ../shared."""
    folder = tmp_path_factory.mktemp("cifar10")
    try:
        full = load_dataset("cifar10", request.getfixturevalue("cifar10_root"))
    except pytest.skip.Exception as reason:  # no shared data: run on noise images rather than skip
        classes = tuple(str(c) for c in range(10))
        train, test = _synthetic(10, TRAIN_IMAGES, 0), _synthetic(10, TEST_IMAGES, 1)
        _write_cifar10(folder / "cifar-10-batches-py", train, test, classes)
        return folder, f"synthetic CIFAR-10 ({reason})"
    stride = len(full.test) // TEST_IMAGES  # the rebuilt test set is in class order
    train = full.train.x[:TRAIN_IMAGES], full.train.y[:TRAIN_IMAGES]
    test = full.test.x[::stride][:TEST_IMAGES], full.test.y[::stride][:TEST_IMAGES]
    _write_cifar10(folder / "cifar-10-batches-py", train, test, full.train.classes)
    return folder, "CIFAR-10 slice"


@pytest.fixture(scope="module")
def cifar100_files(tmp_path_factory) -> tuple[Path, str]:
    """A synthetic CIFAR-100 root (the real set is not in ../shared/data)."""
    folder = tmp_path_factory.mktemp("cifar100") / "cifar-100-python"
    for name, size, seed in (("train", TRAIN_IMAGES, 0), ("test", TEST_IMAGES, 1)):
        x, y = _synthetic(100, size, seed)
        _dump(folder / name, x, {"fine_labels": y, "coarse_labels": cifar100_coarse_labels(y)})
    names = {"fine_label_names": list(CIFAR100_CLASSES), "coarse_label_names": list(CIFAR100_SUPERCLASSES)}
    (folder / "meta").write_bytes(pickle.dumps(names))
    return folder.parent, "synthetic CIFAR-100"


@pytest.fixture(scope="module")
def clothing1m_files(tmp_path_factory) -> tuple[Path, str]:
    pytest.importorskip("PIL")
    root = tmp_path_factory.mktemp("clothing1m")
    write_clothing1m(root)
    return root, "synthetic Clothing1M"


# --------------------------------------------------------------------------------------- one run
def _settings(cfg: Config, files: tuple[Path, str]) -> tuple[list[str], str]:
    """``--set`` overrides of a smoke run of ``cfg`` on the test's ``files`` (the root and what it is),
    and what stood in for the config's data and model."""
    root, data_note = files
    sets = ["smoke=true", "device=cpu", "quiet=true", f"root={root}"]
    if cfg.dataset != "clothing1m":
        return [*sets, "dataset_options={check_sizes: false}"], f"{data_note}, {SIDE} px"
    trusted = min(cfg.meta.size, CLOTHING1M_CLASSES)  # one image of each class: all the stand-in's split has
    sets += [f"dataset_options.image_size={SIDE}", f"dataset_options.resize={SIDE}", f"meta.size={trusted}"]
    backbone = cfg.model.params["name"]
    if HAS_TORCHVISION:
        return [*sets, "model.params.pretrained=false"], f"{data_note}, untrained {backbone}"
    stand_in = TORCHVISION_STAND_IN[backbone]
    return [*sets, f"model.name={stand_in}", "model.params={}"], f"{data_note}, {stand_in} for {backbone}"


def _downsampled(data: ExperimentData) -> ExperimentData:
    """In-memory images averaged down to ``SIDE`` pixels (lazy ones are decoded at that size)."""

    def small(x: torch.Tensor | None) -> torch.Tensor | None:
        if x is None or not isinstance(x, torch.Tensor) or x.shape[1] == SIDE:
            return x
        n, h, w, c = x.shape
        blocks = x.reshape(n, SIDE, h // SIDE, SIDE, w // SIDE, c).float().mean((2, 4))
        return blocks.round().to(torch.uint8)

    return replace(data, train_x=small(data.train_x), meta_x=small(data.meta_x), test_x=small(data.test_x))


@pytest.fixture(scope="module", autouse=True)
def timing_table(request):
    yield
    _report(request.config)


def _report(config) -> None:
    """Each config's seconds and stand-ins, after the module's runs (in the terminal, without -s)."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None or not _TIMES:
        return
    total = sum(seconds for seconds, _, _ in _TIMES.values())
    cpu = sum(seconds for _, seconds, _ in _TIMES.values())
    lines = [f"paper configs in smoke mode: {len(_TIMES)} in {total:.0f} s ({cpu:.0f} s of CPU, one thread)"]
    for name, (seconds, cpu_seconds, note) in sorted(_TIMES.items(), key=lambda item: -item[1][0]):
        lines.append(f"  {seconds:6.1f} s  {cpu_seconds:6.1f} s CPU  {name:45s} {note}")
    with capture.global_and_fixture_disabled():  # shown without -s
        reporter.write_line("")
        for line in lines:
            reporter.write_line(line)


@pytest.mark.slow
@pytest.mark.parametrize("path", PAPER_CONFIGS, ids=lambda p: p.stem)
def test_paper_config_runs_in_smoke_mode(path, request):
    cfg = load_config(path)
    files = request.getfixturevalue(f"{cfg.dataset}_files")  # written once, not timed
    start, cpu = time.perf_counter(), time.process_time()
    sets, note = _settings(cfg, files)
    cfg = load_config(path, sets)
    data = prepare_data(cfg, torch.device("cpu"), corrupt_meta=corrupts_meta(cfg))
    if cfg.model.name not in FULL_SIZE_MODELS:
        data = _downsampled(data)
    run = build_experiment(cfg, data=data)
    summary = run.engine.fit(run.method, None)
    _TIMES[path.name] = (time.perf_counter() - start, time.process_time() - cpu, note)
    assert summary["epochs"] == cfg.epochs <= 2
    assert np.isfinite(summary["last_test_acc"])
    assert run.ctx.num_train <= SMOKE.train_samples


def _smoke(name: str):
    return load_config(ROOT / "configs" / f"{name}_paper.yaml", ["smoke=true"])


def test_smoke_mode_caps_the_loop_and_every_warm_up():
    flywheel = _smoke("cifar10_flywheel_sym50")  # a 10-epoch warm-up: 1, then 1 epoch of the method
    assert (flywheel.epochs, flywheel.batch_size, flywheel.batches_per_epoch) == (2, 8, None)
    assert flywheel.method_params["flywheel"]["warmup_epochs"] == 1
    assert flywheel.method_params["flywheel"]["cr_lambda"] == 3.0  # the recipe stays
    weighting = _smoke("cifar10_rmnwnet_unif40")  # no warm-up: 1 epoch
    assert weighting.epochs == 1 and weighting.method_params["rmnwnet"]["meta_batch_size"] == 8
    assert _smoke("clothing1m_l2b").batches_per_epoch == 2
    plain = load_config(ROOT / "configs" / "cifar10_flywheel_sym50_paper.yaml")
    assert (plain.epochs, plain.batch_size) == (300, 128)
    assert plain.method_params["flywheel"]["warmup_epochs"] == 10


def test_smoke_mode_caps_dmlp_stages_and_the_method_it_trains():
    cfg = _smoke("cifar10_dmlp_dividemix_sym50")
    dmlp = cfg.method_params["dmlp"]
    stages = ("simclr_epochs", "simclr_max_images", "epochs", "exchange_every")
    assert [dmlp[key] for key in stages] == [1, 8, 2, 1]
    assert dmlp["simclr_model"] == "resnet50" and dmlp["then"] == "dividemix"
    assert cfg.method_params["dividemix"]["warmup_epochs"] == 1 and cfg.epochs == 2


def test_smoke_caps_hold_when_read_back():
    """A smoke run's config.yaml is read again on --resume: capping again changes nothing."""
    for name in ("cifar10_dmlp_dividemix_sym50", "cifar100_emlc_sym50", "clothing1m_flywheel"):
        cfg = _smoke(name)
        assert checked_config(config_to_dict(cfg)) == cfg


def test_run_command_in_smoke_mode(tmp_path, cifar10_files):
    """``noisy-labels run CONFIG --set smoke=true``: the run directory of a smoke run (32-pixel images)."""
    root = cifar10_files[0]
    out = tmp_path / "run"
    sets = ["smoke=true", f"root={root}", "dataset_options={check_sizes: false}", "device=cpu", "quiet=true"]
    args = ["run", str(ROOT / "configs" / "cifar10_ce_sym50_paper.yaml"), "--out", str(out)]
    main([*args, *(a for s in sets for a in ("--set", s))])
    written = yaml.safe_load((out / "config.yaml").read_text())
    assert written["smoke"] is True and (written["epochs"], written["batch_size"]) == (1, 8)
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1
    split = np.load(out / "split.npz")
    assert len(split["train_index"]) == SMOKE.train_samples
    assert len(split["meta_index"]) == 10 * SMOKE.meta_per_class
