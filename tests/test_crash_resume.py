"""Crash tests: every registered method, killed with SIGKILL mid-epoch or halfway through a checkpoint
write and then resumed, ends exactly where the uninterrupted run ends (metrics, per-sample outputs)."""

import json
import os
import random
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from noisy_labels.engine import load_config, run_experiment
from noisy_labels.methods import list_methods
from shared_settings import settings_for

EPOCHS = 3
CRASH_RUN = Path(__file__).with_name("crash_run.py")


def _settings(name: str) -> list[str]:
    return [*settings_for(name), f"epochs={EPOCHS}", "checkpoint_every=1"]


def kill_point(name: str) -> tuple[str, int]:
    """A reproducible point per method: a batch of the first two epochs, or the 1st/2nd checkpoint write."""
    rng = random.Random(name)
    if rng.random() < 0.5:
        return "checkpoint", rng.choice([1, 2])
    return "step", rng.randint(2, 10)


def _crash(name: str, out: Path) -> subprocess.CompletedProcess:
    mode, n = kill_point(name)
    args = [*sum((["--set", s] for s in _settings(name)), []), "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(CRASH_RUN), mode, str(n), "--", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture(scope="module")
def crashed(tmp_path_factory) -> dict[str, tuple[Path, subprocess.CompletedProcess]]:
    """Every method's killed run, two child processes at a time (one torch thread each)."""
    root = tmp_path_factory.mktemp("crashed")
    with ThreadPoolExecutor(2) as pool:
        futures = {name: pool.submit(_crash, name, root / name) for name in list_methods()}
        return {name: (root / name, f.result()) for name, f in futures.items()}


def _epochs(run_dir: Path) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(x).items() if "seconds" not in k} for x in lines]


@pytest.mark.parametrize("name", list_methods())
def test_killed_and_resumed_run_equals_the_uninterrupted_one(crashed, tmp_path, name):
    killed, proc = crashed[name]
    assert proc.returncode == -9, f"{kill_point(name)} did not kill the run: {proc.stderr[-500:]}"
    assert not (killed / "summary.json").exists()
    full = run_experiment(load_config(None, [*_settings(name), f"out={tmp_path / 'full'}"]))
    resumed = run_experiment(load_config(None, [f"out={killed}"]), resume=True)
    assert _epochs(killed) == _epochs(tmp_path / "full")  # one line per epoch, the same numbers
    for key in ("best_test_acc", "last_test_acc", "label_acc", "cleanness_auc"):
        assert resumed.get(key) == full.get(key), key
    for output in ("cleanness.npy", "corrected_labels.npy"):
        if (tmp_path / "full" / output).exists():
            assert np.array_equal(np.load(killed / output), np.load(tmp_path / "full" / output)), output
