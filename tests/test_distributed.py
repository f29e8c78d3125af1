"""Every method under ``torchrun --nproc_per_node 2`` (gloo, one thread per process) against one process.

Both train the same tiny runs (digits features, a linear model: no BatchNorm or dropout, whose statistics
and masks are per rank by nature) on the same global batches (``tests/distributed_runner.py``), all
methods in one launch each. Every method, and the variants that take other paths (the reference
second-order meta-gradients; the flywheel's contrastive term, which needs a network with a backbone),
gives the single-process result: the same test accuracy, cleanness scores, corrected labels and weights
within float tolerance (the ranks' sums run in another order).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from noisy_labels.methods import list_methods

RUNNER = Path(__file__).with_name("distributed_runner.py")
VARIANTS = ["mwnet_second_order", "emlc_second_order", "flywheel_mlp"]  # tests/distributed_runner.py
EXACT = sorted(list_methods())
RESUMED = "mwnet"


def torchrun(*args: str, ranks: int = 2, port: int) -> subprocess.CompletedProcess:
    """``args`` run by ``ranks`` processes (``python args`` for one), one thread each."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launcher = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nproc_per_node={ranks}",
        f"--master_port={port}",
    ]
    cmd = [*(launcher if ranks > 1 else [sys.executable]), *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def launch(out: Path, methods: list[str], *extra: str, ranks: int, port: int, killed: bool = False) -> None:
    result = torchrun(str(RUNNER), str(out), *methods, *extra, ranks=ranks, port=port)
    err = result.stderr  # the ranks' own errors come first, torchrun's summary of them last
    shown = err if len(err) < 6000 else f"{err[:4000]}\n[...]\n{err[-2000:]}"
    assert (result.returncode != 0) == killed, shown


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("distributed")
    methods = [*EXACT, *VARIANTS]
    launch(root / "one", methods, ranks=1, port=0)
    launch(root / "two", methods, ranks=2, port=29541)
    # 19 batches an epoch: killed in the second epoch, after the first epoch's checkpoint
    launch(root / "resumed", [RESUMED], "--kill-at-step", "25", ranks=2, port=29542, killed=True)
    launch(root / "resumed", [RESUMED], "--resume", ranks=2, port=29544)
    return root


def outputs(run: Path) -> dict:
    found = {"summary": json.loads((run / "summary.json").read_text())}
    for name in ("cleanness", "corrected_labels"):
        if (run / f"{name}.npy").exists():
            found[name] = np.load(run / f"{name}.npy")
    found["model"] = torch.load(run / "checkpoint.pt", weights_only=True)["method"]
    return found


def assert_same_run(one: dict, two: dict) -> None:
    assert two["summary"]["last_test_acc"] == pytest.approx(one["summary"]["last_test_acc"], abs=1e-9)
    assert one.keys() == two.keys()
    for name in ("cleanness", "corrected_labels"):
        if name in one:
            np.testing.assert_allclose(two[name], one[name], atol=1e-5, rtol=1e-5)
    for key, value in one["model"].get("model", {}).items():
        torch.testing.assert_close(two["model"]["model"][key], value, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("method", [*EXACT, *VARIANTS])
def test_two_ranks_train_as_one_process(runs, method):
    assert_same_run(outputs(runs / "one" / method), outputs(runs / "two" / method))


def test_a_killed_run_resumes_under_torchrun_as_if_uninterrupted(runs):
    """Killed in its second epoch (the first epoch's checkpoint written) and resumed: the same as the
    straight run."""
    assert_same_run(outputs(runs / "two" / RESUMED), outputs(runs / "resumed" / RESUMED))


def test_only_rank_zero_prints_the_summary(tmp_path):
    sets = sum((["--set", s] for s in ("dataset=digits", "epochs=1", "quiet=true")), [])
    result = torchrun("-m", "noisy_labels.cli", "run", *sets, "--out", str(tmp_path / "r"), port=29543)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("last_test_acc=") == 1


def test_a_failing_rank_says_which_it_is_and_stops_the_run(tmp_path):
    sets = ["--set", "dataset=digits", "--set", "method=nosuch"]
    result = torchrun("-m", "noisy_labels.cli", "run", *sets, "--out", str(tmp_path / "r"), port=29545)
    assert result.returncode != 0
    assert "noisy-labels run (rank 0 of 2): error: unknown method 'nosuch'" in result.stderr
