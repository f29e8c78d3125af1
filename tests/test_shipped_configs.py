"""Every shipped config parses and validates, so a typo in one fails here rather than on a user's GPU."""

from pathlib import Path

import pytest

from noisy_labels.engine import load_config
from noisy_labels.engine.run import default_run_dir

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


def test_configs_are_shipped():
    assert len(CONFIGS) >= 4


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_loads(path):
    cfg = load_config(path)
    assert cfg.epochs >= 1 and cfg.method
    assert default_run_dir(cfg).name.startswith(Path(cfg.dataset).stem)
