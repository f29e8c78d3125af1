"""Benchmark: DMLP's label purifier on the shared CIFAR-10 features (49k noisy + 1k clean).

For each noise setting (symmetric 20/50/80/90%, uniform 80%, asymmetric 40%, CIFAR-10N aggre/random1/
worst) and each variant of the paper's Table 5 ablation (IPC + EAC, IPC alone, EAC alone) it records the
time to purify and the corrected-label accuracy (per epoch too: the paper's Fig. 4). The reference point
is a linear probe trained on the *clean* labels, scored on the same training set. With ``--naive`` it
also trains DMLP-Naive (a linear head on the purified labels, through ``noisy-labels run``'s engine)
and plain CE with the team's CE config, and reports their test accuracy.

Run from the repository root (about 30-60 min on 2 shared CPU cores for everything)::

    .venv/bin/python benchmarks/dmlp_purify.py --root ../shared/data --naive

Writes ``benchmarks/results/dmlp_purify[_TAG].json``, ``.md`` and ``_label_acc.png``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from noisy_labels.data.features import load_cifar10_features
from noisy_labels.data.split import make_noisy_split
from noisy_labels.purify import DMLPPurifier

RESULTS = Path(__file__).parent / "results"
# CIFAR-10 class pairs of the asymmetric protocol (truck->automobile, bird->airplane, deer->horse,
# cat<->dog), passed as an explicit mapping: make_noisy_split's first parameter is also called `dataset`.
CIFAR10_ASYM = {9: 1, 2: 0, 4: 7, 3: 5, 5: 3}
SETTINGS = {
    "sym20": ("symmetric", 0.2, {}),
    "sym50": ("symmetric", 0.5, {}),
    "sym80": ("symmetric", 0.8, {}),
    "sym90": ("symmetric", 0.9, {}),
    "uniform80": ("uniform", 0.8, {}),
    "asym40": ("asymmetric", 0.4, {"mapping": CIFAR10_ASYM}),
    "aggre": ("human", None, {"label_set": "aggre"}),
    "random1": ("human", None, {"label_set": "random1"}),
    "worst": ("human", None, {"label_set": "worst"}),
}
VARIANTS = {"both": {}, "ipc": {"eac": False}, "eac": {"ipc": False}}
# DMLP-Naive test accuracy: the settings of the team's targets, as `noisy-labels run` overrides.
NAIVE = {
    "sym50": ["noise.protocol=symmetric", "noise.rate=0.5"],
    "uniform80": ["noise.protocol=uniform", "noise.rate=0.8"],
    "worst": ["noise.protocol=human", "noise.label_set=worst"],
}
# The team's CE config for these features (configs/cifar10_features_ce_sym50.yaml): linear head, Adam.
HEAD = [
    "dataset=cifar10_features",
    "meta.size=1000",
    "model.name=linear",
    "epochs=30",
    "batch_size=256",
    "optim.name=adam",
    "optim.lr=0.001",
    "optim.weight_decay=0.0",
    "schedule.name=cosine",
    "quiet=true",
]


def load(root: str):
    """Standardised training/clean/test features and the label sets, split as the engine splits them."""
    bundle = load_cifar10_features(root)
    splits = {}
    for name, (protocol, rate, extra) in SETTINGS.items():
        params = dict(extra)
        if protocol == "human":
            params = {"human_labels": bundle.label_sets[params.pop("label_set")]}
        splits[name] = make_noisy_split(
            bundle.train, meta_size=1000, protocol=protocol, rate=rate, seed=0, **params
        )
    first = next(iter(splits.values()))  # the meta split depends on the clean labels and seed only
    mu = first.train.x.mean(0, dtype=np.float64)
    sd = first.train.x.std(0, dtype=np.float64) + 1e-6
    x, xv, xt = (((a - mu) / sd).astype(np.float32) for a in (first.train.x, first.meta.x, bundle.test.x))
    labels = {k: s.train.y for k, s in splits.items()}
    return x, xv, xt, bundle.test.y, first.meta.y, first.train_clean_labels, labels


def clean_probe(x, y, xt, yt, *, epochs=30, seed=0) -> dict[str, float]:
    """A linear head on the clean labels (the team's CE recipe): the ceiling for label accuracy."""
    torch.manual_seed(seed)
    xs, ys = torch.from_numpy(x), torch.from_numpy(y)
    head = torch.nn.Linear(x.shape[1], int(y.max()) + 1)
    opt = torch.optim.Adam(head.parameters(), lr=1e-3)
    steps = epochs * -(-len(x) // 256)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for _ in range(epochs):
        order = torch.randperm(len(x))
        for i in range(0, len(x), 256):
            idx = order[i : i + 256]
            loss = F.cross_entropy(head(xs[idx]), ys[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    with torch.no_grad():
        train_acc = float((head(xs).argmax(1) == ys).float().mean())
        test_acc = float((head(torch.from_numpy(xt)).argmax(1) == torch.from_numpy(yt)).float().mean())
    return {"train_acc": train_acc, "test_acc": test_acc}


def purify_all(x, xv, yv, clean, labels, settings, variants, params) -> list[dict]:
    rows = []
    for name in settings:
        for variant in variants:
            purifier = DMLPPurifier(**{**params, **VARIANTS[variant]})
            res = purifier.fit(x, labels[name], xv, yv, true_labels=clean)
            row = {
                "setting": name,
                "variant": variant,
                "noisy_acc": float((labels[name] == clean).mean()),
                "label_acc": float((res.hard_labels == clean).mean()),
                "cleanness_auc": _auc(res.cleanness, labels[name] == clean),
                "setup_seconds": res.setup_seconds,
                "seconds": res.seconds,
                "curve": [r["label_acc"] for r in res.history],
            }
            rows.append(row)
            accs = f"{row['noisy_acc']:.4f} -> {row['label_acc']:.4f}"
            print(f"{name:10s} {variant:5s} label acc {accs} in {row['seconds']:.1f} s", flush=True)
    return rows


def _auc(scores: np.ndarray, positives: np.ndarray) -> float:
    from noisy_labels.metrics import roc_auc

    return float(roc_auc(scores, positives))


def naive_runs(root: str, settings, out_dir: Path, extra: list[str]) -> list[dict]:
    """DMLP-Naive and CE through the engine (`noisy-labels run`), test accuracy of the linear head."""
    from noisy_labels.engine import load_config, run_experiment

    rows = []
    for name in settings:
        for method in ("ce", "dmlp"):
            run_dir = out_dir / f"{name}-{method}"
            sets = [*HEAD, f"root={root}", f"method={method}", *NAIVE[name], f"out={run_dir}"]
            if method == "dmlp":
                sets += extra
            summary = run_experiment(load_config(None, sets), overwrite=True)
            keys = ("best_test_acc", "last_test_acc", "label_acc", "seconds")
            rows.append({"setting": name, "method": method, **{k: summary.get(k) for k in keys}})
            best, last = summary["best_test_acc"], summary["last_test_acc"]
            print(f"{name:10s} {method:5s} test acc best {best:.4f} last {last:.4f}", flush=True)
    return rows


def write_report(result: dict, path: Path) -> None:
    rows, probe = result["purify"], result["clean_probe"]
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    lines = [
        "# DMLP purifier on the CIFAR-10 features (49k noisy + 1k clean)",
        "",
        f"Machine: {result['machine']}. Parameters (beyond the defaults): `{json.dumps(result['params'])}`.",
        f"Linear probe on the clean labels: training-set accuracy {probe['train_acc']:.4f} "
        f"(test {probe['test_acc']:.4f}).",
        "",
        "Corrected-label accuracy (time to purify in s):",
        "",
        "| setting | noisy | " + " | ".join(variants) + " | cleanness AUC (both) |",
        "|---|---|" + "---|" * len(variants) + "---|",
    ]
    for setting in dict.fromkeys(r["setting"] for r in rows):
        by = {r["variant"]: r for r in rows if r["setting"] == setting}
        cells = [f"{by[v]['label_acc']:.4f} ({by[v]['seconds']:.0f})" if v in by else "" for v in variants]
        auc = f"{by['both']['cleanness_auc']:.3f}" if "both" in by else ""
        noisy = next(iter(by.values()))["noisy_acc"]
        lines.append(f"| {setting} | {noisy:.4f} | " + " | ".join(cells) + f" | {auc} |")
    if result.get("naive"):
        lines += [
            "",
            "Test accuracy of a linear head (the team's CE recipe): CE on the noisy labels vs DMLP-Naive:",
            "",
            "| setting | method | best | last | label acc |",
            "|---|---|---|---|---|",
        ]
        for r in result["naive"]:
            label = f"{r['label_acc']:.4f}" if r.get("label_acc") is not None else ""
            accs = f"{r['best_test_acc']:.4f} | {r['last_test_acc']:.4f}"
            lines.append(f"| {r['setting']} | {r['method']} | {accs} | {label} |")
    path.write_text("\n".join(lines) + "\n")


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    both = [r for r in rows if r["variant"] == "both"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in both:
        ax.plot(range(1, len(r["curve"]) + 1), r["curve"], label=r["setting"])
    ax.set(xlabel="purifier epoch", ylabel="corrected-label accuracy", title="DMLP (IPC + EAC)")
    ax.legend(ncol=3, fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", default="../shared/data")
    parser.add_argument("--settings", default=",".join(SETTINGS))
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="purifier parameter")
    parser.add_argument("--naive", action="store_true", help="also train DMLP-Naive and CE heads")
    parser.add_argument("--naive-settings", default=",".join(NAIVE))
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--tag", default="", help="suffix of the result files, e.g. paper_defaults")
    parser.add_argument("--runs-dir", default="/tmp/dmlp_bench_runs", help="run folders of --naive")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from noisy_labels.config import parse_overrides

    params = parse_overrides(args.set)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    x, xv, xt, yt, yv, clean, labels = load(args.root)
    print(f"loaded in {time.perf_counter() - start:.1f} s: train {x.shape}, clean {xv.shape}", flush=True)
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
        "threads": args.threads,
        "params": params,
        "clean_probe": clean_probe(x, clean, xt, yt),
    }
    print(f"clean linear probe: {result['clean_probe']}", flush=True)
    result["purify"] = purify_all(
        x, xv, yv, clean, labels, args.settings.split(","), args.variants.split(","), params
    )
    if args.naive:
        extra = [f"dmlp.{s}" for s in args.set]
        result["naive"] = naive_runs(args.root, args.naive_settings.split(","), Path(args.runs_dir), extra)
    stem = "dmlp_purify" + (f"_{args.tag}" if args.tag else "")
    (out / f"{stem}.json").write_text(json.dumps(result, indent=1))
    write_report(result, out / f"{stem}.md")
    plot(result["purify"], out / f"{stem}_label_acc.png")
    print((out / f"{stem}.md").read_text())


if __name__ == "__main__":
    main()
