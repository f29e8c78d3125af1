"""find_label_issues / get_label_quality_scores (cleanlab's shapes) and ``noisy-labels issues``."""

from __future__ import annotations

import csv

import numpy as np
import pytest

import noisy_labels
from noisy_labels.cli import main

FAST = {"epochs": 10, "batch_size": 20, "lr": 0.05}


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: small ops, one thread


@pytest.fixture(scope="module")
def problem():
    """Three Gaussian classes in 6-D, 25% of the labels moved to the next class, and a clean set."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 6)) * 2.5
    true = np.arange(300) % 3
    labels = np.where(rng.random(300) < 0.25, (true + 1) % 3, true)
    clean = np.arange(30) % 3
    return {
        "features": (centres[true] + rng.normal(size=(300, 6))).astype(np.float32),
        "labels": labels,
        "true": true,
        "clean_features": centres[clean] + rng.normal(size=(30, 6)),
        "clean_labels": clean,
    }


def _inputs(p):
    return {"features": p["features"], "labels": p["labels"]}


# --------------------------------------------------------------------------------------------- outputs
def test_mask_ranked_indices_and_scores_agree(problem):
    mask = noisy_labels.find_label_issues(**_inputs(problem), **FAST)
    ranked = noisy_labels.find_label_issues(
        **_inputs(problem), return_indices_ranked_by="label_quality", **FAST
    )
    scores = noisy_labels.get_label_quality_scores(**_inputs(problem), **FAST)
    assert mask.dtype == bool and mask.shape == (300,)
    assert ranked.dtype == np.int64 and sorted(ranked.tolist()) == np.flatnonzero(mask).tolist()
    assert np.all(np.diff(scores[ranked]) >= 0)  # lowest quality first
    alias = noisy_labels.find_label_issues(
        **_inputs(problem), return_indices_ranked_by="self_confidence", **FAST
    )
    np.testing.assert_array_equal(alias, ranked)
    wrong = problem["labels"] != problem["true"]
    assert wrong[mask].mean() > 0.8 and mask[wrong].mean() > 0.8  # precision and recall
    assert wrong[ranked[:30]].mean() > 0.95


def test_clean_set_and_other_methods(problem):
    kwargs = {
        **_inputs(problem),
        "clean_features": problem["clean_features"],
        "clean_labels": problem["clean_labels"],
    }
    for method in ("auto", "dmlp", "mwnet"):
        mask = noisy_labels.find_label_issues(**kwargs, method=method, **FAST)
        assert mask.shape == (300,) and mask.any()


def test_shapes_match_cleanlab(problem):
    """The swap-in promise: same dtypes and shapes as cleanlab's outputs for the same labels."""
    filt = pytest.importorskip("cleanlab.filter")
    rank = pytest.importorskip("cleanlab.rank")
    probs = np.eye(3)[problem["labels"]] * 0.7 + 0.1
    ours = noisy_labels.find_label_issues(**_inputs(problem), **FAST)
    theirs = filt.find_label_issues(problem["labels"], probs)
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
    ours_r = noisy_labels.find_label_issues(
        **_inputs(problem), return_indices_ranked_by="self_confidence", **FAST
    )
    theirs_r = filt.find_label_issues(problem["labels"], probs, return_indices_ranked_by="self_confidence")
    assert ours_r.ndim == theirs_r.ndim == 1 and ours_r.dtype.kind == theirs_r.dtype.kind == "i"
    scores = noisy_labels.get_label_quality_scores(**_inputs(problem), **FAST)
    assert scores.shape == rank.get_label_quality_scores(problem["labels"], probs).shape


# ---------------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        (lambda p: {**p, "labels": np.array(["cat", "dog", "bird"])[p["labels"]]}, TypeError, "LabelEncoder"),
        (lambda p: {**p, "labels": p["labels"][:-1]}, ValueError, "same number of rows"),
        (lambda p: {**p, "features": p["features"][:, 0]}, ValueError, "Reshape your data"),
        (
            lambda p: {**p, "features": np.where(np.eye(300, 6, dtype=bool), np.nan, p["features"])},
            ValueError,
            "NaN",
        ),
        (
            lambda p: {**p, "clean_features": p["features"][:4], "clean_labels": np.array([0, 1, 2, 5])},
            ValueError,
            r"class\(es\) \[5\] that never occur in labels",
        ),
        (lambda p: {**p, "return_indices_ranked_by": "normalized_margin"}, ValueError, "label_quality"),
    ],
)
def test_clear_errors(problem, change, error, match):
    with pytest.raises(error, match=match):
        noisy_labels.find_label_issues(**change(_inputs(problem)), epochs=1)


def test_positional_arguments_are_refused(problem):
    with pytest.raises(TypeError, match="positional"):
        noisy_labels.find_label_issues(problem["labels"], problem["features"])  # cleanlab's order


# ------------------------------------------------------------------------------------------------- CLI
@pytest.fixture()
def files(problem, tmp_path):
    paths = {}
    for key in ("features", "labels", "clean_features", "clean_labels"):
        paths[key] = tmp_path / f"{key}.npy"
        np.save(paths[key], problem[key])
    return paths


def _run(files, out, *extra):
    return main(
        [
            "issues",
            "--features",
            str(files["features"]),
            "--labels",
            str(files["labels"]),
            "--out",
            str(out),
            "--epochs",
            "10",
            "--quiet",
            *extra,
        ]
    )


def _rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_cli_writes_ranked_csv_and_refuses_to_overwrite(files, problem, tmp_path, capsys):
    out = tmp_path / "out"
    assert _run(files, out) == 0
    rows = _rows(out / "label_issues.csv")
    assert list(rows[0]) == ["rank", "index", "given_label", "suggested_label", "label_quality"]
    assert [int(r["rank"]) for r in rows] == list(range(1, len(rows) + 1))
    quality = [float(r["label_quality"]) for r in rows]
    assert quality == sorted(quality)
    for r in rows:
        assert int(r["given_label"]) == problem["labels"][int(r["index"])] != int(r["suggested_label"])
    assert "flagged" in capsys.readouterr().out
    assert _run(files, out) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert _run(files, out, "--overwrite", "--all") == 0
    assert len(_rows(out / "label_issues.csv")) == 300


def test_cli_clean_set_and_string_labels(files, problem, tmp_path):
    np.save(files["labels"], np.array(["a", "b", "c"])[problem["labels"]])
    np.save(files["clean_labels"], np.array(["a", "b", "c"])[problem["clean_labels"]])
    out = tmp_path / "out"
    args = ["--clean-features", str(files["clean_features"]), "--clean-labels", str(files["clean_labels"])]
    assert _run(files, out, *args, "--method", "dmlp", "--set", "epochs=10") == 0
    assert {r["given_label"] for r in _rows(out / "label_issues.csv")} <= {"a", "b", "c"}
    assert _run(files, tmp_path / "o2", "--clean-features", str(files["clean_features"])) == 2


def test_cli_image_gallery(files, tmp_path, capsys):
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(300):
        Image.new("RGB", (8, 8), (i % 256, 0, 0)).save(folder / f"{i}.png")
    listing = tmp_path / "paths.txt"
    listing.write_text("\n".join(f"images/{i}.png" for i in range(300)))
    out = tmp_path / "out"
    assert _run(files, out, "--image-paths", str(listing), "--top", "12") == 0
    page = (out / "gallery.html").read_text()
    assert page.count("<figure>") == 12 and 'src="../images/' in page
    with Image.open(out / "gallery.png") as im:
        assert im.size[0] > 100
    listing.write_text("images/0.png\n")
    assert _run(files, tmp_path / "bad", "--image-paths", str(listing)) == 2
    assert "one path per sample" in capsys.readouterr().err
