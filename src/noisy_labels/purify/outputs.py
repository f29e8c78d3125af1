"""What ``noisy-labels purify`` writes: per-sample CSV, soft labels, the suspects report and a summary."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from ..metrics import rank_issues
from .pipeline import PurifyResult

__all__ = ["OUTPUT_FILES", "write_outputs", "format_report"]

OUTPUT_FILES = ("purified.csv", "soft_labels.npy", "suspects.csv", "summary.json")


def write_outputs(
    out: str | Path,
    result: PurifyResult,
    given: np.ndarray,
    *,
    params: dict[str, Any],
    true_labels: np.ndarray | None = None,
) -> dict[str, Any]:
    """Write the purification's files to ``out`` and return the summary.

    Files
    -----
    ``purified.csv``
        ``index,given_label,purified_label,cleanness``, one row per training sample, in input order.
    ``soft_labels.npy``
        (N, C) float32 purified label distributions.
    ``suspects.csv``
        The samples whose purified label differs from the given one, most likely mislabelled first
        (ascending cleanness), with the purified label's probability as ``confidence``.
    ``summary.json``
        Counts, the given -> purified label flows (C x C), timings, parameters and the per-epoch history;
        ``label_acc_before``/``label_acc`` when true labels were given.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    n, c = result.soft_labels.shape
    hard, clean_score = result.hard_labels, result.cleanness
    with open(out / "purified.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["index", "given_label", "purified_label", "cleanness"])
        w.writerows(
            zip(range(n), given.tolist(), hard.tolist(), (f"{s:.6f}" for s in clean_score), strict=True)
        )
    np.save(out / "soft_labels.npy", result.soft_labels.astype(np.float32))
    changed = rank_issues(given, hard, clean_score)
    confidence = result.soft_labels[np.arange(n), hard]
    with open(out / "suspects.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["rank", "index", "given_label", "purified_label", "cleanness", "confidence"])
        for rank, i in enumerate(changed, 1):
            w.writerow(
                [rank, int(i), int(given[i]), int(hard[i]), f"{clean_score[i]:.6f}", f"{confidence[i]:.6f}"]
            )
    flows = np.zeros((c, c), dtype=np.int64)
    np.add.at(flows, (given, hard), 1)
    summary: dict[str, Any] = {
        "num_samples": int(n),
        "num_classes": int(c),
        "changed": int(len(changed)),
        "changed_fraction": float(len(changed) / n),
        "flows": flows.tolist(),
        "setup_seconds": result.setup_seconds,
        "seconds": result.seconds,
        "params": params,
    }
    if result.calibration:  # relabel=calibrated: the margin threshold and how it was chosen
        summary["calibration"] = result.calibration_record()
    if true_labels is not None:
        summary["label_acc_before"] = float((given == true_labels).mean())
        summary["label_acc"] = float((hard == true_labels).mean())
    summary["history"] = result.history
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def format_report(summary: dict[str, Any], out: str | Path, *, top: int = 20) -> str:
    """A short text report: the summary and the ``top`` most likely mislabelled samples."""
    out = Path(out)
    lines = [
        f"purified {summary['num_samples']} labels ({summary['num_classes']} classes) in "
        f"{summary['seconds']:.1f} s: {summary['changed']} changed ({summary['changed_fraction']:.1%})",
    ]
    cal = summary.get("calibration")
    if cal:
        tau = "inf (every given label kept)" if cal["threshold"] is None else f"{cal['threshold']:.2f}"
        rate = "" if cal.get("noise_rate") is None else f", estimated noise rate {cal['noise_rate']:.3f}"
        lines.append(f"relabel where log(q_purified / q_given) > {tau} (calibrated on probes{rate})")
    if "label_acc" in summary:
        lines.append(f"label accuracy {summary['label_acc_before']:.4f} -> {summary['label_acc']:.4f}")
    with open(out / "suspects.csv") as f:
        rows = list(csv.reader(f))[1 : top + 1]
    if rows:
        lines.append(f"most likely mislabelled (of {summary['changed']}, all in {out / 'suspects.csv'}):")
        lines.append(f"{'rank':>5} {'index':>8} {'given':>6} {'purified':>9} {'cleanness':>10}")
        lines += [f"{r[0]:>5} {r[1]:>8} {r[2]:>6} {r[3]:>9} {float(r[4]):>10.4f}" for r in rows]
    lines.append(f"written: {', '.join(str(out / name) for name in OUTPUT_FILES)}")
    return "\n".join(lines)
