"""Label-issue ranking: noisy_labels' methods vs cleanlab on the shared CIFAR-10 features.

The question (issue 10): is our ranking of suspected label errors better than cleanlab's
``find_label_issues`` on the same features? cleanlab gets what its documentation asks for, out-of-fold
predicted probabilities (5-fold, a multinomial logistic-regression head on the standardised features,
``benchmarks/suite.py``'s head); our methods train on the features directly
(:class:`noisy_labels.sklearn.NoisyLabelClassifier`, default settings).

Settings: CIFAR-10N ``worst`` (human labels, 40.2% wrong) and symmetric 50% (``apply_noise``, seed 0),
each without a clean set (all 50k samples) and with a class-balanced 1k clean set carved from the true
labels (the other 49k are ranked; cleanlab's folds then train on the clean set too, our ``auto`` adds it
to its training data, ``dmlp`` and ``mwnet`` use it as their meta set).

Metrics over the ranked samples (N = 50k or 49k), against the true labels:

* P@10%: precision among the N/10 samples ranked most suspicious (cleanlab: the head of
  ``find_label_issues(..., return_indices_ranked_by='self_confidence')``);
* AUC: ROC-AUC of the full ranking (ours: ``cleanness_``; cleanlab: ``get_label_quality_scores``);
* flagged / precision / recall: of the boolean mask (cleanlab's default ``prune_by_noise_rate`` mask; ours:
  the method's corrected label differs from the given one);
* test acc: our classifier's test accuracy; for cleanlab, the same logistic head refitted on the
  samples it did not flag (plus the clean set).

``CleanLearning.find_label_issues`` runs the same out-of-fold procedure and ``find_label_issues`` on it, so
it is not a separate row. One seed, one CPU thread:

    OMP_NUM_THREADS=1 python benchmarks/label_issues.py   # ~8 min -> benchmarks/results/label_issues.md
    python benchmarks/label_issues.py --report-only        # rewrite the .md from the stored .json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data"
RESULTS = HERE / "results"

# Our rows: (label, method, extra NoisyLabelClassifier parameters, needs the clean set).
OURS = [
    ("auto (elr)", "auto", {}, False),
    ("auto (elr) + clean set", "auto", {}, True),
    ("dmlp", "dmlp", {}, True),
    # MW-Net with its shipped feature recipe (configs/cifar10_features_mwnet_unif60.yaml).
    ("mwnet", "mwnet", {"optimizer": "sgd", "lr": 0.005, "batch_size": 100, "epochs": 15}, True),
]


# ------------------------------------------------------------------------------------------- data
def load(root: Path) -> dict[str, Any]:
    from noisy_labels.data.noise import apply_noise
    from noisy_labels.data.registry import load_dataset

    bundle = load_dataset("cifar10_features", root)
    true = bundle.train.y
    sym = apply_noise(true, num_classes=10, protocol="symmetric", rate=0.5, seed=0).noisy_labels
    return {
        "x": bundle.train.x,
        "true": true,
        "x_test": bundle.test.x,
        "y_test": bundle.test.y,
        "noisy": {"worst": bundle.label_sets["worst"], "sym50": sym},
    }


# ------------------------------------------------------------------------------------------ metrics
def scores(wrong: np.ndarray, ranking: np.ndarray, quality: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """P@10% of ``ranking`` (most suspicious first), AUC of ``quality``, precision/recall of ``mask``."""
    from sklearn.metrics import roc_auc_score

    k = len(wrong) // 10
    return {
        "p_at_10": float(wrong[ranking[:k]].mean()),
        "auc": float(roc_auc_score(wrong, -quality)),
        "flagged": float(mask.mean()),
        "precision": float(wrong[mask].mean()) if mask.any() else float("nan"),
        "recall": float(mask[wrong].mean()),
    }


# ------------------------------------------------------------------------------------------ cleanlab
def head(seed: int = 0):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=300, C=1.0, random_state=seed)


def standardise(x, *others):
    mu, sd = x.mean(0, dtype=np.float64), x.std(0, dtype=np.float64) + 1e-6
    return [((a - mu) / sd).astype(np.float32) for a in (x, *others)]


def out_of_fold(x, y, x_clean=None, y_clean=None, folds: int = 5, seed: int = 0) -> np.ndarray:
    """5-fold out-of-fold probabilities; the clean set (if any) joins every fold's training part."""
    from sklearn.model_selection import StratifiedKFold

    probs = np.zeros((len(y), 10))
    for train, held in StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, y):
        xs, ys = x[train], y[train]
        if x_clean is not None:
            xs, ys = np.concatenate([xs, x_clean]), np.concatenate([ys, y_clean])
        probs[held] = head(seed).fit(xs, ys).predict_proba(x[held])
    return probs


def cleanlab_row(x, y, wrong, x_test, y_test, x_clean=None, y_clean=None) -> dict[str, Any]:
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    start = time.perf_counter()
    x, x_test, *rest = standardise(x, x_test, *([] if x_clean is None else [x_clean]))
    x_clean = rest[0] if rest else None
    probs = out_of_fold(x, y, x_clean, y_clean)
    mask = find_label_issues(y, probs)
    ranked = find_label_issues(y, probs, return_indices_ranked_by="self_confidence")
    row = scores(wrong, ranked, get_label_quality_scores(y, probs), mask)
    keep_x, keep_y = x[~mask], y[~mask]
    if x_clean is not None:
        keep_x, keep_y = np.concatenate([keep_x, x_clean]), np.concatenate([keep_y, y_clean])
    row["test_acc"] = float(head().fit(keep_x, keep_y).score(x_test, y_test))
    row["seconds"] = time.perf_counter() - start
    return row


# ---------------------------------------------------------------------------------------------- ours
def our_row(method, params, x, y, wrong, x_test, y_test, x_clean=None, y_clean=None) -> dict[str, Any]:
    from noisy_labels.sklearn import NoisyLabelClassifier

    start = time.perf_counter()
    clf = NoisyLabelClassifier(method, random_state=0, **params).fit(x, y, x_clean, y_clean)
    mask = np.zeros(len(y), bool)
    mask[clf.label_issues_] = True
    row = scores(wrong, np.argsort(clf.cleanness_, kind="stable"), clf.cleanness_, mask)
    row["test_acc"] = float(clf.score(x_test, y_test))
    row["seconds"] = time.perf_counter() - start
    row["method"] = clf.method_
    return row


# ------------------------------------------------------------------------------------------- running
def run(root: Path, settings: list[str], subset: int | None = None) -> list[dict[str, Any]]:
    from noisy_labels.data.split import clean_meta_split

    d = load(root)
    if subset:  # a smoke check of this script only; the reported numbers use every sample
        keep = np.sort(np.random.default_rng(0).permutation(len(d["true"]))[:subset])
        d = {
            **d,
            "x": d["x"][keep],
            "true": d["true"][keep],
            "noisy": {k: v[keep] for k, v in d["noisy"].items()},
        }
    meta, rest = clean_meta_split(d["true"], size=1000, seed=0)
    rows = []
    for setting in settings:
        noisy = d["noisy"][setting]
        for clean in (False, True):
            part = rest if clean else np.arange(len(noisy))
            x, y, wrong = d["x"][part], noisy[part], (noisy != d["true"])[part]
            cx, cy = (d["x"][meta], d["true"][meta]) if clean else (None, None)
            common = {
                "setting": setting,
                "clean_set": 1000 if clean else 0,
                "n": len(y),
                "noise": float(wrong.mean()),
            }
            row = cleanlab_row(x, y, wrong, d["x_test"], d["y_test"], cx, cy)
            rows.append({**common, "ranker": "cleanlab find_label_issues (OOF logistic)", **row})
            print(_line(rows[-1]), flush=True)
            for label, method, params, needs_clean in OURS:
                if needs_clean != clean:
                    continue
                row = our_row(method, params, x, y, wrong, d["x_test"], d["y_test"], cx, cy)
                rows.append({**common, "ranker": f"noisy_labels {label}", **row})
                print(_line(rows[-1]), flush=True)
    return rows


def _line(r: dict[str, Any]) -> str:
    return (
        f"{r['setting']} clean={r['clean_set']} {r['ranker']}: P@10% {r['p_at_10']:.4f} AUC {r['auc']:.4f} "
        f"recall {r['recall']:.4f} test {r['test_acc']:.4f} ({r['seconds']:.0f} s)"
    )


def report(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [
        "# Label-issue ranking on the CIFAR-10 features: noisy_labels vs cleanlab",
        "",
        f"Generated by `benchmarks/label_issues.py` ({meta['when']}, {meta['platform']}, torch "
        f"{meta['torch']}, scikit-learn {meta['sklearn']}, cleanlab {meta['cleanlab']}, 1 thread, seed 0, "
        f"{meta['seconds'] / 60:.1f} min). Ranked samples: the 50k training samples without a clean set, the "
        "other 49k with a 1k clean set. cleanlab: `find_label_issues` on 5-fold out-of-fold probabilities of "
        "a logistic-regression head (test acc: that head refitted on the unflagged samples); "
        "`CleanLearning.find_label_issues` runs the same procedure, so it is not a separate row. Ours: "
        "`NoisyLabelClassifier` with default settings (`auto` = `elr`, a linear head, 30 epochs; `dmlp` "
        "likewise, with the shipped configs' `momentum=0.3`), `mwnet` with its shipped feature recipe (SGD, "
        "lr 0.005, batch 100, 15 epochs); our ranking is ascending `cleanness_` "
        "(= `get_label_quality_scores`).",
        "",
        "P@10%: precision among the 10% ranked most suspicious; AUC: ROC-AUC of the whole ranking; "
        "flagged, precision, recall: of the boolean mask. All in %.",
        "",
        "| setting | noise | clean | ranker | P@10% | AUC | flagged | precision | recall | test acc | s |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['setting']} | {100 * r['noise']:.1f} | {r['clean_set']} | {r['ranker']} "
            f"| {100 * r['p_at_10']:.2f} | {100 * r['auc']:.2f} | {100 * r['flagged']:.1f} "
            f"| {100 * r['precision']:.1f} | {100 * r['recall']:.1f} | {100 * r['test_acc']:.2f} "
            f"| {r['seconds']:.0f} |"
        )
    lines += ["", *verdict(rows)]
    return "\n".join(lines) + "\n"


def verdict(rows: list[dict[str, Any]]) -> list[str]:
    out = []
    for setting in dict.fromkeys(r["setting"] for r in rows):
        for clean in (0, 1000):
            group = [r for r in rows if r["setting"] == setting and r["clean_set"] == clean]
            if not group:
                continue
            ref = next(r for r in group if r["ranker"].startswith("cleanlab"))
            best = max((r for r in group if r is not ref), key=lambda r: r["p_at_10"])
            word = "beats" if best["p_at_10"] > ref["p_at_10"] else "does not beat"
            out.append(
                f"- {setting}, clean set {clean}: {best['ranker']} {word} cleanlab at P@10% "
                f"({100 * best['p_at_10']:.2f} vs {100 * ref['p_at_10']:.2f}; AUC {100 * best['auc']:.2f} vs "
                f"{100 * ref['auc']:.2f})."
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", default=str(DATA), help="the shared data folder")
    parser.add_argument("--settings", nargs="+", default=["worst", "sym50"], choices=["worst", "sym50"])
    parser.add_argument("--out", default=str(RESULTS / "label_issues"), help="results stem (.md, .json)")
    parser.add_argument("--subset", type=int, help="smoke check on this many training samples")
    parser.add_argument("--report-only", action="store_true", help="rewrite the .md from the stored .json")
    args = parser.parse_args()

    out = Path(args.out)
    if args.report_only:
        stored = json.loads(out.with_suffix(".json").read_text())
        out.with_suffix(".md").write_text(report(stored["rows"], stored["meta"]))
        return
    import cleanlab
    import sklearn
    import torch

    torch.set_num_threads(1)
    start = time.perf_counter()
    rows = run(Path(args.root), args.settings, args.subset)
    meta = {
        "when": time.strftime("%Y-%m-%d"),
        "platform": platform.platform(terse=True),
        "torch": torch.__version__,
        "sklearn": sklearn.__version__,
        "cleanlab": cleanlab.__version__,
        "seconds": time.perf_counter() - start,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    out.with_suffix(".md").write_text(report(rows, meta))
    print(out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
