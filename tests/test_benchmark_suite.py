"""The benchmark suite's bookkeeping: which config a row uses, resuming by fingerprint, CPU determinism."""

import argparse
import importlib
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO / "benchmarks") not in sys.path:  # imported as benchmarks/defaults.py imports it
    sys.path.insert(0, str(REPO / "benchmarks"))
suite = importlib.import_module("suite")

pytestmark = pytest.mark.usefixtures("one_thread")
DIGITS = ("digits", ["noise.protocol=symmetric", "noise.rate=0.5"])


def test_each_method_gets_its_own_config_not_a_longer_named_ones():
    assert suite.method_config("cifar10_features", "elr").name == "cifar10_features_elr_sym50.yaml"
    assert suite.method_config("cifar10_features", "elr_plus").name == "cifar10_features_elr_plus_sym50.yaml"
    assert suite.method_config("cifar10_features", "gce") is None  # then the CE config with method=gce
    config, sets = suite.row_overrides("mnist_sym80", "emlc", 0)
    # one model per data set, whatever the method's own config uses
    assert config.name == "mnist_emlc_unif60.yaml" and "model.name=small_cnn" in sets
    # the suite's own MNIST recipe, after the budget; the features rows keep the config's optimiser
    assert (
        sets[-3:] == suite.ADAM_MNIST
        and "optim.name=adam" not in suite.row_overrides("feat_sym80", "emlc", 0)[1]
    )
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
    # A stored number that a rerun does not give is reported with the size of the difference.
    row = tmp_path / "digits_sym50" / "ce-seed0.json"
    edited = json.loads(row.read_text())
    edited["summary"]["last_test_acc"] += 0.25
    row.write_text(json.dumps(edited))
    assert suite.verify("digits_sym50/ce/0", tmp_path) == 1
    assert "`digits_sym50/ce/0` (DIFFERENT by at most 0.25" in suite.verified_line(tmp_path)
    assert len(suite.load_records(tmp_path)) == 1  # the verification log is not read as a row
    # A changed budget (or config file) changes the fingerprint: the stored row no longer counts as done.
    monkeypatch.setitem(suite.BUDGET, "digits", ["epochs=2", "meta.size=200"])
    assert len(suite.pending(args)) == 2
    assert suite.current_records(tmp_path) == ([], 1)  # the report leaves the stale row out


def test_fingerprint_follows_config_values_not_comments(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("# measured: 71%\noptim:\n  lr: 0.005\n")
    before = suite.config_fingerprint(config, ["seed=0", "root=/data/here"])
    config.write_text("# measured again: 72% (seeds 0-2)\noptim:\n  lr: 0.005\n")
    assert suite.config_fingerprint(config, ["seed=0", "root=/elsewhere"]) == before
    config.write_text("optim:\n  lr: 0.05\n")
    assert suite.config_fingerprint(config, ["seed=0"]) != before
    assert suite.config_fingerprint(config, ["seed=1"]) != suite.config_fingerprint(config, ["seed=0"])


def test_coverage_names_the_settings_and_seeds_still_missing(monkeypatch):
    monkeypatch.setattr(suite, "SETTINGS", {"feat_a": ("cifar10_features", []), "mnist_a": ("mnist", [])})
    monkeypatch.setattr(suite, "SEEDS", [0, 1])
    monkeypatch.setattr(suite, "all_methods", lambda: ["ce", "clean_only"])
    rows = [("feat_a", "ce", 0), ("feat_a", "ce", 1), ("feat_a", "clean_only", 0), ("mnist_a", "ce", 0)]
    records = [{"setting": s, "method": m, "seed": k} for s, m, k in rows]
    text = suite.coverage(records)
    # clean_only uses a linear head: MNIST does not want it, so mnist_a misses seed 1 of ce only
    assert "feat_a 3/4 (missing seeds [1])" in text and "mnist_a 1/2 (missing seeds [1])" in text
    records += [
        {"setting": "feat_a", "method": "clean_only", "seed": 1},
        {"setting": "mnist_a", "method": "ce", "seed": 1},
    ]
    assert "Complete." in suite.coverage(records)


def test_readme_headline_is_rewritten_between_its_markers_only(tmp_path):
    start, end = suite.README_MARKERS
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{start}\nold table\n{end}\noutro\n")
    summary = {"last_test_acc": 0.5}
    records = [{"setting": "feat_sym50", "method": "ce", "seed": k, "summary": summary} for k in (0, 1)]
    assert suite.update_readme(records, readme)
    text = readme.read_text()
    assert text.startswith(f"intro\n{start}\n| method |") and text.endswith(f"{end}\noutro\n")
    assert "old table" not in text and "| ce | 50.0 +- 0.0 |" in text and "over 2 seed(s) of 3" in text
    readme.write_text("no markers\n")
    assert not suite.update_readme(records, readme) and readme.read_text() == "no markers\n"


def test_oracle_filter_keeps_exactly_the_rightly_labelled_samples(tmp_path, monkeypatch):
    import torch

    from noisy_labels.engine import load_config
    from noisy_labels.engine.data import prepare_data

    monkeypatch.setitem(suite.SETTINGS, "digits_sym50", DIGITS)
    record = suite.run_row("digits_sym50", "oracle_filter", 0, tmp_path)
    cfg = load_config(*suite.row_overrides("digits_sym50", "oracle_filter", 0))
    data = prepare_data(cfg, torch.device("cpu"), corrupt_meta=False)
    right = int((data.train_y == data.train_clean_y).sum())
    assert record["summary"]["kept_noisy_set"] == right
    assert 0.4 < right / len(data.train_y) < 0.6  # 50% symmetric noise
    assert record["command"].endswith("--methods oracle_filter --seeds 0")


def test_head_references_train_images_with_the_ce_rows_model():
    sets = ["dataset=digits", "dataset_options.form=images", "epochs=1", "meta.size=200", *DIGITS[1]]
    summary, _ = suite.reference_run("digits_images", "clean_only", 0, None, [*sets, "seed=0", "quiet=true"])
    assert summary["model"] == "small_cnn" and summary["num_train"] == 200  # the clean set, as images
