"""Shared fixtures: the shared data folder beside the repository, and CIFAR-10 rebuilt from it once."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from shared_settings import one_torch_thread

SHARED_DATA = (Path(__file__).resolve().parents[1] / ".." / "shared" / "data").resolve()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not available at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def cifar10_root(shared_data, tmp_path_factory) -> Path:
    """CIFAR-10 rebuilt in the official python format, built once and cached across runs."""
    script = shared_data / "build_cifar10.py"
    stamp = hashlib.md5(script.read_bytes()).hexdigest()  # rebuild when the build script changes
    cache = (
        Path(os.environ.get("NOISY_LABELS_TEST_CACHE", "~/.cache/noisy_labels_test")).expanduser() / "cifar10"
    )
    marker = cache / ".complete"
    if marker.is_file() and marker.read_text().strip() == stamp:
        return cache
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        building = cache.parent / f"cifar10.building-{os.getpid()}"
    except OSError:  # read-only home: build for this session only
        cache = tmp_path_factory.mktemp("cifar10")
        building = cache
    subprocess.run([sys.executable, str(script), str(building)], check=True, capture_output=True)
    (building / ".complete").write_text(stamp)
    if building != cache:
        shutil.rmtree(cache, ignore_errors=True)
        os.replace(building, cache)
    return cache


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module: ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    with one_torch_thread():
        yield
