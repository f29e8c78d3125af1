"""Reports over run directories: a markdown table (mean +- std over seeds) and per-epoch curves.

Runs that differ only in their seed (and output folder) form one row, so three seeds of a setting give
one "mean +- std" line, the way the papers report them.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._files import save_figure
from ._validation import read_user_file
from .config import read_yaml_file

COLUMNS = [
    ("best_test_acc", "best acc"),
    ("last_test_acc", "last acc"),
    ("label_acc", "label acc"),
    ("cleanness_auc", "clean AUC"),
    ("seconds", "seconds"),
]


@dataclass
class Run:
    path: Path
    config: dict[str, Any]
    summary: dict[str, Any]
    history: list[dict[str, Any]]

    @property
    def setting(self) -> str:
        """The run's setting without seed and output folder, as one label (for plot legends)."""
        return " / ".join(self.setting_parts)

    @property
    def setting_parts(self) -> tuple[str, str, str, str]:
        """Data set, noise, meta-set size and method: the table's first columns."""
        c = self.config
        noise = c["noise"]
        noise_text = (
            "clean"
            if noise["protocol"] == "none"
            else (
                f"{noise['protocol']} {noise['label_set']}"
                if noise["protocol"] == "human"
                else f"{noise['protocol']} {noise['rate']:g}"
            )
        )
        return (str(c["dataset"]), noise_text, str(c["meta"]["size"]), str(c["method"]))

    @property
    def group_key(self) -> str:
        c = {k: v for k, v in self.config.items() if k not in ("seed", "out", "quiet")}
        c["noise"] = {k: v for k, v in c["noise"].items() if k != "seed"}
        return json.dumps(c, sort_keys=True, default=str)


def load_run(path: str | Path) -> Run:
    p = Path(path)
    summary_path = p / "summary.json"
    if not summary_path.exists():
        raise FileNotFoundError(f"{p} is not a finished run (no summary.json).")
    config = read_yaml_file(p / "config.yaml", "run config")
    summary = read_user_file(summary_path, "run summary", lambda f: json.loads(f.read_text()))
    history = []
    if (p / "metrics.jsonl").exists():
        history = read_user_file(p / "metrics.jsonl", "run metrics", _json_lines)
    for name, value in (("config.yaml", config), ("summary.json", summary), ("metrics.jsonl", history)):
        items = value if isinstance(value, list) else [value]
        if not all(isinstance(item, dict) for item in items):
            raise ValueError(
                f"{p / name} does not hold what a run writes there (mappings of keys to values)."
            )
    return Run(path=p, config=config, summary=summary, history=history)


def _json_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def group_runs(runs: list[Run]) -> dict[str, list[Run]]:
    groups: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        groups[run.group_key].append(run)
    return dict(groups)


def mean_std(values: list[float], spec: str = ".2f") -> str:
    """``'78.51 +- 0.32'`` (sample std over seeds); plain mean for one value.

    >>> mean_std([0.7, 0.72, 0.71], spec=".3f"), mean_std([78.5])
    ('0.710 +- 0.010', '78.50')
    """
    arr = np.asarray(values, dtype=float)
    mean = format(arr.mean(), spec)
    return mean if len(arr) == 1 else f"{mean} +- {format(arr.std(ddof=1), spec)}"


def summary_table(
    runs: list[Run],
    columns: list[tuple[str, str]] = COLUMNS,
    *,
    method_only: bool = False,
    missing: str = "-",
) -> str:
    """A markdown table, one row per setting, percent for accuracies and AUC.

    ``method_only``: the runs share one setting but the method, so a row is named by its method alone
    (no seed count); ``missing`` fills a cell that no run of the row reports.
    """
    head = ["method"] if method_only else ["data set", "noise", "meta set", "method", "seeds"]
    align = ["---"] if method_only else ["---", "---", "---:", "---", "---:"]
    lines = [
        "| " + " | ".join([*head, *(title for _, title in columns)]) + " |",
        "|" + "|".join([*align, *["---:"] * len(columns)]) + "|",
    ]
    for group in group_runs(runs).values():
        cells = []
        for key, _ in columns:
            values = [r.summary[key] for r in group if r.summary.get(key) is not None]
            scale = 1.0 if key == "seconds" else 100.0
            cells.append(mean_std([v * scale for v in values]) if values else missing)
        parts = group[0].setting_parts
        label = [parts[-1]] if method_only else [*parts, str(len(group))]
        lines.append("| " + " | ".join([*label, *cells]) + " |")
    return "\n".join(lines)


def plot_curves(
    runs: list[Run], path: str | Path, key: str = "test_acc", title: str | None = None
) -> Path | None:
    """One line per setting (mean over seeds, shaded +- std) of ``key`` per epoch; None if no run has it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    drawn = False
    for group in group_runs(runs).values():
        curves = [[r[key] * 100 for r in run.history if r.get(key) is not None] for run in group]
        curves = [c for c in curves if c]
        if not curves:
            continue
        length = min(map(len, curves))
        arr = np.array([c[:length] for c in curves])
        epochs = np.arange(1, length + 1)
        mean = arr.mean(0)
        (line,) = ax.plot(
            epochs,
            mean,
            label=group[0].setting_parts[-1] if _one_setting_but_method(runs) else group[0].setting,
        )
        if len(arr) > 1:
            ax.fill_between(epochs, mean - arr.std(0), mean + arr.std(0), color=line.get_color(), alpha=0.2)
        drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"{key.replace('_', ' ')} (%)")
    ax.set_title(title or key.replace("_", " "))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path, dpi=120)


def _one_setting_but_method(runs: list[Run]) -> bool:
    """True when all runs share data, noise and meta set, so the legend can name the method alone."""
    return len({r.setting_parts[:-1] for r in runs}) == 1


PLOTS = (
    ("test_acc", "test_accuracy.png"),
    ("label_acc", "label_accuracy.png"),
    ("cleanness_auc", "cleanness_auc.png"),
)
REPORT_FILES = ("report.md", *(name for _, name in PLOTS))


def write_report(run_dirs: list[str | Path], out_dir: str | Path, *, overwrite: bool = False) -> Path:
    """``report.md`` with the table and the plots of test accuracy and label accuracy; returns its path.

    Raises
    ------
    FileExistsError
        ``out_dir`` holds a report's file and ``overwrite`` is False. With ``overwrite`` the earlier
        report's files (:data:`REPORT_FILES`, nothing else) are removed first, so no stale plot remains.
    """
    runs = [load_run(p) for p in run_dirs]
    if not runs:
        raise ValueError("no run directories given.")
    out = Path(out_dir)
    earlier = [out / name for name in REPORT_FILES if (out / name).exists()]
    if earlier and not overwrite:
        raise FileExistsError(f"{earlier[0]} exists; pass --overwrite to replace the report in {out}.")
    for path in earlier:
        path.unlink()
    out.mkdir(parents=True, exist_ok=True)
    parts = ["# noisy_labels report", "", summary_table(runs), ""]
    for key, name in PLOTS:
        if plot_curves(runs, out / name, key) is not None:
            parts += [f"![{key}]({name})", ""]
    parts += ["Runs:", *[f"- `{r.path}`" for r in runs], ""]
    path = out / "report.md"
    path.write_text("\n".join(parts))
    return path
