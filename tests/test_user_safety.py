"""Nothing a user owns is lost, every bad input is one clear line (exit 2), resume is exact or refuses.

One test per case found by trying the command line as a new user would (each failed before the fix).
"""

import csv
import json

import numpy as np
import pytest
import yaml

from noisy_labels import find_label_issues
from noisy_labels.cli import main
from noisy_labels.engine import load_config, run_experiment
from noisy_labels.issue_report import write_issues_csv

QUICK = ["--set", "dataset=digits", "--set", "train_subset=300", "--set", "epochs=2", "--set", "quiet=true"]


def _run(out, *extra):
    return main(["run", *QUICK, *extra, "--out", str(out)])


def _one_line_error(capsys, command: str) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"noisy-labels {command}: error:") and "\n" not in err, err
    assert "Traceback" not in err
    return err


# ---------------------------------------------------------------------------------------- data loss
def test_overwrite_refuses_a_folder_that_is_not_a_run(tmp_path, capsys):
    out = tmp_path / "mine"
    (out / "sub").mkdir(parents=True)
    (out / "thesis.txt").write_text("years of work")
    (out / "sub" / "data.csv").write_text("a,b\n1,2\n")
    assert _run(out, "--overwrite") == 2
    assert "nothing was deleted" in _one_line_error(capsys, "run")
    assert (out / "thesis.txt").read_text() == "years of work" and (out / "sub" / "data.csv").exists()


def test_overwrite_of_the_working_directory_deletes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.md").write_text("keep me")
    assert _run(".", "--overwrite") == 2
    _one_line_error(capsys, "run")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.md"]


def test_a_failing_overwrite_keeps_the_old_results(tmp_path, capsys):
    out = tmp_path / "run"
    assert _run(out) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    capsys.readouterr()
    assert _run(out, "--overwrite", "--set", "dataset=no_such_data.npz") == 2
    _one_line_error(capsys, "run")
    assert _run(out, "--overwrite", "--set", "method=mwnet", "--set", "meta.size=5") == 2
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


def test_overwrite_replaces_a_run_directory(tmp_path):
    out = tmp_path / "run"
    assert _run(out, "--set", "seed=1") == 0
    assert _run(out, "--overwrite", "--set", "seed=2") == 0
    assert yaml.safe_load((out / "config.yaml").read_text())["seed"] == 2
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2


def test_noise_refuses_to_write_over_its_input(tmp_path, capsys):
    clean = tmp_path / "clean.npy"
    np.save(clean, np.arange(100) % 10)
    before = clean.read_bytes()
    for extra in ([], ["--overwrite"]):
        args = ["noise", "--labels", str(clean), "--num-classes", "10", "--protocol", "symmetric"]
        assert main([*args, "--rate", "0.5", "--out", str(tmp_path / "clean"), *extra]) == 2
        assert "input of this command" in _one_line_error(capsys, "noise")
    assert clean.read_bytes() == before


def test_noise_checks_the_file_it_actually_writes(tmp_path, capsys):
    np.save(tmp_path / "labels.npy", np.arange(100) % 10)
    np.save(tmp_path / "noisy.npy", np.zeros(3))  # the user's, to be kept
    args = ["noise", "--labels", str(tmp_path / "labels.npy"), "--num-classes", "10"]
    assert main([*args, "--protocol", "symmetric", "--rate", "0.5", "--out", str(tmp_path / "noisy")]) == 2
    assert "noisy.npy exists" in _one_line_error(capsys, "noise")
    assert np.load(tmp_path / "noisy.npy").tolist() == [0, 0, 0]


def test_report_asks_before_replacing_and_leaves_no_stale_plot(tmp_path, capsys):
    with_labels, plain = tmp_path / "elr", tmp_path / "ce"
    assert _run(with_labels, "--set", "method=elr") == 0
    assert _run(plain) == 0
    report = tmp_path / "report"
    assert main(["report", str(with_labels), "--out", str(report)]) == 0
    assert (report / "label_accuracy.png").exists()
    (report / "mine.txt").write_text("not the report's")
    capsys.readouterr()
    assert main(["report", str(plain), "--out", str(report)]) == 2
    assert "--overwrite" in _one_line_error(capsys, "report")
    assert main(["report", str(plain), "--out", str(report), "--overwrite"]) == 0
    assert not (report / "label_accuracy.png").exists()  # CE has no label accuracy: the old plot is gone
    assert (report / "mine.txt").exists()


def test_features_reuse_only_a_file_of_the_same_recipe(tmp_path, capsys):
    assert _run(tmp_path / "r1", "--set", "seed=1") == 0 and _run(tmp_path / "r2", "--set", "seed=2") == 0
    foreign = tmp_path / "feats.npz"
    np.savez(foreign, x=np.zeros((3, 2)), y=np.zeros(3))
    args = ["features", "--dataset", "digits", "--quiet", "--checkpoint"]
    capsys.readouterr()
    assert main([*args, str(tmp_path / "r1"), "--out", str(foreign)]) == 2
    assert "does not record these features" in _one_line_error(capsys, "features")
    own = tmp_path / "own.npz"
    assert main([*args, str(tmp_path / "r1"), "--out", str(own)]) == 0
    assert main([*args, str(tmp_path / "r1"), "--out", str(own)]) == 0
    assert "reusing it" in capsys.readouterr().out
    assert main([*args, str(tmp_path / "r2"), "--out", str(own)]) == 2  # another backbone
    _one_line_error(capsys, "features")


# ---------------------------------------------------------------------------------------- resume
def test_resume_without_a_checkpoint_logs_each_epoch_once(tmp_path):
    out = tmp_path / "run"
    assert _run(out, "--set", "epochs=3") == 0
    (out / "checkpoint.pt").unlink()  # as if killed before its first checkpoint
    (out / "summary.json").unlink()
    run_experiment(load_config(None, [f"out={out}"]), resume=True)
    epochs = [json.loads(line)["epoch"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3]


def test_resume_refuses_changes_that_alter_the_run(tmp_path, capsys):
    out = tmp_path / "run"
    assert _run(out) == 0
    capsys.readouterr()
    assert main(["run", "--resume", "--out", str(out), "--set", "noise.rate=0.1"]) == 2
    assert "not noise.rate" in _one_line_error(capsys, "run")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("epochs: 5\n")
    assert main(["run", str(cfg), "--resume", "--out", str(out)]) == 2
    assert "drop a config file" in _one_line_error(capsys, "run")
    assert main(["run", "--resume", "--out", str(out), "--set", "epochs=1"]) == 2
    assert "trained 2 epochs" in _one_line_error(capsys, "run")


def test_resume_extends_a_finished_run(tmp_path):
    out = tmp_path / "run"
    assert _run(out) == 0
    assert main(["run", "--resume", "--out", str(out), "--set", "epochs=4"]) == 0
    epochs = [json.loads(line)["epoch"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3, 4]
    assert yaml.safe_load((out / "config.yaml").read_text())["epochs"] == 4


# ---------------------------------------------------------------------------------------- clear errors
def _truncated_npz(path):
    with open(path, "wb") as f:  # under the name given (np.savez would append .npz)
        np.savez(f, x=np.ones((50, 4)), y=np.arange(50) % 2)
    path.write_bytes(path.read_bytes()[:200])


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda p: p.write_bytes(b""), "empty or truncated"),
        (lambda p: p.write_bytes(np.lib.format.magic(1, 0) + b"\x10\x00{'descr'"), "cannot read"),
        (_truncated_npz, "cannot read"),
        (lambda p: p.write_bytes(b"PK\x03\x04 not really a zip"), "cannot read"),
    ],
)
def test_damaged_array_files_are_one_line_naming_the_file(tmp_path, capsys, make, problem):
    bad = tmp_path / "labels.npy"
    make(bad)
    args = ["noise", "--labels", str(bad), "--num-classes", "2", "--protocol", "symmetric", "--rate", "0.2"]
    assert main([*args, "--out", str(tmp_path / "out.npy")]) == 2
    err = _one_line_error(capsys, "noise")
    assert str(bad) in err and problem in err
    assert not (tmp_path / "out.npy").exists()


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("epochs: [1, 2\n", "cannot read config file"),
        ("x: !!python/object/apply:os.system ['true']\n", "python"),
    ],
)
def test_bad_yaml_is_one_line_naming_the_file(tmp_path, capsys, text, problem):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    assert main(["run", str(cfg), "--out", str(tmp_path / "run")]) == 2
    err = _one_line_error(capsys, "run")
    assert str(cfg) in err and problem in err
    assert not (tmp_path / "run").exists()


def test_a_damaged_run_directory_is_one_line_in_report(tmp_path, capsys):
    out = tmp_path / "run"
    assert _run(out) == 0
    (out / "metrics.jsonl").write_text('{"epoch": 1, "test_acc"')
    capsys.readouterr()
    assert main(["report", str(out), "--out", str(tmp_path / "rep")]) == 2
    assert "metrics.jsonl" in _one_line_error(capsys, "report")


def test_a_damaged_official_data_file_is_one_line(tmp_path, capsys):
    root = tmp_path / "mnist"
    root.mkdir()
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz"):
        (root / name).write_bytes(b"\x1f\x8b\x08\x00 damaged")  # a gzip header, then garbage
    (root / "t10k-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b\x08\x00 damaged")
    assert main(["data", "mnist", "--root", str(root)]) == 2
    assert "cannot read idx file" in _one_line_error(capsys, "data")


def test_a_binary_image_paths_file_is_one_line(tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(40, 3)))
    np.save(tmp_path / "y.npy", np.arange(40) % 2)
    (tmp_path / "paths.txt").write_bytes(b"\xff\xfe\x00\x89PNG\x00")
    args = ["issues", "--features", str(tmp_path / "x.npy"), "--labels", str(tmp_path / "y.npy")]
    assert main([*args, "--image-paths", str(tmp_path / "paths.txt"), "--out", str(tmp_path / "o")]) == 2
    assert "not a UTF-8 text file" in _one_line_error(capsys, "issues")


def test_labels_with_gaps_are_refused_unless_the_class_count_is_given(tmp_path, capsys):
    rng = np.random.default_rng(0)
    y = np.r_[np.arange(10).repeat(20), [15] * 20]
    data = tmp_path / "gaps.npz"
    np.savez(data, x=rng.normal(size=(220, 5)), y=y)
    assert (
        main(["run", "--set", f"dataset={data}", "--set", "noise.rate=0.5", "--out", str(tmp_path / "r")])
        == 2
    )
    assert "[15] but class(es) [10, 11, 12, 13, 14]" in _one_line_error(capsys, "run")
    x = rng.normal(size=(220, 5))
    with pytest.raises(ValueError, match=r"\[12\] but class\(es\) \[10, 11\]"):
        find_label_issues(features=x, labels=np.where(y == 15, 12, y))
    np.save(tmp_path / "x.npy", x)
    for bad in (np.where(y == 15, 12, y), np.where(y == 15, -1, y)):
        np.save(tmp_path / "y.npy", bad)
        args = ["issues", "--features", str(tmp_path / "x.npy"), "--labels", str(tmp_path / "y.npy")]
        assert main([*args, "--out", str(tmp_path / "o")]) == 2
        _one_line_error(capsys, "issues")
    assert not (tmp_path / "o").exists()


def test_purify_names_a_stray_training_label(tmp_path, capsys):
    rng = np.random.default_rng(0)
    y = np.arange(10).repeat(10)
    y[0] = 12
    for name, value in (("f", rng.normal(size=(100, 4))), ("y", y), ("cf", rng.normal(size=(30, 4)))):
        np.save(tmp_path / f"{name}.npy", value)
    np.save(tmp_path / "cy.npy", np.arange(10).repeat(3))
    args = ["purify", "--features", str(tmp_path / "f.npy"), "--labels", str(tmp_path / "y.npy")]
    args += ["--clean-features", str(tmp_path / "cf.npy"), "--clean-labels", str(tmp_path / "cy.npy")]
    assert main([*args, "--out", str(tmp_path / "o")]) == 2
    err = _one_line_error(capsys, "purify")
    assert err.split("error: ")[1].startswith("noisy labels hold label(s) [12]")


def test_counts_below_one_and_a_subset_larger_than_the_data_are_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["issues", "--features", "x.npy", "--labels", "y.npy", "--out", "o", "--top", "-1"])
    assert exit_info.value.code == 2 and "whole number >= 1" in capsys.readouterr().err
    assert _run(tmp_path / "r", "--set", "train_subset=5000") == 2
    assert "larger than the training set" in _one_line_error(capsys, "run")


def test_label_issues_csv_cells_are_never_spreadsheet_formulas(tmp_path):
    given = np.array(['=HYPERLINK("http://evil", "cat")', "dog", "+cmd", "-2"])
    path = write_issues_csv(tmp_path / "l.csv", np.arange(4), given, given[::-1], np.linspace(0, 1, 4))
    rows = list(csv.DictReader(path.open()))
    assert [r["given_label"] for r in rows] == ["'" + given[0], "dog", "'+cmd", "-2"]
    assert all(not r["suggested_label"].startswith(("=", "+", "@")) for r in rows)
