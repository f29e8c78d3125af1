"""LNL-flywheel against cross-entropy on CPU-sized problems: accuracy, selection AUC, refurbishment.

Every setting runs CE and the flywheel from the same shipped config (same data subset, noise draw, model,
optimiser and epochs; only ``method`` differs), plus a MixUp variant of the flywheel (MNIST: every
setting, CIFAR-10 features: 50% only), and on MNIST 80% and 40% pair-flip the Table 6 ablations.
Written to ``benchmarks/results/``:

* ``flywheel.md``: best/last test accuracy, final selection AUC (from ``q``) and refurbishment accuracy
  (from ``f``), the error of the estimated ``T`` / ``T_c``, the ablation table;
* ``flywheel_mnist.json``, ``flywheel_cifar.json``: the summaries and per-epoch histories of every run;
* ``flywheel_curves.png``: per-epoch test accuracy, AUC and label accuracy per setting;
* ``flywheel_tc_<setting>.png``: the estimated ``T_c`` beside the true corruption matrix (Fig. 3).

"Symmetric r" is the paper's (DivideMix's) convention, our ``uniform`` protocol. MNIST "asymmetric 40%" is
the ``asymmetric`` protocol's MNIST pairs (Patrini et al. 2017: 2->7, 3->8, 5<->6, 7->1, each source class
flipped with probability 0.4). One seed per run (CPU budget).

    OMP_NUM_THREADS=1 python benchmarks/flywheel.py [--only mnist] [--runs runs/flywheel-bench] [--reuse]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from noisy_labels.data.noise import empirical_transition
from noisy_labels.engine import load_config, prepare_data, run_experiment
from noisy_labels.engine.checkpoint import load_checkpoint
from noisy_labels.methods.flywheel import plot_transition
from noisy_labels.methods.flywheel_em import corruption_matrix
from noisy_labels.metrics import transition_error

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
MNIST = ROOT / "configs" / "mnist_flywheel_sym80.yaml"
CIFAR = ROOT / "configs" / "cifar10_features_flywheel_sym50.yaml"
CIFAR_N = ROOT / "configs" / "cifar10n_worst_features_flywheel.yaml"

# name -> (group, config, overrides)
SETTINGS = {
    "mnist_sym50": ("mnist", MNIST, ["noise.protocol=uniform", "noise.rate=0.5"]),
    "mnist_sym80": ("mnist", MNIST, ["noise.protocol=uniform", "noise.rate=0.8"]),
    "mnist_sym90": ("mnist", MNIST, ["noise.protocol=uniform", "noise.rate=0.9"]),
    "mnist_asym40": ("mnist", MNIST, ["noise.protocol=asymmetric", "noise.rate=0.4"]),
    "cifar10f_sym50": ("cifar", CIFAR, ["noise.protocol=uniform", "noise.rate=0.5"]),
    "cifar10f_sym80": ("cifar", CIFAR, ["noise.protocol=uniform", "noise.rate=0.8"]),
    "cifar10n_worst": ("cifar", CIFAR_N, []),
}
# variant -> overrides; the config's own flywheel settings are "flywheel"
VARIANTS = {
    "mnist": {"ce": ["method=ce"], "flywheel": [], "flywheel_mixup4": ["flywheel.mixup_alpha=4.0"]},
    "cifar": {"ce": ["method=ce"], "flywheel": []},
}
EXTRA_VARIANTS = {  # a ~15-minute flywheel run per CIFAR-features setting is the CPU budget's limit
    "cifar10f_sym50": {"flywheel_mixup0.2": ["flywheel.mixup_alpha=0.2"]},
}
ABLATIONS = {  # Table 6, on mnist_sym80 and mnist_asym40
    "w/o CR": ["flywheel.cr_lambda=0"],
    "w/o Aux.": ["flywheel.auxiliary=false"],
    "eps fixed": ["flywheel.fixed_epsilon=true"],
    "w/o CL": ["flywheel.contrastive=none"],
}
ABLATION_SETTINGS = ("mnist_sym80", "mnist_asym40")


def run_one(setting: str, variant: str, extra: list[str], runs: Path, reuse: bool) -> dict:
    _, config, overrides = SETTINGS[setting]
    out = runs / f"{setting}-{variant.replace('/', '').replace(' ', '_')}"
    if not (reuse and (out / "summary.json").exists()):
        cfg = load_config(config, [*overrides, *extra, f"out={out}", "quiet=true"])
        start = time.perf_counter()
        run_experiment(cfg, overwrite=True)
        print(f"{setting:16s} {variant:18s} {time.perf_counter() - start:7.1f}s", flush=True)
    summary = json.loads((out / "summary.json").read_text())
    history = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    record = {"setting": setting, "variant": variant, "dir": str(out), "summary": summary, "history": history}
    if variant != "ce" and "flywheel.auxiliary=false" not in extra:
        record["transition"] = transition_report(setting, out)
    return record


def true_outlier_matrix(protocol: str, transition: np.ndarray) -> np.ndarray:
    """What T_c estimates, ``P(y~ | y, s = 0)``: the redraw distribution of the noise protocol.

    ``uniform`` noise redraws from all K classes (the diagonal included), the other protocols move a label
    to another class: the off-diagonal part of T with rows renormalised (rows of never-corrupted classes 0).
    """
    k = transition.shape[0]
    return np.full((k, k), 1.0 / k) if protocol == "uniform" else corruption_matrix(transition).numpy()


def transition_report(setting: str, run_dir: Path) -> dict:
    """Errors of the final T and T_c against the realised noise of the training set; the Fig. 3 plot."""
    _, config, overrides = SETTINGS[setting]
    cfg = load_config(config, overrides)
    data = prepare_data(cfg, torch.device("cpu"), corrupt_meta=False)
    k = data.num_classes
    true_t = empirical_transition(data.train_clean_y.numpy(), data.train_y.numpy(), k, empty_rows="identity")
    true_c = true_outlier_matrix(cfg.noise.protocol, true_t)
    state = load_checkpoint(run_dir)["method"]
    est_t, est_tc = state["transition"].numpy(), state["transition_c"].numpy()
    rows = true_c.sum(1) > 0  # classes that are ever corrupted
    if run_dir.name.endswith("-flywheel"):
        plot_transition(est_tc, true_c, RESULTS / f"flywheel_tc_{setting}.png", title=f"T_c, {setting}")
    return {
        "T_error": transition_error(est_t, true_t),
        "Tc_l1_per_row": float(np.abs(est_tc[rows] - true_c[rows]).sum() / rows.sum()),
        "Tc_diag_mean": float(np.diag(est_tc).mean()),
    }


def fmt(x, scale: float = 100.0, digits: int = 1) -> str:
    return "-" if x is None else f"{scale * x:.{digits}f}"


def write_markdown(records: list[dict], path: Path) -> None:
    lines = [
        "# LNL-flywheel vs CE (CPU, one seed)",
        "",
        "Generated by `benchmarks/flywheel.py`. Accuracies in %, last = final epoch. AUC: clean-selection "
        "ROC-AUC of q (eq. 4); label acc: accuracy of f's refurbished labels on the training set; T err: "
        "relative L1 error of the estimated T against the realised one; T_c err: mean row L1 distance of "
        "T_c to the noise's redraw distribution P(y~ | y, s=0) (uniform for `uniform` noise, the "
        "renormalised off-diagonal of T otherwise; rows of corrupted classes). Both at the last epoch.",
        "",
        "| setting | method | best acc | last acc | AUC | label acc | T err | T_c err | seconds |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        s, t = r["summary"], r.get("transition", {})
        lines.append(
            f"| {r['setting']} | {r['variant']} | {fmt(s.get('best_test_acc'))} "
            f"| {fmt(s.get('last_test_acc'))} | {fmt(s.get('cleanness_auc'))} | {fmt(s.get('label_acc'))} "
            f"| {fmt(t.get('T_error'), 1, 3)} | {fmt(t.get('Tc_l1_per_row'), 1, 3)} | {s['seconds']:.0f} |"
        )
    path.write_text("\n".join(lines) + "\n")


def plot_curves(records: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    settings = list(dict.fromkeys(r["setting"] for r in records))
    keys = [
        ("test_acc", "test accuracy"),
        ("cleanness_auc", "selection AUC (q)"),
        ("label_acc", "label acc (f)"),
    ]
    fig, axes = plt.subplots(len(settings), 3, figsize=(13, 2.6 * len(settings)), squeeze=False)
    for row, setting in enumerate(settings):
        for col, (key, label) in enumerate(keys):
            ax = axes[row][col]
            for r in records:
                if r["setting"] != setting or r["variant"] in ABLATIONS:
                    continue
                ys = [h.get(key) for h in r["history"]]
                color = {"ce": "C0", "flywheel": "C1"}.get(r["variant"], "C2")  # same colour in every panel
                if any(y is not None for y in ys):
                    ax.plot(range(1, len(ys) + 1), ys, color=color, label=r["variant"])
            ax.set_title(f"{setting}: {label}", fontsize=9)
            ax.grid(alpha=0.3)
            if col == 0:
                ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["mnist", "cifar"], help="run one group of settings")
    parser.add_argument("--runs", default=str(ROOT / "runs" / "flywheel-bench"), help="run directories")
    parser.add_argument("--reuse", action="store_true", help="keep finished runs instead of rerunning them")
    parser.add_argument("--no-ablations", action="store_true")
    parser.add_argument(
        "--settings", nargs="+", choices=list(SETTINGS), help="rerun only these; keep the others' records"
    )
    args = parser.parse_args()
    runs = Path(args.runs)
    RESULTS.mkdir(parents=True, exist_ok=True)
    for group in ("mnist", "cifar"):
        if args.only and group != args.only:
            continue
        kept = RESULTS / f"flywheel_{group}.json"
        records = [
            r
            for r in (json.loads(kept.read_text()) if args.settings and kept.exists() else [])
            if r["setting"] not in args.settings
        ]
        for setting, (g, _, _) in SETTINGS.items():
            if g != group or (args.settings and setting not in args.settings):
                continue
            for variant, extra in {**VARIANTS[group], **EXTRA_VARIANTS.get(setting, {})}.items():
                records.append(run_one(setting, variant, extra, runs, args.reuse))
            if setting in ABLATION_SETTINGS and not args.no_ablations:
                for variant, extra in ABLATIONS.items():
                    records.append(run_one(setting, variant, extra, runs, args.reuse))
        (RESULTS / f"flywheel_{group}.json").write_text(json.dumps(records, indent=1))
    # the report covers every group run so far
    records = [
        r
        for g in ("mnist", "cifar")
        if (f := RESULTS / f"flywheel_{g}.json").exists()
        for r in json.loads(f.read_text())
    ]
    write_markdown(records, RESULTS / "flywheel.md")
    plot_curves(records, RESULTS / "flywheel_curves.png")
    print(f"wrote {RESULTS / 'flywheel.md'}")


if __name__ == "__main__":
    main()
