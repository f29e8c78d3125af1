"""Co-teaching, DivideMix, ELR, ELR+ and CDR against cross-entropy on CPU-sized problems.

For every setting, cross-entropy runs first and then each method, all from the shipped CPU configs
(``configs/mnist_<method>_sym50.yaml``, ``configs/cifar10_features_<method>_sym50.yaml``; CE uses the same
file with ``method=ce``) with the noise of the setting. Reported per run: best and last test accuracy,
the last cleanness AUC and label accuracy (where the method gives them) and the training time per epoch,
also relative to CE's in the same setting (engine-measured epoch time: training plus the methods'
per-epoch passes such as DivideMix's co-divide, without evaluation). Results are rewritten after every
run, so an interrupted benchmark leaves a partial table.

    OMP_NUM_THREADS=1 python benchmarks/selection_methods.py [--settings mnist_sym50 ...]
        [--methods coteaching ...] [--epochs 10] [--subset 3000] [--seed 0]

Settings: ``mnist_sym50``, ``mnist_sym80`` (symmetric: flips to one of the other 9 classes),
``mnist_asym40`` (the MNIST pairs of Patrini et al. 2017: 2->7, 3->8, 5<->6, 7->1, each source class
flipped with probability 0.4) and ``features_sym50`` (CIFAR-10 features).
``--epochs``/``--subset`` shorten the MNIST runs (recorded in the output).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

from noisy_labels.engine import load_config, run_experiment

HERE = Path(__file__).resolve().parent
CONFIGS = HERE.parent / "configs"
METHODS = ["coteaching", "dividemix", "elr", "elr_plus", "cdr"]
SETTINGS = {
    "mnist_sym50": ("mnist", ["noise.protocol=symmetric", "noise.rate=0.5"]),
    "mnist_sym80": ("mnist", ["noise.protocol=symmetric", "noise.rate=0.8"]),
    "mnist_asym40": ("mnist", ["noise.protocol=asymmetric", "noise.rate=0.4"]),
    "features_sym50": ("cifar10_features", ["noise.protocol=symmetric", "noise.rate=0.5"]),
}


def run_one(setting: str, method: str, args, workdir: Path) -> dict:
    prefix, noise = SETTINGS[setting]
    config = CONFIGS / f"{prefix}_{'coteaching' if method == 'ce' else method}_sym50.yaml"
    overrides = [*noise, f"method={method}", "quiet=true", f"seed={args.seed}"]
    data = HERE.parent.parent / "shared" / "data"  # the configs' relative roots, from any directory
    overrides.append(f"root={data / 'mnist' if prefix == 'mnist' else data}")
    if prefix == "mnist":
        overrides += [f"epochs={args.epochs}"] if args.epochs else []
        overrides += [f"train_subset={args.subset}"] if args.subset else []
    cfg = load_config(config, [*overrides, f"out={workdir / f'{setting}-{method}'}"])
    start = time.perf_counter()
    summary = run_experiment(cfg, overwrite=True)
    return {
        "setting": setting,
        "method": method,
        "epochs": summary["epochs"],
        "train_subset": cfg.train_subset,
        "realised_noise": summary.get("realised_rate"),
        "best_test_acc": summary.get("best_test_acc"),
        "last_test_acc": summary.get("last_test_acc"),
        "cleanness_auc": summary.get("cleanness_auc"),
        "label_acc": summary.get("label_acc"),
        "seconds_per_epoch": summary["seconds"] / summary["epochs"],
        "wall_seconds": time.perf_counter() - start,
    }


NOTES = """
Notes
- MNIST: 2,000-sample stratified subset, small CNN, Adam 1e-3 without weight decay, batch 64, 20 epochs
  (the shipped `configs/mnist_<method>_sym50.yaml`); features: linear head, Adam 1e-3, 30 epochs.
- CDR's non-critical weights only receive the regularisation penalty; with the shared optimiser
  (no weight decay) the rows show CDR's gradient masking alone. The unit test on digits (SGD, weight
  decay) shows the full method.
- Times: one thread on a machine shared with other jobs whose load changed during the benchmark, so
  the `x CE` ratios carry roughly +-50% noise; on the features the epochs take fractions of a second and
  fixed per-step costs (DivideMix's strong feature views: dropout and Gaussian noise drawn on the CPU
  for four views per network per step) dominate.
"""


def table(rows: list[dict]) -> str:
    ce = {r["setting"]: r["seconds_per_epoch"] for r in rows if r["method"] == "ce"}
    lines = [
        "| setting | method | epochs | best acc | last acc | cleanness AUC | label acc | s/epoch | x CE |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def fmt(v, spec=".3f"):
        return "-" if v is None else format(v, spec)

    for r in rows:
        rel = r["seconds_per_epoch"] / ce[r["setting"]] if r["setting"] in ce else None
        lines.append(
            f"| {r['setting']} | {r['method']} | {r['epochs']} | {fmt(r['best_test_acc'])} | "
            f"{fmt(r['last_test_acc'])} | {fmt(r['cleanness_auc'])} | {fmt(r['label_acc'])} | "
            f"{fmt(r['seconds_per_epoch'], '.1f')} | {fmt(rel, '.1f')} |"
        )
    return "\n".join(lines)


def write(rows: list[dict], args, out: Path) -> None:
    header = (
        "# Selection and regularisation baselines vs cross-entropy (CPU)\n\n"
        f"`python benchmarks/selection_methods.py {' '.join(args.argv)}` on {platform.platform()}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), seed {args.seed}; a shared, "
        "loaded machine, so times are rough. Time per epoch is the engine's training time (including "
        "per-epoch whole-set passes, excluding evaluation); `x CE` divides by cross-entropy's in the same "
        "setting.\n\n"
    )
    out.with_suffix(".md").write_text(header + table(rows) + "\n" + NOTES)
    out.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--methods", nargs="+", default=METHODS, choices=METHODS)
    parser.add_argument("--epochs", type=int, default=None, help="MNIST epochs (default: config's)")
    parser.add_argument("--subset", type=int, default=None, help="MNIST train_subset (default: config's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(HERE / "results" / "selection_methods"))
    parser.add_argument("--rerun", action="store_true", help="rerun rows already in the results file")
    args = parser.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else argv
    torch.set_num_threads(1)
    out = Path(args.out)
    # Resumable: rows already measured (same setting and method) are kept; the table fills up over sittings.
    done = out.with_suffix(".json")
    rows: list[dict] = [] if args.rerun or not done.exists() else json.loads(done.read_text())
    with tempfile.TemporaryDirectory() as tmp:
        for setting in args.settings:
            for method in ["ce", *args.methods]:
                if any(r["setting"] == setting and r["method"] == method for r in rows):
                    continue
                rows.append(run_one(setting, method, args, Path(tmp)))
                rows.sort(
                    key=lambda r: (list(SETTINGS).index(r["setting"]), ["ce", *METHODS].index(r["method"]))
                )
                write(rows, args, out)
                print(table(rows).splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
