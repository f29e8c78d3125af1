"""``noisy-labels demo``: the library's methods side by side on scikit-learn's digits, 50% symmetric noise.

Needs nothing downloaded. Every method runs from its defaults; the demo fixes only the setting: the data,
the noise, a class-balanced clean (meta) set of ``meta.size`` samples carved from the training set (the
methods that take one get it; RMNW-Net's meta set is noisy by its default), the model and the epochs. The
runs go to worker processes with one torch thread each, so two CPU cores finish them in well under two
minutes. It prints a line per finished run, then a table of best/last test accuracy, the accuracy of the
corrected labels and the cleanness AUC, and writes ``report.md`` and ``test_accuracy.png``.
"""

from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import torch

from .engine import load_config, run_experiment
from .report import load_run, plot_curves, summary_table

REFERENCE = "ce"  # cross-entropy on the given (noisy) labels: the first row, the bar to beat
LIBRARY_METHODS = ("dmlp", "emlc", "l2b", "rmnwnet", "flywheel")
# The two registered baselines that do best in this setting from their defaults. Measured over seeds 0-2
# (best / last test accuracy, %): ELR 96.4 / 96.3, DivideMix 95.1 / 94.8; then ELR+ 93.9 / 93.9,
# Co-teaching 93.6 / 91.9, L2RW 93.5 / 91.7, MAE 93.4 / 93.2, MW-Net 92.9 / 91.1; CE 90.7 / 76.3.
BEST_BASELINES = ("dividemix", "elr")
DEMO_METHODS = (REFERENCE, *LIBRARY_METHODS, *BEST_BASELINES)
DEMO_SETTINGS = [
    "dataset=digits",
    "noise.protocol=symmetric",
    "noise.rate=0.5",
    "meta.size=100",
    "model.name=mlp",
    "epochs=200",
    "checkpoint_every=50",  # a checkpoint per epoch costs CE a third of its time here
    "quiet=true",
]
TITLE = "digits, 50% symmetric noise, 100 clean samples"
TABLE_COLUMNS = [  # report.COLUMNS' metrics, named in full
    ("best_test_acc", "best"),
    ("last_test_acc", "last"),
    ("label_acc", "corrected-label acc"),
    ("cleanness_auc", "cleanness AUC"),
]


def _one_thread() -> None:
    """Worker initialiser: one torch thread per run, so ``workers`` runs share as many cores."""
    torch.set_num_threads(1)


def _run_one(overrides: list[str], overwrite: bool) -> dict[str, Any]:
    """One run; its summary plus the wall time."""
    start = time.perf_counter()
    summary = run_experiment(load_config(None, overrides), overwrite=overwrite)
    return {**summary, "wall_seconds": time.perf_counter() - start}


def _progress(name: str, summary: dict[str, Any]) -> str:
    metrics = "".join(
        f"  {title} {summary[key] * 100:5.1f}" for key, title in TABLE_COLUMNS if summary.get(key) is not None
    )
    return f"  {name:10s}{metrics}  ({summary['wall_seconds']:.1f} s)"


def run_demo(
    out_dir: str | Path = "runs/demo",
    *,
    methods=DEMO_METHODS,
    overwrite: bool = False,
    extra: list[str] | None = None,
    workers: int = 2,
) -> str:
    """Run each method, write ``out_dir/report.md`` and ``out_dir/test_accuracy.png``; return the table.

    ``extra`` are ``key=value`` overrides for every run (e.g. ``epochs=3``). ``workers`` runs go at once,
    each in its own process on one torch thread; ``workers=1`` runs them one by one in this process.
    """
    out = Path(out_dir)
    overrides = {
        name: [*DEMO_SETTINGS, f"method={name}", f"out={out / name}", *(extra or [])] for name in methods
    }
    for name, pairs in overrides.items():
        load_config(None, pairs)  # a bad method name or setting fails before any run starts
        if (out / name).exists() and not overwrite:
            raise FileExistsError(f"{out / name} exists; pass --overwrite to replace it.")
    if workers <= 1:
        for name, pairs in overrides.items():
            print(_progress(name, _run_one(pairs, overwrite)), flush=True)
    else:
        # spawn, not fork: a forked child of a process that has run torch's OpenMP pool can hang.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(
            max_workers=min(workers, len(methods)), mp_context=context, initializer=_one_thread
        ) as pool:
            futures = {pool.submit(_run_one, pairs, overwrite): name for name, pairs in overrides.items()}
            for future in as_completed(futures):
                print(_progress(futures[future], future.result()), flush=True)
    runs = [load_run(out / name) for name in methods]
    table = summary_table(runs, TABLE_COLUMNS, method_only=True, missing="")
    note = f"Given labels: {(1.0 - runs[0].summary['realised_rate']) * 100:.1f}% correct."
    if REFERENCE in methods:
        note += f" {REFERENCE}: cross-entropy on them, the reference."
    plot = plot_curves(runs, out / "test_accuracy.png", "test_acc", title=TITLE)
    figure = f"\n![test accuracy]({plot.name})\n" if plot is not None else ""  # None: no curve to draw
    (out / "report.md").write_text(
        f"# Demo: {TITLE}\n\nTest accuracy (%), best and last epoch; accuracy of the corrected training "
        f"labels and AUC of the per-sample cleanness scores (%), where the method gives them. {note}\n\n"
        f"{table}\n{figure}"
    )
    return f"{table}\n\n{note}"
