"""The command line's contracts, called in-process through ``main`` (and once as a real console script)."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from noisy_labels.cli import main
from noisy_labels.methods import list_methods

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def test_noise_contract(tmp_path):
    labels = np.repeat(np.arange(10), 2000)
    np.save(tmp_path / "in.npy", labels)
    out = tmp_path / "noisy.npy"
    args = [
        "noise",
        "--labels",
        str(tmp_path / "in.npy"),
        "--num-classes",
        "10",
        "--protocol",
        "asymmetric",
        "--rate",
        "0.4",
        "--seed",
        "3",
        "--dataset",
        "cifar10",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    noisy = np.load(out)
    assert noisy.dtype == np.int64 and noisy.shape == labels.shape
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["protocol"] == "asymmetric" and record["rate"] == 0.4
    assert record["realised_rate"] == pytest.approx((noisy != labels).mean())
    transition = np.array(record["transition"])
    assert transition.shape == (10, 10) and np.allclose(transition.sum(1), 1.0)
    assert transition[9, 1] == pytest.approx(0.4) and transition[0, 0] == 1.0
    # Same seed, same labels; an existing output is not overwritten without --overwrite.
    assert main(args) == 2
    assert main([*args, "--overwrite"]) == 0
    np.testing.assert_array_equal(np.load(out), noisy)


def test_noise_rejects_bad_labels(tmp_path, capsys):
    np.save(tmp_path / "in.npy", np.array([0, 1, 5]))
    code = main(
        [
            "noise",
            "--labels",
            str(tmp_path / "in.npy"),
            "--num-classes",
            "3",
            "--protocol",
            "symmetric",
            "--rate",
            "0.2",
            "--out",
            str(tmp_path / "o.npy"),
        ]
    )
    assert code == 2 and "outside [0, 3)" in capsys.readouterr().err


def test_methods_lists_one_name_per_line(capsys):
    assert main(["methods"]) == 0
    printed = capsys.readouterr().out.split()
    assert printed == list_methods()
    assert {"ce", "bootstrap_soft", "bootstrap_hard", "gce", "mae", "label_smoothing"} <= set(printed)


def test_run_with_set_only_and_report(tmp_path, capsys):
    for seed in (0, 1):
        assert (
            main(
                [
                    "run",
                    "--set",
                    "dataset=digits",
                    "--set",
                    "method=ce",
                    "--set",
                    "epochs=2",
                    "--set",
                    f"seed={seed}",
                    "--set",
                    "quiet=true",
                    "--set",
                    f"out={tmp_path / f's{seed}'}",
                ]
            )
            == 0
        )
    summary = json.loads((tmp_path / "s0" / "summary.json").read_text())
    assert {"best_test_acc", "last_test_acc", "epochs", "seconds"} <= set(summary)
    assert main(["report", str(tmp_path / "s0"), str(tmp_path / "s1"), "--out", str(tmp_path / "rep")]) == 0
    text = (tmp_path / "rep" / "report.md").read_text()
    row = next(line for line in text.splitlines() if "| ce |" in line)
    assert "| 2 |" in row and "+-" in row  # two seeds pooled into one mean +- std row
    table = [line for line in text.splitlines() if line.startswith("|")]
    assert len({line.count("|") for line in table}) == 1, "every row has as many cells as the header"
    assert (tmp_path / "rep" / "test_accuracy.png").stat().st_size > 1000


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("method=nope", "unknown method 'nope'"),
        ("epocs=3", "unknown config key"),
        ("noise.rate=2", "noise.rate"),
        ("epochs=abc", "epochs: expected int"),
    ],
)
def test_run_bad_config_is_a_clear_error(tmp_path, capsys, setting, message):
    assert main(["run", "--set", setting, "--out", str(tmp_path / "r")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_report_on_a_non_run_is_an_error(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "summary.json" in capsys.readouterr().err


def test_data_summary(capsys):
    assert main(["data", "digits"]) == 0
    out = capsys.readouterr().out
    assert "digits" in out and "train: 1297 samples" in out


@pytest.mark.skipif(not SHARED.exists(), reason="shared data absent")
def test_cifar10_features_with_human_noise(tmp_path):
    out = tmp_path / "feat"
    assert (
        main(
            [
                "run",
                "--set",
                "dataset=cifar10_features",
                "--set",
                f"root={SHARED}",
                "--set",
                "noise.protocol=human",
                "--set",
                "noise.label_set=worst",
                "--set",
                "train_subset=5000",
                "--set",
                "epochs=1",
                "--set",
                "quiet=true",
                "--set",
                "meta.size=100",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    noise = json.loads((out / "noise.json").read_text())
    assert noise["protocol"] == "human" and 0.35 < noise["realised_rate"] < 0.45
    assert json.loads((out / "summary.json").read_text())["last_test_acc"] > 0.5


def test_console_script_is_installed():
    exe = shutil.which("noisy-labels") or str(Path(sys.executable).parent / "noisy-labels")
    result = subprocess.run([exe, "methods"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "ce" in result.stdout.split()


def test_import_needs_only_core_dependencies():
    code = (
        "import sys; sys.modules['PIL'] = None; sys.modules['torchvision'] = None; "
        "sys.modules['tensorboard'] = None; import noisy_labels, noisy_labels.data, noisy_labels.engine, "
        "noisy_labels.methods, noisy_labels.models, noisy_labels.data.noise, noisy_labels.cli, "
        "noisy_labels.report"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_demo_writes_its_table_and_plot(tmp_path, capsys):
    """README's main command, shortened: the same code path (two worker processes), three epochs."""
    from noisy_labels.demo import run_demo

    table = run_demo(tmp_path / "demo", methods=("ce", "dmlp", "elr"), extra=["epochs=3"])
    rows = [line.split("|")[1:-1] for line in table.splitlines() if line.startswith("| ")]
    assert [c.strip() for c in rows[0]] == ["method", "best", "last", "corrected-label acc", "cleanness AUC"]
    body = {r[0].strip(): [c.strip() for c in r[1:]] for r in rows[1:]}
    assert list(body) == ["ce", "dmlp", "elr"]  # the reference first, in the order given
    assert body["ce"][2:] == ["", ""] and all(body["dmlp"])  # blank where a method gives none
    assert "Given labels" in table
    progress = capsys.readouterr().out
    assert all(f"  {m} " in progress for m in ("ce", "dmlp", "elr"))
    assert (tmp_path / "demo" / "test_accuracy.png").stat().st_size > 1000
    assert "![test accuracy]" in (tmp_path / "demo" / "report.md").read_text()
    with pytest.raises(FileExistsError, match="--overwrite"):
        run_demo(tmp_path / "demo", methods=("ce",), extra=["epochs=3"], workers=1)


def test_demo_runs_ce_the_five_library_methods_and_two_baselines():
    """The five methods the library is about, the reference CE first, two baselines, all registered."""
    from noisy_labels.demo import DEMO_METHODS, DEMO_SETTINGS

    assert DEMO_METHODS[0] == "ce"
    assert {"dmlp", "emlc", "l2b", "rmnwnet", "flywheel"} <= set(DEMO_METHODS)
    assert len(DEMO_METHODS) == len(set(DEMO_METHODS)) == 8
    assert set(DEMO_METHODS) <= set(list_methods())
    # From their defaults: the demo fixes the setting, never a method's (or the optimiser's) parameters.
    keys = {pair.partition("=")[0].split(".")[0] for pair in DEMO_SETTINGS}
    assert not keys & (set(list_methods()) | {"optim", "method_params"})
    assert "meta.size=100" in DEMO_SETTINGS
