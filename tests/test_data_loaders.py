"""Tests of the data set loaders: tiny files in the official formats written here, plus the shared data.

Tests on the shared data (``<repo>/../shared/data``) skip when it is absent. The CIFAR-10 rebuild from the
shared JPEGs is made once and cached under ``$NOISY_LABELS_TEST_CACHE`` (default
``~/.cache/noisy_labels_test``). No test touches the network: downloads are replaced by local copies.
"""

from __future__ import annotations

import gzip
import inspect
import io
import os
import pickle
import shutil
import struct
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from noisy_labels.data import cifar, download
from noisy_labels.data.base import ArrayDataset, DataBundle
from noisy_labels.data.cifar import (
    CIFAR100_CLASSES,
    CIFAR100_FINE_TO_COARSE,
    CIFAR100_SUPERCLASSES,
    cifar100_coarse_labels,
    load_cifar10,
    load_cifar100,
)
from noisy_labels.data.cifar_n import load_cifar10n, load_cifar100n, read_label_file
from noisy_labels.data.digits import load_digits
from noisy_labels.data.features import encode_labels, load_cifar10_features, load_features
from noisy_labels.data.lazy import (
    ImageListDataset,
    load_clothing1m,
    load_image_csv,
    load_image_folder,
    load_webvision_mini,
    read_image,
    to_array_dataset,
)
from noisy_labels.data.mnist import load_mnist, read_idx
from noisy_labels.data.registry import KNOWN_DATASETS, describe, load_dataset

Image = pytest.importorskip("PIL.Image")

# ----------------------------------------------------------------------------------------------------
# Writers of tiny files in the official formats
# ----------------------------------------------------------------------------------------------------


class _Py2StylePickler(pickle._Pickler):
    """Writes bytes as Python 2 ``str`` opcodes, as in the official CIFAR files pickled by Python 2."""

    dispatch = pickle._Pickler.dispatch.copy()

    def _save_py2_str(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str


def _dump(obj, path: Path, py2: bool = False) -> None:
    buffer = io.BytesIO()
    (_Py2StylePickler(buffer, protocol=2) if py2 else pickle.Pickler(buffer, protocol=2)).dump(obj)
    path.write_bytes(buffer.getvalue())


def _images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)


def _planes(x: np.ndarray) -> np.ndarray:
    """NHWC images as the official (N, 3072) rows of red, green and blue planes."""
    return x.transpose(0, 3, 1, 2).reshape(len(x), -1)


def write_tiny_cifar10(root: Path, n: int = 12) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    x_train, x_test = _images(5 * n, 0), _images(n, 1)
    y_train, y_test = np.arange(5 * n) % 10, (np.arange(n) * 3) % 10
    for b in range(5):
        s = slice(b * n, (b + 1) * n)
        batch = {b"data": _planes(x_train[s]), b"labels": y_train[s].tolist(), b"batch_label": b"training"}
        _dump(batch, folder / f"data_batch_{b + 1}")
    _dump({b"data": _planes(x_test), b"labels": y_test.tolist()}, folder / "test_batch")
    _dump(
        {b"label_names": [c.encode() for c in cifar.CIFAR10_CLASSES], b"num_vis": 3072},
        folder / "batches.meta",
    )
    return x_train, y_train, x_test, y_test


def write_tiny_cifar100(root: Path, n: int = 30) -> tuple[np.ndarray, np.ndarray]:
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    fine = (np.arange(n) * 7) % 100
    x = _images(n, 2)
    for split in ("train", "test"):
        batch = {
            b"data": _planes(x),
            b"fine_labels": fine.tolist(),
            b"coarse_labels": [CIFAR100_FINE_TO_COARSE[f] for f in fine],
        }
        _dump(batch, folder / split, py2=True)
    meta = {b"fine_label_names": [c.encode() for c in CIFAR100_CLASSES], b"coarse_label_names": []}
    _dump(meta, folder / "meta", py2=True)
    return x, fine


def write_idx(path: Path, arr: np.ndarray, type_code: int = 0x08) -> None:
    header = bytes([0, 0, type_code, arr.ndim]) + struct.pack(f">{arr.ndim}i", *arr.shape)
    data = header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)


def write_image(path: Path, size: tuple[int, int], color: tuple[int, int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)


def _tar_gz(source: Path, arcname: str, dest: Path) -> str:
    with tarfile.open(dest, "w:gz") as tar:
        tar.add(source, arcname=arcname)
    return download.md5sum(dest)


# ----------------------------------------------------------------------------------------------------
# Download: checksum, fetch, extraction, restricted unpickling
# ----------------------------------------------------------------------------------------------------


def test_md5_of_a_local_file(tmp_path):
    path = tmp_path / "abc.bin"
    path.write_bytes(b"abc")
    assert download.md5sum(path) == "900150983cd24fb0d6963f7d28e17f72"
    download.check_md5(path, "900150983CD24FB0D6963F7D28E17F72")
    with pytest.raises(ValueError, match=r"MD5 mismatch for .*abc\.bin.*expected 0{32}"):
        download.check_md5(path, "0" * 32)


def test_fetch_failure_says_to_place_the_file(tmp_path):
    # A file:// URL exercises the real fetch code without touching the network.
    with pytest.raises(ConnectionError, match=r"could not download .*place it at"):
        download.fetch_url((tmp_path / "absent.tar.gz").as_uri(), tmp_path / "out")


def test_download_verify_extract_then_load(tmp_path, monkeypatch):
    source = tmp_path / "source"
    x_train, y_train, _, _ = write_tiny_cifar10(source)
    archive = tmp_path / "cifar-10-python.tar.gz"
    md5 = _tar_gz(source / "cifar-10-batches-py", "cifar-10-batches-py", archive)
    fetched = []
    monkeypatch.setattr(
        download, "fetch_url", lambda url, dest: fetched.append(url) or shutil.copy(archive, dest)
    )
    monkeypatch.setattr(cifar, "CIFAR10_MD5", md5)
    root = tmp_path / "root"
    with pytest.raises(FileNotFoundError, match=r"CIFAR-10 not found in .*root.*download=True"):
        load_cifar10(root)
    bundle = load_cifar10(root, download=True, check_sizes=False)
    assert fetched == [cifar.CIFAR10_URL]
    np.testing.assert_array_equal(bundle.train.x, x_train)
    np.testing.assert_array_equal(bundle.train.y, y_train)
    # A second call finds the files and does not fetch again.
    load_cifar10(root, download=True, check_sizes=False)
    assert len(fetched) == 1


def test_download_with_wrong_checksum_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(download, "fetch_url", lambda url, dest: dest.write_bytes(b"not the archive"))
    with pytest.raises(ValueError, match="MD5 mismatch"):
        download.download_file("https://example.invalid/cifar-10-python.tar.gz", tmp_path, "0" * 32)
    assert list(tmp_path.iterdir()) == []


def test_extraction_refuses_path_traversal_and_links(tmp_path):
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        info = tarfile.TarInfo("../escaped.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"bad"))
    with pytest.raises(ValueError, match="outside"):
        download.extract_archive(evil, tmp_path / "out")
    assert not (tmp_path / "escaped.txt").exists()
    link = tmp_path / "link.tar.gz"
    with tarfile.open(link, "w:gz") as tar:
        info = tarfile.TarInfo("data/passwd")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(info)
    with pytest.raises(ValueError, match="not a regular file"):
        download.extract_archive(link, tmp_path / "out2")
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(evil.read_bytes()[:30])
    with pytest.raises(ValueError, match=r"cannot extract .*truncated\.tar\.gz.*corrupt"):
        download.extract_archive(truncated, tmp_path / "out3")


class _Payload:
    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return (os.mkdir, (str(self.target),))


def test_restricted_unpickler_never_calls_other_globals(tmp_path):
    target = tmp_path / "created_by_pickle"
    data = pickle.dumps({"data": _Payload(target)}, protocol=2)
    with pytest.raises(ValueError, match=r"cannot read evil\.pkl.*not allowed"):
        download.restricted_loads(data, source="evil.pkl")
    assert not target.exists()
    arrays = {"a": np.arange(5, dtype=np.uint8), "b": [b"x", "y", 3]}
    loaded = download.restricted_loads(pickle.dumps(arrays, protocol=2))
    np.testing.assert_array_equal(loaded["a"], np.arange(5))
    assert loaded["b"] == [b"x", "y", 3]


# ----------------------------------------------------------------------------------------------------
# CIFAR-10 / CIFAR-100, tiny official-format files
# ----------------------------------------------------------------------------------------------------


def test_tiny_cifar10_round_trip(tmp_path):
    x_train, y_train, x_test, y_test = write_tiny_cifar10(tmp_path)
    bundle = load_cifar10(tmp_path, check_sizes=False)
    assert bundle.train.x.shape == (60, 32, 32, 3) and bundle.train.x.dtype == np.uint8
    np.testing.assert_array_equal(bundle.train.x, x_train)  # planes -> channels last, in order
    np.testing.assert_array_equal(bundle.train.y, y_train)
    np.testing.assert_array_equal(bundle.test.x, x_test)
    np.testing.assert_array_equal(bundle.test.y, y_test)
    assert bundle.train.classes == cifar.CIFAR10_CLASSES
    # root may also be the batches folder itself
    np.testing.assert_array_equal(
        load_cifar10(tmp_path / "cifar-10-batches-py", check_sizes=False).test.y, y_test
    )


def test_tiny_cifar10_bad_files(tmp_path):
    write_tiny_cifar10(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    with pytest.raises(ValueError, match=r"data_batch_1 holds 12 images, expected 10000"):
        load_cifar10(tmp_path)
    good = (folder / "data_batch_3").read_bytes()
    (folder / "data_batch_3").write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match=r"cannot read .*data_batch_3"):
        load_cifar10(tmp_path, check_sizes=False)
    _dump({b"data": np.zeros((4, 3000), np.uint8), b"labels": [0, 1, 2, 3]}, folder / "data_batch_3")
    with pytest.raises(ValueError, match=r"data_batch_3: 'data' must be uint8 of shape \(N, 3072\)"):
        load_cifar10(tmp_path, check_sizes=False)
    _dump({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, folder / "data_batch_3")
    with pytest.raises(ValueError, match=r"labels of .*data_batch_3 contains 10"):
        load_cifar10(tmp_path, check_sizes=False)


def test_tiny_cifar100_python2_pickles(tmp_path):
    x, fine = write_tiny_cifar100(tmp_path)
    bundle = load_cifar100(tmp_path, check_sizes=False)
    np.testing.assert_array_equal(bundle.train.x, x)
    np.testing.assert_array_equal(bundle.train.y, fine)
    np.testing.assert_array_equal(bundle.label_sets["coarse"], cifar100_coarse_labels(fine))
    assert bundle.train.classes == CIFAR100_CLASSES and bundle.num_classes == 100
    with pytest.raises(ValueError, match=r"train holds 30 images, expected 50000"):
        load_cifar100(tmp_path)
    batch = {b"data": _planes(x), b"fine_labels": fine.tolist(), b"coarse_labels": [0] * len(fine)}
    _dump(batch, tmp_path / "cifar-100-python" / "test", py2=True)
    with pytest.raises(ValueError, match="coarse labels disagree"):
        load_cifar100(tmp_path, check_sizes=False)


def test_cifar100_superclass_table():
    assert len(CIFAR100_SUPERCLASSES) == 20 and len(CIFAR100_CLASSES) == 100 == len(set(CIFAR100_CLASSES))
    np.testing.assert_array_equal(np.bincount(CIFAR100_FINE_TO_COARSE), np.full(20, 5))
    names = dict(zip(CIFAR100_CLASSES, CIFAR100_FINE_TO_COARSE, strict=True))
    assert CIFAR100_SUPERCLASSES[names["whale"]] == "aquatic_mammals"
    assert CIFAR100_SUPERCLASSES[names["lawn_mower"]] == "vehicles_2"
    assert CIFAR100_FINE_TO_COARSE[:10] == (4, 1, 14, 8, 0, 6, 7, 7, 18, 3)
    with pytest.raises(ValueError, match="outside"):
        cifar100_coarse_labels([100])


def test_missing_cifar100_error_says_where_and_how(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"cifar-100-python.*missing: train, test, meta.*--download"):
        load_cifar100(tmp_path)


def test_cifar_loaders_share_one_documented_keyword_set():
    # Both loaders take the same typed keywords (LoaderOptions) and a docstring filled per archive.
    from noisy_labels.data.cifar import LoaderOptions

    assert list(LoaderOptions.__annotations__) == ["download", "human_labels", "check_sizes"]
    for loader, folder in ((load_cifar10, "cifar-10-batches-py"), (load_cifar100, "cifar-100-python")):
        doc = inspect.getdoc(loader)
        assert f"``root/{folder}``" in doc.splitlines()[0]
        assert all(f"{key} :" in doc for key in LoaderOptions.__annotations__)
    assert "coarse labels that disagree" in inspect.getdoc(load_cifar100)
    with pytest.raises(TypeError, match=r"takes 1 positional argument"):
        load_cifar10("root", True)
    with pytest.raises(TypeError, match="unexpected keyword argument 'downlaod'"):
        load_cifar100("root", downlaod=True)


# ----------------------------------------------------------------------------------------------------
# Shared data: rebuilt CIFAR-10, CIFAR-N, features, MNIST
# ----------------------------------------------------------------------------------------------------


def test_rebuilt_cifar10_matches_cifar10n(cifar10_root, shared_data):
    bundle = load_cifar10(cifar10_root, human_labels=shared_data)
    assert bundle.train.x.shape == (50000, 32, 32, 3) and bundle.train.x.dtype == np.uint8
    assert bundle.test.x.shape == (10000, 32, 32, 3)
    np.testing.assert_array_equal(np.bincount(bundle.train.y), np.full(10, 5000))
    np.testing.assert_array_equal(np.bincount(bundle.test.y), np.full(10, 1000))
    np.testing.assert_array_equal(bundle.train.y, load_cifar10n(shared_data)["clean"])
    assert set(bundle.label_sets) == {"clean", "aggre", "random1", "random2", "random3", "worst"}
    # CIFAR-10's per-channel means (R, G, B) are about 125.3, 123.0, 113.9: checks the channel order.
    np.testing.assert_allclose(bundle.train.x[:5000].reshape(-1, 3).mean(0), [125.3, 123.0, 113.9], atol=3)


def test_cifar10n_noise_rates(shared_data):
    sets = load_cifar10n(shared_data / "cifar-n" / "CIFAR-10_human.pt")
    rates = {k: np.mean(v != sets["clean"]) for k, v in sets.items()}
    expected = {
        "clean": 0.0,
        "aggre": 0.0903,
        "random1": 0.1723,
        "random2": 0.1812,
        "random3": 0.1764,
        "worst": 0.4021,
    }
    assert rates == pytest.approx(expected, abs=5e-4)
    assert all(v.dtype == np.int64 and v.shape == (50000,) for v in sets.values())


def test_cifar100n_noise_rate_and_superclasses(shared_data):
    sets = load_cifar100n(shared_data)
    assert set(sets) == {"clean", "noisy", "clean_coarse", "noisy_coarse"}
    assert np.mean(sets["noisy"] != sets["clean"]) == pytest.approx(0.402, abs=5e-4)
    # The superclass table written from the CIFAR page agrees with the file's coarse labels.
    np.testing.assert_array_equal(cifar100_coarse_labels(sets["clean"]), sets["clean_coarse"])
    np.testing.assert_array_equal(cifar100_coarse_labels(sets["noisy"]), sets["noisy_coarse"])


def test_cifar_n_reader_without_torch_agrees(shared_data):
    from noisy_labels.data import cifar_n

    path = shared_data / "cifar-n" / "CIFAR-10_human.pt"
    fallback = cifar_n._zip_pickle_load(path)
    via_torch = read_label_file(path)
    assert set(fallback) == set(via_torch)
    for key, labels in via_torch.items():
        np.testing.assert_array_equal(np.asarray(fallback[key]), labels)


def test_cifar_n_bad_files(tmp_path):
    bad = tmp_path / "CIFAR-10_human.pt"
    bad.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a torch zip archive"):
        load_cifar10n(bad)
    torch.save({"clean_label": np.zeros(50000, dtype=np.int64)}, bad)
    with pytest.raises(ValueError, match=r"lacks the key\(s\) \['aggre_label'"):
        load_cifar10n(tmp_path)
    with pytest.raises(FileNotFoundError, match="CIFAR-100_human.pt not found"):
        load_cifar100n(tmp_path)


def test_human_labels_must_be_aligned():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, 50000)
    bundle = DataBundle(ArrayDataset(np.zeros((50000, 2), np.float32), y, cifar.CIFAR10_CLASSES))
    assert cifar._attach(bundle, {"clean": y, "worst": y}, "file").label_sets.keys() == {"clean", "worst"}
    with pytest.raises(ValueError, match=r"do not match the training labels \(agreement 1[0-9]\.[0-9]%\)"):
        cifar._attach(bundle, {"clean": rng.permutation(y)}, "file")


def test_cifar10_features(shared_data):
    bundle = load_cifar10_features(shared_data)
    assert bundle.train.x.shape == (50000, 1280) and bundle.train.x.dtype == np.float32
    assert bundle.test.x.shape == (10000, 1280)
    np.testing.assert_array_equal(bundle.train.y, bundle.label_sets["clean"])
    np.testing.assert_array_equal(np.bincount(bundle.test.y), np.full(10, 1000))
    assert np.mean(bundle.label_sets["worst"] != bundle.train.y) == pytest.approx(0.4021, abs=5e-4)
    text = describe(bundle)
    assert "features 1280-d float32" in text and "label set worst: 40.2% differ from clean" in text


def test_shared_mnist(shared_data):
    bundle = load_mnist(shared_data)  # found in root/mnist
    assert bundle.train.x.shape == (60000, 28, 28, 1) and bundle.train.x.dtype == np.uint8
    assert bundle.test.x.shape == (10000, 28, 28, 1)
    assert bundle.train.y[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert np.bincount(bundle.train.y).tolist() == [
        5923,
        6742,
        5958,
        6131,
        5842,
        5421,
        5918,
        6265,
        5851,
        5949,
    ]
    assert bundle.train.x.max() == 255 and bundle.train.x.min() == 0


# ----------------------------------------------------------------------------------------------------
# MNIST, tiny idx files
# ----------------------------------------------------------------------------------------------------


def _write_tiny_mnist(root: Path, n: int = 7) -> np.ndarray:
    images = np.random.default_rng(3).integers(0, 256, (n, 28, 28), dtype=np.uint8)
    for prefix in ("train", "t10k"):
        write_idx(root / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", (np.arange(n) % 10).astype(np.uint8))
    return images


def test_tiny_mnist(tmp_path):
    images = _write_tiny_mnist(tmp_path)
    bundle = load_mnist(tmp_path, check_sizes=False)
    np.testing.assert_array_equal(bundle.train.x[..., 0], images)
    assert bundle.test.y.tolist() == list(range(7))
    with pytest.raises(ValueError, match="7 train images, expected 60000"):
        load_mnist(tmp_path)


def test_idx_header_checks(tmp_path):
    path = tmp_path / "values-idx2-int"
    write_idx(path, np.arange(-3, 3, dtype=np.int32).reshape(2, 3), type_code=0x0C)
    np.testing.assert_array_equal(read_idx(path), [[-3, -2, -1], [0, 1, 2]])
    with pytest.raises(ValueError, match="has 2 dimensions, expected 3"):
        read_idx(path, ndim=3)
    bad = tmp_path / "bad-idx1-ubyte.gz"
    bad.write_bytes(gzip.compress(b"\x00\x01\x08\x01\x00\x00\x00\x01\x05"))
    with pytest.raises(ValueError, match=r"bad-idx1-ubyte\.gz is not an idx file: bad magic number 00010801"):
        read_idx(bad)
    short = tmp_path / "short-idx1-ubyte"
    short.write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x05\x01\x02")
    with pytest.raises(ValueError, match=r"short-idx1-ubyte: header says shape \(5,\).*holds 2 bytes"):
        read_idx(short)
    truncated = tmp_path / "truncated.gz"
    truncated.write_bytes(gzip.compress(b"\x00" * 1000)[:20])
    with pytest.raises(ValueError, match=r"truncated\.gz: corrupt or truncated gzip"):
        read_idx(truncated)


def test_mnist_missing_and_bad_labels(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"MNIST not found in .*ossci-datasets"):
        load_mnist(tmp_path)
    _write_tiny_mnist(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.array([0, 1, 2, 3, 4, 5, 12], np.uint8))
    with pytest.raises(ValueError, match=r"labels in .*t10k-labels-idx1-ubyte\.gz contains 12"):
        load_mnist(tmp_path, check_sizes=False)


def test_mnist_download_path(tmp_path, monkeypatch):
    source = tmp_path / "source"
    source.mkdir()
    _write_tiny_mnist(source)
    from noisy_labels.data import mnist

    monkeypatch.setattr(mnist, "MNIST_FILES", {f: download.md5sum(source / f) for f in mnist.MNIST_FILES})
    monkeypatch.setattr(
        download, "fetch_url", lambda url, dest: shutil.copy(source / url.rsplit("/", 1)[1], dest)
    )
    bundle = load_mnist(tmp_path / "root", download=True, check_sizes=False)
    assert len(bundle.train) == 7 and sorted(p.name for p in (tmp_path / "root").iterdir()) == sorted(
        mnist.MNIST_FILES
    )


# ----------------------------------------------------------------------------------------------------
# Feature files
# ----------------------------------------------------------------------------------------------------


def test_npz_features_with_test_split(tmp_path):
    rng = np.random.default_rng(0)
    x, x_test = rng.normal(size=(20, 4)), rng.normal(size=(6, 4)).astype(np.float16)
    path = tmp_path / "feats.npz"
    np.savez(path, features=x, labels=np.arange(20) % 3, x_test=x_test, y_test=np.arange(6) % 3)
    bundle = load_features(path)
    assert bundle.train.x.dtype == np.float32 and bundle.test.x.dtype == np.float32
    np.testing.assert_allclose(bundle.train.x, x.astype(np.float32))
    assert bundle.train.classes == ("0", "1", "2") and bundle.test.y.tolist() == [0, 1, 2, 0, 1, 2]


def test_npz_string_labels_share_one_mapping(tmp_path):
    path = tmp_path / "named.npz"
    np.savez(
        path,
        x=np.ones((3, 2)),
        y=np.array(["dog", "cat", "dog"]),
        x_test=np.ones((2, 2)),
        y_test=["eel", "cat"],
    )
    bundle = load_features(path)
    assert bundle.train.classes == ("cat", "dog", "eel")
    assert bundle.train.y.tolist() == [1, 0, 1] and bundle.test.y.tolist() == [2, 0]
    assert encode_labels(["1", "0"], classes=("a", "b"))[0].tolist() == [1, 0]
    assert encode_labels(["b", "a"], classes=("b", "a"))[0].tolist() == [0, 1]


def test_npy_features_plus_labels(tmp_path):
    np.save(tmp_path / "x.npy", np.arange(12, dtype=np.float64).reshape(6, 2))
    np.save(tmp_path / "y.npy", np.array([0, 1, 1, 0, 2, 2]))
    bundle = load_features(tmp_path / "x.npy", labels=tmp_path / "y.npy")
    assert bundle.test is None and bundle.train.x.shape == (6, 2) and bundle.num_classes == 3
    with pytest.raises(ValueError, match="pass labels="):
        load_features(tmp_path / "x.npy")
    with pytest.raises(ValueError, match="shape mismatch"):
        load_features(tmp_path / "x.npy", labels=np.array([0, 1]))


def test_bad_feature_files(tmp_path):
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match=r"cannot read .*objects\.npy"):
        load_features(tmp_path / "objects.npy", labels=[0, 1])
    np.savez(tmp_path / "nokeys.npz", data=np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"nokeys\.npz has no key among \['x', 'X', 'features'\]"):
        load_features(tmp_path / "nokeys.npz")
    np.savez(tmp_path / "nan.npz", x=np.array([[1.0], [np.nan]]), y=[0, 1])
    with pytest.raises(ValueError, match="NaN"):
        load_features(tmp_path / "nan.npz")
    np.savez(tmp_path / "neg.npz", x=np.ones((2, 1)), y=[0, -1])
    with pytest.raises(ValueError, match="negative"):
        load_features(tmp_path / "neg.npz")
    with pytest.raises(FileNotFoundError):
        load_features(tmp_path / "absent.npz")


# ----------------------------------------------------------------------------------------------------
# Lazy image data sets
# ----------------------------------------------------------------------------------------------------


def test_read_image_resizes_and_crops(tmp_path):
    path = tmp_path / "wide.png"
    img = np.zeros((20, 40, 3), np.uint8)
    img[:, :10] = 255  # a white band on the left is cropped away by the center crop
    img[:, 15:25] = (10, 200, 30)
    Image.fromarray(img).save(path)
    out = read_image(path, 10)
    assert out.shape == (10, 10, 3) and out.dtype == np.uint8
    assert out[:, 0].min() < 50 and abs(int(out[5, 5, 1]) - 200) < 5
    assert read_image(path).shape == (20, 40, 3)
    assert read_image(path, 8, resize=16, mode="L").shape == (8, 8, 1)
    with pytest.raises(ValueError, match="resize"):
        read_image(path, 8, resize=4)
    (tmp_path / "broken.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match=r"cannot decode image .*broken\.png"):
        read_image(tmp_path / "broken.png", 8)
    with pytest.raises(FileNotFoundError, match="absent.png"):
        read_image(tmp_path / "absent.png", 8)


def test_image_list_dataset_items(tmp_path):
    paths = [tmp_path / f"{i}.png" for i in range(3)]
    for i, p in enumerate(paths):
        write_image(p, (12, 9), (i * 100, 0, 0))
    ds = ImageListDataset(paths, [2, 0, 1], ("a", "b", "c"), image_size=8)
    image, label, index = ds[2]
    assert isinstance(image, torch.Tensor) and image.shape == (3, 8, 8) and image.dtype == torch.uint8
    assert (label, index) == (1, 2) and int(image[0, 4, 4]) == 200
    loader = torch.utils.data.DataLoader(ds, batch_size=3)
    images, labels, indices = next(iter(loader))
    assert images.shape == (3, 3, 8, 8) and labels.tolist() == [2, 0, 1] and indices.tolist() == [0, 1, 2]
    plain = ImageListDataset(paths, [0, 0, 1], ("a", "b"), image_size=8, as_tensor=False)
    assert plain[0][0].shape == (8, 8, 3)
    assert ds.with_labels([0, 0, 0])[1][1] == 0 and ds[1][1] == 0 and ds.labels.tolist() == [2, 0, 1]
    arrays = to_array_dataset(ds)
    assert arrays.x.shape == (3, 8, 8, 3) and arrays.y.tolist() == [2, 0, 1] and arrays.x[1, 0, 0, 0] == 100
    with pytest.raises(ValueError, match="max_bytes"):
        to_array_dataset(ds, max_bytes=100)
    with pytest.raises(ValueError, match="contains 3, outside"):
        ImageListDataset(paths, [0, 1, 3], ("a", "b", "c"))


def test_missing_pillow_message(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(ImportError, match=r"pip install noisy-labels\[images\]"):
        read_image(tmp_path / "x.png", 8)


def _write_clothing1m(root: Path) -> None:
    keys = [f"images/{i % 2}/0{i}/{i}.jpg" for i in range(8)]
    for i, key in enumerate(keys):
        write_image(root / key, (30 + i, 20), (20 * i, 10, 10))
    (root / "noisy_label_kv.txt").write_text("".join(f"{k} {i % 14}\n" for i, k in enumerate(keys[:6])))
    (root / "clean_label_kv.txt").write_text("".join(f"{k} {13 - i}\n" for i, k in enumerate(keys[3:], 3)))
    (root / "noisy_train_key_list.txt").write_text("\n".join(keys[:6]) + "\n")
    (root / "clean_train_key_list.txt").write_text(f"{keys[3]}\n{keys[4]}\n")
    (root / "clean_val_key_list.txt").write_text(f"{keys[5]}\n{keys[6]}\n")
    (root / "clean_test_key_list.txt").write_text(f"{keys[7]}\n")


def test_clothing1m_layout(tmp_path):
    _write_clothing1m(tmp_path)
    splits = load_clothing1m(tmp_path, image_size=16, resize=18)
    assert {k: len(v) for k, v in splits.items()} == {"noisy_train": 6, "clean_train": 2, "val": 2, "test": 1}
    assert splits["noisy_train"].labels.tolist() == [0, 1, 2, 3, 4, 5]
    assert splits["clean_train"].labels.tolist() == [10, 9] and splits["test"].labels.tolist() == [6]
    assert splits["val"].classes[11] == "Dress" and splits["val"].num_classes == 14
    image, label, index = splits["val"][1]
    assert image.shape == (3, 16, 16) and (label, index) == (7, 1)
    (tmp_path / "clean_test_key_list.txt").write_text("images/9/99/missing.jpg\n")
    with pytest.raises(
        ValueError, match=r"clean_test_key_list\.txt: 1 key\(s\) have no label in clean_label_kv"
    ):
        load_clothing1m(tmp_path)
    (tmp_path / "clean_label_kv.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"Clothing1M not found .*clean_label_kv\.txt"):
        load_clothing1m(tmp_path)


def test_webvision_mini_layout(tmp_path):
    train = [
        ("google/q0001/a.jpg", 0),
        ("google/q0002/b.jpg", 1),
        ("google/q0051/c.jpg", 50),
        ("google/q0003/d.jpg", 49),
    ]
    for path, _ in train:
        write_image(tmp_path / path, (24, 24), (0, 0, 255))
    write_image(tmp_path / "val_images_256" / "v1.jpg", (24, 24), (0, 255, 0))
    write_image(tmp_path / "val_images_256" / "v2.jpg", (24, 24), (0, 255, 0))
    (tmp_path / "info").mkdir()
    (tmp_path / "info" / "train_filelist_google.txt").write_text("".join(f"{p} {y}\n" for p, y in train))
    (tmp_path / "info" / "val_filelist.txt").write_text("v1.jpg 3\nv2.jpg 700\n")
    imagenet = tmp_path / "imagenet_val"
    write_image(imagenet / "ILSVRC2012_val_00000001.JPEG", (24, 24), (9, 9, 9))
    (imagenet / "labels.txt").write_text("ILSVRC2012_val_00000001.JPEG 4\nILSVRC2012_val_00000002.JPEG 999\n")
    splits = load_webvision_mini(tmp_path, image_size=8, imagenet_val=imagenet / "labels.txt")
    assert splits["train"].labels.tolist() == [0, 1, 49] and splits["train"].num_classes == 50
    assert splits["val"].labels.tolist() == [3] and splits["imagenet_val"].labels.tolist() == [4]
    assert splits["val"][0][0].shape == (3, 8, 8) and int(splits["val"][0][0][1, 4, 4]) > 240
    assert splits["imagenet_val"][0][0].shape == (3, 8, 8)
    (tmp_path / "info" / "val_filelist.txt").write_text("v1.jpg three\n")
    with pytest.raises(ValueError, match=r"val_filelist\.txt, line 1: expected '<path> <integer label>'"):
        load_webvision_mini(tmp_path)


def test_image_folder_and_csv(tmp_path):
    for cls, color in (("dog", (200, 0, 0)), ("cat", (0, 200, 0))):
        for i in range(2):
            write_image(tmp_path / "imgs" / cls / f"{i}.png", (10, 10), color)
    (tmp_path / "imgs" / "cat" / "notes.txt").write_text("not an image")
    folder = load_image_folder(tmp_path / "imgs", image_size=4)
    assert folder.classes == ("cat", "dog") and folder.labels.tolist() == [0, 0, 1, 1]
    assert int(folder[3][0][0, 2, 2]) == 200
    (tmp_path / "list.csv").write_text(
        "path,label\nimgs/dog/0.png,dog\nimgs/cat/1.png,cat\nimgs/dog/1.png,dog\n"
    )
    listed = load_image_csv(tmp_path / "list.csv", image_size=4)
    assert listed.classes == ("cat", "dog") and listed.labels.tolist() == [1, 0, 1]
    (tmp_path / "ints.csv").write_text(f"{tmp_path / 'imgs/dog/0.png'},1\nimgs/cat/0.png,0\n")
    ints = load_image_csv(tmp_path / "ints.csv", image_size=4, classes=("cat", "dog"))
    assert ints.labels.tolist() == [1, 0] and int(ints[0][0][0, 0, 0]) == 200
    (tmp_path / "bad.csv").write_text("imgs/dog/0.png,1,extra\n")
    with pytest.raises(ValueError, match=r"bad\.csv: row 1 has 3 fields"):
        load_image_csv(tmp_path / "bad.csv")


# ----------------------------------------------------------------------------------------------------
# Digits and the registry
# ----------------------------------------------------------------------------------------------------


def test_digits_forms_and_split():
    features = load_digits()
    assert features.train.x.shape == (1297, 64) and features.test.x.shape == (500, 64)
    assert (
        features.train.x.dtype == np.float32
        and features.train.x.max() == 1.0
        and features.train.x.min() == 0.0
    )
    counts = np.bincount(features.test.y)
    assert counts.min() >= 48 and counts.max() <= 51  # stratified: about 500/10 per class
    images = load_digits(form="images")
    assert (
        images.train.x.shape == (1297, 8, 8, 1)
        and images.train.x.dtype == np.uint8
        and images.train.x.max() == 255
    )
    np.testing.assert_array_equal(images.train.y, features.train.y)
    np.testing.assert_allclose(images.train.x.reshape(1297, 64) / 255, features.train.x, atol=1 / 255)
    np.testing.assert_array_equal(load_digits(seed=0).test.y, features.test.y)
    assert not np.array_equal(load_digits(seed=1).test.y, features.test.y)
    with pytest.raises(ValueError, match="form must be"):
        load_digits(form="pixels")


def test_registry_names_and_errors(tmp_path):
    assert set(KNOWN_DATASETS) == {"digits", "mnist", "cifar10", "cifar100", "cifar10_features"}
    assert load_dataset("digits", form="images").train.x.shape == (1297, 8, 8, 1)
    with pytest.raises(ValueError, match=r"unknown data set 'cifar11'; known names: digits, mnist, cifar10"):
        load_dataset("cifar11")
    with pytest.raises(
        ValueError, match=r"unknown option\(s\) \['shape'\] for digits; valid options: \['form'"
    ):
        load_dataset("digits", shape=3)
    with pytest.raises(FileNotFoundError, match="no data set file or folder"):
        load_dataset(str(tmp_path / "absent.npz"))
    with pytest.raises(FileNotFoundError, match="CIFAR-10 not found"):
        load_dataset("cifar10", tmp_path)


def test_registry_paths(tmp_path):
    np.savez(tmp_path / "f.npz", x=np.ones((4, 3)), y=[0, 1, 0, 1])
    assert load_dataset(tmp_path / "f.npz").train.x.shape == (4, 3)
    for split in ("train", "test"):
        for cls in ("a", "b"):
            write_image(tmp_path / "tree" / split / cls / "0.png", (6, 6), (50, 60, 70))
    bundle = load_dataset(str(tmp_path / "tree"), image_size=5)
    assert bundle.train.x.shape == (2, 5, 5, 3) and bundle.test.y.tolist() == [0, 1]
    assert bundle.train.x[0, 2, 2].tolist() == [50, 60, 70]
    (tmp_path / "tree" / "list.csv").write_text("train/a/0.png,a\ntrain/b/0.png,b\n")
    assert load_dataset(tmp_path / "tree" / "list.csv", image_size=3).train.x.shape == (2, 3, 3, 3)


def test_describe_reports_noise_rates():
    y = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    noisy = y.copy()
    noisy[:3] = (noisy[:3] + 1) % 3
    bundle = DataBundle(
        ArrayDataset(np.zeros((10, 4), np.float32), y, ("a", "b", "c")),
        label_sets={"clean": y, "noisy": noisy, "coarse": y % 2},
    )
    text = describe(bundle)
    assert text.splitlines()[0] == "train: 10 samples, features 4-d float32"
    assert "classes (3): a, b, c" in text and "train class counts: a 4, b 3, c 3" in text
    assert "label set noisy: 30.0% differ from clean" in text
    assert "label set coarse: 10 labels, 2 distinct values" in text


def test_tiny_zip_is_not_a_pickle_bypass(tmp_path):
    # A torch-style zip whose data.pkl calls os.mkdir must be refused by both readers.
    from noisy_labels.data import cifar_n

    target = tmp_path / "created"
    path = tmp_path / "evil.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({"clean_label": _Payload(target)}, protocol=2))
        archive.writestr("archive/version", "3\n")
    with pytest.raises(ValueError):
        read_label_file(path)
    with pytest.raises(ValueError, match="not allowed"):
        cifar_n._zip_pickle_load(path)
    assert not target.exists()
