"""The paper-scale configs and the commands of benchmarks/PAPERS.md are valid, so a GPU user's copy-paste
fails on the data or the hardware, never on a typo.

``load_config`` checks the keys and the method sections; this also checks what it leaves to run time: the
data set, the model names (the run's and DMLP's SimCLR encoder), the noise protocol with its rate on the
data set's number of classes, and that every ``*_paper.yaml`` is documented and says where its numbers
come from. Nothing is trained here.
"""

import re
import shlex
from pathlib import Path

import numpy as np
import pytest

from noisy_labels.data.noise import PROTOCOLS, apply_noise
from noisy_labels.data.registry import KNOWN_DATASETS
from noisy_labels.engine import load_config
from noisy_labels.engine.build import method_params
from noisy_labels.engine.lazy import LAZY_DATASETS
from noisy_labels.models import list_models

ROOT = Path(__file__).resolve().parents[1]
PAPERS = ROOT / "benchmarks" / "PAPERS.md"
PAPER_CONFIGS = sorted((ROOT / "configs").glob("*_paper.yaml"))
NUM_CLASSES = {"cifar10": 10, "cifar100": 100}


def _commands() -> list[str]:
    """Every ``noisy-labels run ...`` command quoted in backticks on the page."""
    return re.findall(r"`(noisy-labels run [^`]+)`", PAPERS.read_text())


def _parse(command: str) -> tuple[Path, list[str]]:
    args = shlex.split(command)
    assert args[:2] == ["noisy-labels", "run"], command
    config, overrides, rest = None, [], args[2:]
    while rest:
        head = rest.pop(0)
        if head == "--set":
            overrides.append(rest.pop(0))
        elif head.startswith("--"):
            raise AssertionError(f"unexpected option {head!r} in {command!r}")
        else:
            assert config is None, command
            config = ROOT / head
    assert config is not None, command
    return config, overrides


def _check_runnable(cfg) -> None:
    assert cfg.dataset in KNOWN_DATASETS or cfg.dataset in LAZY_DATASETS, cfg.dataset
    models = set(list_models(include_unavailable=True))  # torchvision backbones are an optional extra
    assert cfg.model.name in models, cfg.model.name
    if cfg.method == "dmlp":
        encoder = cfg.method_params["dmlp"].get("simclr_model")
        assert encoder is None or encoder in models, encoder
    protocol = cfg.noise.protocol
    assert protocol == "none" or protocol in PROTOCOLS, protocol
    num_classes = NUM_CLASSES.get(cfg.dataset)
    if num_classes is None or protocol in ("none", "human"):
        return
    labels = np.repeat(np.arange(num_classes), 3)
    extra = {}
    if protocol == "asymmetric":
        extra["dataset"] = cfg.noise.dataset or cfg.dataset
    if protocol == "instance":
        extra["features"] = np.random.default_rng(0).normal(size=(len(labels), 4))
    apply_noise(labels, num_classes=num_classes, protocol=protocol, rate=cfg.noise.rate, seed=0, **extra)


def test_papers_page_lists_commands():
    assert len(_commands()) >= 100


@pytest.mark.parametrize("command", _commands())
def test_papers_command_loads(command):
    config, overrides = _parse(command)
    assert config.is_file(), f"{command}: no file {config}"
    _check_runnable(load_config(config, overrides))


@pytest.mark.parametrize("path", PAPER_CONFIGS, ids=lambda p: p.name)
def test_paper_config_is_runnable_and_documented(path):
    _check_runnable(load_config(path))
    text = path.read_text()
    assert text.startswith("#"), f"{path.name}: open with a comment naming the paper, table and number"
    assert f"configs/{path.name}" in PAPERS.read_text(), f"{path.name} is not on benchmarks/PAPERS.md"


@pytest.mark.parametrize("path", [p for p in PAPER_CONFIGS if "_emlc_" in p.name], ids=lambda p: p.name)
def test_emlc_paper_configs_keep_the_gate_bce_and_select_a_student_not_trained_on_the_clean_set(path):
    """Eq. 12's BCE on half-corrupted clean batches is part of EMLC (sec. 3.6); the clean set selects the
    student (sec. 4.1), which the paper trains on the teacher's labels alone (eq. 6)."""
    params = method_params(load_config(path), "emlc")
    assert params.bce_weight > 0 and params.injection != "none" and params.corrupt_fraction == 0.5
    assert params.select_by_clean and params.student_clean_weight == 0


def test_every_paper_config_has_a_command():
    used = {_parse(c)[0].name for c in _commands()}
    missing = [p.name for p in PAPER_CONFIGS if p.name not in used]
    assert not missing, f"paper configs without a command on benchmarks/PAPERS.md: {missing}"


def test_no_measured_number_is_claimed():
    """Every table row of the commands has the 'Ours' cell; none may hold a number until it is run."""
    for line in PAPERS.read_text().splitlines():
        if line.startswith("| ") and "noisy-labels run" in line:
            assert line.rstrip().endswith("| not run here (no GPU) |"), line
