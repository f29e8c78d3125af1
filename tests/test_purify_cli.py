"""The ``noisy-labels purify`` contract: files, columns, shapes, the report, and clear input errors."""

import csv
import json

import numpy as np
import pytest

from noisy_labels.cli import main

FAST = [
    "--set",
    "epochs=20",
    "--set",
    "batch_size=400",
    "--set",
    "exchange_every=10",
    "--set",
    "eac_batch_size=100",
]


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: small ops, one thread


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    rng = np.random.default_rng(0)
    c, d, n, n_clean = 3, 10, 800, 60
    centres = rng.normal(size=(c, d)) * 1.5
    y = rng.integers(0, c, n)
    yv = np.arange(n_clean) % c
    noisy = np.where(rng.random(n) < 0.4, (y + rng.integers(1, c, n)) % c, y)
    folder = tmp_path_factory.mktemp("purify-in")
    arrays = {
        "features": (centres[y] + rng.normal(size=(n, d))).astype(np.float32),
        "labels": noisy,
        "clean_features": (centres[yv] + rng.normal(size=(n_clean, d))).astype(np.float32),
        "clean_labels": yv,
        "true_labels": y,
    }
    paths = {}
    for key, value in arrays.items():
        paths[key] = folder / f"{key}.npy"
        np.save(paths[key], value)
    return paths, arrays


def _args(paths, out, **replace):
    p = {**paths, **replace}
    return [
        "purify",
        "--features",
        str(p["features"]),
        "--labels",
        str(p["labels"]),
        "--clean-features",
        str(p["clean_features"]),
        "--clean-labels",
        str(p["clean_labels"]),
        "--out",
        str(out),
        "--quiet",
        *FAST,
    ]


def test_purify_writes_the_contracted_files(files, tmp_path, capsys):
    paths, arrays = files
    out = tmp_path / "out"
    assert main([*_args(paths, out), "--true-labels", str(paths["true_labels"]), "--top", "5"]) == 0
    with open(out / "purified.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["index", "given_label", "purified_label", "cleanness"]
    n = len(arrays["labels"])
    assert len(rows) == n and [int(r["index"]) for r in rows] == list(range(n))
    assert [int(r["given_label"]) for r in rows] == arrays["labels"].tolist()
    soft = np.load(out / "soft_labels.npy")
    assert soft.shape == (n, 3) and np.allclose(soft.sum(1), 1.0, atol=1e-5)
    purified = np.array([int(r["purified_label"]) for r in rows])
    np.testing.assert_array_equal(purified, soft.argmax(1))
    cleanness = np.array([float(r["cleanness"]) for r in rows])
    np.testing.assert_allclose(cleanness, soft[np.arange(n), arrays["labels"]], atol=1e-6)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["label_acc"] > summary["label_acc_before"] + 0.2
    assert summary["changed"] == int((purified != arrays["labels"]).sum())
    assert np.array(summary["flows"]).sum() == n and len(summary["history"]) == 20
    # The suspects report: only changed labels, most suspicious (lowest cleanness) first.
    with open(out / "suspects.csv") as f:
        suspects = list(csv.DictReader(f))
    assert len(suspects) == summary["changed"]
    scores = [float(r["cleanness"]) for r in suspects]
    assert scores == sorted(scores)
    assert all(r["given_label"] != r["purified_label"] for r in suspects)
    printed = capsys.readouterr().out
    assert "label accuracy" in printed and "most likely mislabelled" in printed
    # An existing output is not overwritten without --overwrite.
    assert main(_args(paths, out)) == 2
    assert main([*_args(paths, out), "--overwrite"]) == 0


def _write(tmp_path, name, value):
    path = tmp_path / f"{name}.npy"
    np.save(path, value)
    return path


@pytest.mark.parametrize(
    ("name", "make", "message"),
    [
        ("labels", lambda a: a["labels"][:-5], "same number of rows"),
        ("labels", lambda a: np.where(a["labels"] == 0, -1, a["labels"]), "negative"),
        (
            "clean_labels",
            lambda a: np.where(a["clean_labels"] == 2, 0, a["clean_labels"]),
            r"no sample of class\(es\) \[2\]",
        ),
        ("clean_features", lambda a: a["clean_features"][:, :4], "columns"),
        (
            "features",
            lambda a: np.where(
                np.arange(a["features"].size).reshape(a["features"].shape) == 7, np.nan, a["features"]
            ),
            "NaN",
        ),
        ("labels", lambda a: a["labels"].astype(float) + 0.5, "integer"),
    ],
)
def test_purify_bad_input_is_a_clear_error(files, tmp_path, capsys, name, make, message):
    paths, arrays = files
    bad = _write(tmp_path, name, make(arrays))
    code = main(_args(paths, tmp_path / "out", **{name: bad}))
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("noisy-labels purify: error:")
    assert pytest.importorskip("re").search(message, err), err


def test_purify_labels_out_of_range_for_num_classes(files, tmp_path, capsys):
    paths, _ = files
    assert main([*_args(paths, tmp_path / "out"), "--num-classes", "2"]) == 2
    assert "outside [0, 2)" in capsys.readouterr().err


def test_purify_unknown_parameter_and_missing_file(files, tmp_path, capsys):
    paths, _ = files
    assert main([*_args(paths, tmp_path / "o1"), "--set", "epocs=3"]) == 2
    assert "unknown config key(s) dmlp.epocs" in capsys.readouterr().err
    assert main(_args(paths, tmp_path / "o2", features=tmp_path / "nope.npy")) == 2
    assert "features file not found" in capsys.readouterr().err
