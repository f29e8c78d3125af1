"""The guide stays runnable: docs/guide.md and examples/guide.ipynb hold the same code, and the notebook runs.

The notebook runs on a 3,000-image subset with 5 epochs (``GUIDE_SUBSET``, ``GUIDE_EPOCHS``), on the shared
CIFAR-10 features; it skips when the shared data folder (``../shared/data`` beside the repository) is
absent.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "examples" / "guide.ipynb"
GUIDE = REPO / "docs" / "guide.md"
SHARED = (REPO / ".." / "shared" / "data").resolve()


def _code_cells() -> list[str]:
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    return ["".join(c["source"]).strip("\n") for c in cells if c["cell_type"] == "code"]


def test_guide_and_notebook_hold_the_same_code():
    blocks = [b.strip("\n") for b in re.findall(r"^```python\n(.*?)^```", GUIDE.read_text(), re.S | re.M)]
    runnable = [b for b in blocks if not b.startswith("from noisy_labels.data.noise import apply_noise")]
    assert runnable == _code_cells(), "docs/guide.md and examples/guide.ipynb differ: edit both"


def test_notebook_runs_on_a_subset(monkeypatch, tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    if not (SHARED / "features").is_dir() or not (SHARED / "cifar-n").is_dir():
        pytest.skip(f"the guide needs the shared CIFAR-10 features and CIFAR-10N labels in {SHARED}")
    for key, value in {
        "NOISY_LABELS_DATA": str(SHARED),
        "GUIDE_SUBSET": "3000",
        "GUIDE_EPOCHS": "5",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }.items():
        monkeypatch.setenv(key, value)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    text = "\n".join(
        out.get("text", "") for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs
    )
    assert "3000 training images" in text
    assert "wrong among the 10% ranked most suspicious" in text
    assert "cross-entropy on the purified labels" in text
    assert "label_issues.csv" in text
    accuracies = [float(m) for m in re.findall(r"^\s*(\d+\.\d+)%  ", text, re.M)]
    assert len(accuracies) == 5 and all(a > 30 for a in accuracies)  # 10 classes: chance is 10%
