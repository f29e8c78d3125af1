"""Registry-driven checks: every registered method runs a short CPU job, deterministically, and its
per-sample outputs have the right shape. A new method gets these checks by registering itself."""

import json

import numpy as np
import pytest

from noisy_labels.engine import load_config, run_experiment
from noisy_labels.methods import list_methods
from shared_settings import settings_for


@pytest.mark.parametrize("name", list_methods())
def test_method_runs_deterministically(tmp_path, name):
    runs = []
    for tag in ("a", "b"):
        summary = run_experiment(load_config(None, [*settings_for(name), f"out={tmp_path / tag}"]))
        assert 0.0 <= summary["last_test_acc"] <= 1.0
        lines = (tmp_path / tag / "metrics.jsonl").read_text().splitlines()
        runs.append([{k: v for k, v in json.loads(x).items() if k != "seconds"} for x in lines])
    assert runs[0] == runs[1], f"{name} is not deterministic on the CPU"
    n_train = len(np.load(tmp_path / "a" / "split.npz")["train_index"])
    for output in ("cleanness.npy", "corrected_labels.npy"):
        path = tmp_path / "a" / output
        if path.exists():
            values = np.load(path)
            assert len(values) == n_train and np.all(np.isfinite(values)), output
