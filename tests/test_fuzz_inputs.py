"""Property-based: generated bad arrays, files and keys fed to every command-line entry point and the
public functions. Always exit status 2 with one line naming the problem (or the documented exception
type), never a traceback, never an output file."""

import io
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from noisy_labels import find_label_issues, get_label_quality_scores
from noisy_labels.cli import main
from noisy_labels.data.noise import apply_noise
from noisy_labels.purify import DMLPPurifier, PurifyParams
from noisy_labels.sklearn import NoisyLabelClassifier

N = 40
GOOD_X = np.random.default_rng(0).normal(size=(N, 3))
GOOD_Y = np.arange(N) % 2
FUZZ = settings(
    max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _npy_bytes(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def _npz_bytes(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


# Labels wrong whatever the command (strings are a valid mapping for `issues`; object arrays stand for
# them here, and are refused as pickles) ...
labels_wrong_in_themselves = st.one_of(
    st.lists(st.integers(-9, 1), min_size=N, max_size=N).filter(lambda v: min(v) < 0).map(np.array),
    st.floats(0.1, 0.9).map(lambda f: GOOD_Y + f),  # not whole numbers
    st.just(np.where(GOOD_Y == 1, np.nan, 0.0)),
    st.just(GOOD_Y.reshape(N // 2, 2)),
    st.just(np.array([{"a": 1}] * N, dtype=object)),
)
# ... and those wrong beside their features (one label per sample; the clean set has 10 rows)
bad_labels = st.one_of(
    labels_wrong_in_themselves, st.integers(11, N // 2 - 1).map(lambda n: np.arange(n) % 2)
)
one_class = st.just(np.zeros(N, dtype=int))  # wrong for a classifier's labels, valid noisy labels otherwise
bad_features = st.one_of(
    st.just(GOOD_X[:, 0]),  # 1-D
    st.integers(N // 2, N - 1).map(lambda n: GOOD_X[:n]),  # wrong length (never that of bad labels)
    st.just(np.where(GOOD_X > 1.5, np.nan, GOOD_X)),
    st.just(np.full((N, 3), "x")),
    st.just(np.zeros((N, 0))),
)
# Files that are no array at all: random bytes, a valid file cut short, nothing.
bad_bytes = st.one_of(
    st.binary(max_size=80),
    st.integers(1, len(_npy_bytes(GOOD_Y)) - 1).map(lambda k: _npy_bytes(GOOD_Y)[:k]),
    st.integers(1, len(_npz_bytes(x=GOOD_X, y=GOOD_Y)) - 1).map(lambda k: _npz_bytes(x=GOOD_X, y=GOOD_Y)[:k]),
)


def label_file(strategy=bad_labels):
    return st.one_of(strategy.map(_npy_bytes), bad_bytes)


def _assert_refused(argv: list[str], out: Path, capsys) -> None:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse: usage line + error line, status 2
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2, (argv, err)
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("noisy-labels"), err
    assert not out.exists() or not any(out.iterdir() if out.is_dir() else [out]), f"{out} was written"


def _files(folder: Path, **contents: bytes) -> dict[str, str]:
    """Write the good inputs, then the bad ones over them; return their paths by name."""
    good = {"x": _npy_bytes(GOOD_X), "y": _npy_bytes(GOOD_Y), "cx": _npy_bytes(GOOD_X[:10])}
    good["cy"] = _npy_bytes(GOOD_Y[:10])
    paths = {}
    for name, data in (good | contents).items():
        paths[name] = str(folder / f"{name}.npy")
        Path(paths[name]).write_bytes(data)
    return paths


COMMANDS = {
    "noise": lambda p, out: (
        ["noise", "--labels", p["y"], "--num-classes", "2", "--protocol", "symmetric"]
        + ["--rate", "0.3", "--out", str(out)]
    ),
    "purify": lambda p, out: (
        ["purify", "--features", p["x"], "--labels", p["y"], "--clean-features", p["cx"]]
        + ["--clean-labels", p["cy"], "--quiet", "--out", str(out)]
    ),
    "issues": lambda p, out: (
        ["issues", "--features", p["x"], "--labels", p["y"], "--clean-features", p["cx"]]
        + ["--clean-labels", p["cy"], "--quiet", "--out", str(out)]
    ),
}


@FUZZ
@given(command=st.sampled_from(sorted(COMMANDS)), which=st.sampled_from(["y", "cy"]), draw=st.data())
def test_bad_label_files(capsys, command, which, draw):
    if command == "noise":
        which, data = "y", draw.draw(label_file(labels_wrong_in_themselves))  # no features to match
    elif command == "issues" and which == "y":  # a classifier's given labels need two classes
        data = draw.draw(label_file(st.one_of(bad_labels, one_class)))
    else:  # purify: all noisy labels in one class can be a real (if hopeless) input
        data = draw.draw(label_file())
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        paths = _files(Path(tmp), **{which: data})
        _assert_refused(COMMANDS[command](paths, out), out, capsys)


@FUZZ
@given(command=st.sampled_from(["purify", "issues"]), data=st.one_of(bad_features.map(_npy_bytes), bad_bytes))
def test_bad_feature_files(capsys, command, data):
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        _assert_refused(COMMANDS[command](_files(Path(tmp), x=data), out), out, capsys)


bad_dataset = st.one_of(
    bad_bytes,
    bad_labels.map(lambda y: _npz_bytes(x=GOOD_X, y=y)),
    bad_features.map(lambda x: _npz_bytes(x=x, y=GOOD_Y)),
    st.just(_npz_bytes(features=GOOD_X)),  # no labels
)


DATA_COMMANDS = {
    "run": lambda path, out: ["run", "--set", f"dataset={path}", "--set", "quiet=true", "--out", str(out)],
    "data": lambda path, out: ["data", str(path)],
    "features": lambda path, out: ["features", "--dataset", str(path), "--quiet", "--out", str(out) + ".npz"],
}


@FUZZ
@given(command=st.sampled_from(sorted(DATA_COMMANDS)), data=bad_dataset)
def test_commands_on_a_bad_data_file(capsys, command, data):
    with tempfile.TemporaryDirectory() as tmp:
        path, out = Path(tmp) / "data.npz", Path(tmp) / "out"
        path.write_bytes(data)
        _assert_refused(DATA_COMMANDS[command](path, out), out, capsys)
        assert not Path(str(out) + ".npz").exists()


@FUZZ
@given(name=st.sampled_from(["config.yaml", "summary.json", "metrics.jsonl"]), data=bad_bytes)
def test_report_on_a_damaged_run(capsys, finished_run, name, data):
    with tempfile.TemporaryDirectory() as tmp:
        run, out = Path(tmp) / "run", Path(tmp) / "report"
        shutil.copytree(finished_run, run)
        (run / name).write_bytes(data + b"\n{")  # never valid YAML / JSON
        _assert_refused(["report", str(run), "--out", str(out)], out, capsys)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fuzz") / "run"
    args = [
        "--set",
        "dataset=digits",
        "--set",
        "train_subset=200",
        "--set",
        "epochs=1",
        "--set",
        "quiet=true",
    ]
    assert main(["run", *args, "--out", str(out)]) == 0
    return out


keys = st.from_regex(r"[a-z_]{1,12}(\.[a-z_]{1,12})?", fullmatch=True)


@FUZZ
@given(key=keys, yaml_text=st.one_of(st.text(max_size=60), st.binary(max_size=60)))
def test_run_with_unknown_keys_or_a_bad_config(capsys, key, yaml_text):
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        _assert_refused(["run", "--set", f"no_{key}=1", "--out", str(out)], out, capsys)
        config = Path(tmp) / "c.yaml"
        raw = yaml_text if isinstance(yaml_text, bytes) else yaml_text.encode()
        config.write_bytes(raw + b"\nnot_a_key: 1\n")  # whatever else it holds, this key is wrong
        _assert_refused(["run", str(config), "--out", str(out)], out, capsys)


@FUZZ
@given(labels=bad_labels, features=st.one_of(st.just(GOOD_X), bad_features))
def test_public_functions_raise_the_documented_types(labels, features):
    calls = [
        lambda: find_label_issues(features=features, labels=labels, epochs=1),
        lambda: get_label_quality_scores(features=features, labels=labels, epochs=1),
        lambda: DMLPPurifier(PurifyParams(epochs=1)).fit(features, labels, GOOD_X[:10], GOOD_Y[:10]),
    ]
    integers = labels.ndim == 1 and labels.dtype.kind in "iu"
    if not (
        integers and len(labels) == len(features) == N
    ):  # the estimator takes any hashable labels (-1 too)
        calls.append(
            lambda: NoisyLabelClassifier(epochs=1).fit(features, labels if labels.dtype != object else None)
        )
    if not (integers and labels.min() >= 0):  # a noise protocol sees no features: labels wrong in themselves
        calls.append(lambda: apply_noise(labels, num_classes=2, protocol="symmetric", rate=0.3, seed=0))
    for call in calls:
        with pytest.raises((ValueError, TypeError)):
            call()
