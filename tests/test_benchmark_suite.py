"""The benchmark suite's bookkeeping: which config a row uses, resuming by fingerprint, CPU determinism."""

import argparse
import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("suite", REPO / "benchmarks" / "suite.py")
suite = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(suite)

pytestmark = pytest.mark.usefixtures("one_thread")
DIGITS = ("digits", ["noise.protocol=symmetric", "noise.rate=0.5"])


def test_each_method_gets_its_own_config_not_a_longer_named_ones():
    assert suite.method_config("cifar10_features", "elr").name == "cifar10_features_elr_sym50.yaml"
    assert suite.method_config("cifar10_features", "elr_plus").name == "cifar10_features_elr_plus_sym50.yaml"
    assert suite.method_config("cifar10_features", "gce") is None  # then the CE config with method=gce
    config, sets = suite.row_overrides("mnist_sym80", "emlc", 0)
    # one model per data set, whatever the method's own config uses
    assert config.name == "mnist_emlc_unif60.yaml" and "model.name=small_cnn" in sets
    _, clean = suite.row_overrides("feat_sym50", "ce_clean", 1)
    assert "noise.protocol=none" in clean and "seed=1" in clean and "noise.rate=0.5" not in clean


def test_rows_resume_by_fingerprint_and_reproduce_exactly(tmp_path, monkeypatch):
    monkeypatch.setitem(suite.SETTINGS, "digits_sym50", DIGITS)
    args = argparse.Namespace(
        settings=["digits_sym50"], methods=["ce", "gce"], seeds=[0], rerun=False, store=tmp_path
    )
    assert len(suite.pending(args)) == 2
    record = suite.run_row("digits_sym50", "ce", 0, tmp_path)
    assert record["command"].startswith("noisy-labels run --set dataset=digits")
    assert suite.pending(args) == [("digits_sym50", "gce", 0)]
    assert suite.verify("digits_sym50/ce/0", tmp_path) == 0  # a rerun gives the same numbers
    assert "`digits_sym50/ce/0` (same numbers" in suite.verified_line(tmp_path)
    assert len(suite.load_records(tmp_path)) == 1  # the verification log is not read as a row
    # A changed budget (or config file) changes the fingerprint: the stored row no longer counts as done.
    monkeypatch.setitem(suite.BUDGET, "digits", ["epochs=2", "meta.size=200"])
    assert len(suite.pending(args)) == 2


def test_fingerprint_follows_config_values_not_comments(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("# measured: 71%\noptim:\n  lr: 0.005\n")
    before = suite.config_fingerprint(config, ["seed=0", "root=/data/here"])
    config.write_text("# measured again: 72% (seeds 0-2)\noptim:\n  lr: 0.005\n")
    assert suite.config_fingerprint(config, ["seed=0", "root=/elsewhere"]) == before
    config.write_text("optim:\n  lr: 0.05\n")
    assert suite.config_fingerprint(config, ["seed=0"]) != before
    assert suite.config_fingerprint(config, ["seed=1"]) != suite.config_fingerprint(config, ["seed=0"])
