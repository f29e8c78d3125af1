"""The image suite (benchmarks/images.py): every method runs on the airbench net; rows resume, reproduce."""

import importlib
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO / "benchmarks") not in sys.path:
    sys.path.insert(0, str(REPO / "benchmarks"))
images = importlib.import_module("images")
suite = importlib.import_module("suite")

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def quick(tmp_path, monkeypatch):
    """The suite pointed at synthetic CIFAR-10 files in ``tmp_path`` (what ``--quick`` does)."""
    images.write_synthetic_cifar10(tmp_path)
    layout = images.Layout("cpu", quick=tmp_path)
    monkeypatch.setattr(images, "LAYOUT", layout)
    return layout


def test_quick_runs_every_method_and_reference_on_the_airbench_net(tmp_path, monkeypatch):
    monkeypatch.setattr(images, "quick_folder", lambda: tmp_path)
    assert images.main(["--quick"]) == 0
    report = (tmp_path / "IMAGES.md").read_text()
    records = suite.load_records(tmp_path / "images")
    assert {r["method"] for r in records} == {*images.REFERENCES, *images.METHODS}
    assert all(r["summary"]["epochs"] >= 1 for r in records)
    assert "model.name=airbench" in next(r for r in records if r["method"] == "mwnet")["command"]
    assert "## Targets" in report and "emlc > mlc at img_sym50" in report


def test_rows_use_one_budget_and_portable_commands(quick):
    _, sets = images.row_overrides("img_worst", "dividemix", 0)
    assert [s for s in images.BUDGET if s not in sets] == []  # every row carries the whole budget
    assert "dividemix.warmup_epochs=2" in sets and "noise.label_set=worst" in sets
    _, clean = images.row_overrides("img_sym80", "ce_clean", 0)
    assert "noise.protocol=none" in clean and "noise.rate=0.8" not in clean
    command = images.row_command("img_sym50", "dmlp", 0)
    assert str(REPO) not in command and "root=" not in command
    assert images.fingerprint("img_sym50", "ce", 0) != images.fingerprint("img_sym50", "ce", 1)


def test_extra_seeds_only_for_the_named_rows():
    rows = images.all_rows(list(images.SETTINGS), ["ce", "mlc"], [0, 1])
    assert ("img_sym80", "mlc", 0) in rows and ("img_sym50", "ce", 1) in rows
    assert ("img_sym80", "ce", 1) not in rows and ("img_sym50", "mlc", 1) not in rows


def test_a_row_resumes_by_fingerprint_and_verifies_exactly(quick):
    assert not suite.is_done(quick.store, "img_sym50", "l2rw", 0, images.ROWS)
    suite.run_row("img_sym50", "l2rw", 0, quick.store, images.ROWS)
    assert suite.is_done(quick.store, "img_sym50", "l2rw", 0, images.ROWS)
    assert suite.verify("img_sym50/l2rw/0", quick.store, images.ROWS) == 0


def test_target_checks_say_met_missed_or_not_run():
    def row(method, acc, seconds=10.0):
        return {
            "setting": "img_sym50",
            "method": method,
            "seed": 0,
            "summary": {"last_test_acc": acc, "seconds": seconds, "epochs": 1},
        }

    records = [row("ce", 0.50), row("emlc", 0.60, 5.0), row("mlc", 0.61, 10.0), row("l2rw", 0.5, 40.0)]
    lines = "\n".join(images.target_checks(records))
    assert "emlc >= CE + 5 at img_sym50: met (60.0 against 55.0)" in lines
    assert "emlc > mlc at img_sym50 (EMLC Table 1): **missed**" in lines
    assert "l2rw epoch <= 3.5x CE's at img_sym50: **missed** (4.00x)" in lines
    assert "emlc epoch <= 0.7x MLC's at img_sym50: met (0.50x)" in lines
    assert "dmlp >= CE + 5 at img_sym50: not run yet" in lines
