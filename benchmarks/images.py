"""The image suite: the methods on CIFAR-10 *images* with a deep network, one budget for all.

``benchmarks/suite.py`` trains a linear head on frozen features, where there is little memorisation to
fight. Here every method trains the airbench network (``model.name=airbench``, widths 32-128-128,
:mod:`noisy_labels.models.airbench`) from scratch on CIFAR-10 images with noisy labels:

* data: the 50k training images, a class-balanced 1,000-image clean set carved from them (used by the
  methods that take one; the others train on the noisy rest), the 10k test images; CIFAR-10 is rebuilt
  from ``../shared/data`` on first use (``../shared/data/build_cifar10.py``, ~20 s) into ``data/``
  (git-ignored);
* noise (``SETTINGS``): symmetric 50% and 80%, CIFAR-10N ``worst``;
* one budget (``BUDGET``): epochs, batch, the optimiser and its schedule, flips + 2-px crops, the flip
  test view, bf16 autocast where the CPU computes bf16 natively; each method keeps its library defaults
  (its paper's hyper-parameters) except the epoch-counted schedules that a short budget must scale
  (``RECIPES``, shown in every row's command);
* DMLP's stage 1 is "bring your features": the shared ImageNet-pretrained EfficientNet features of the
  same images (``dmlp.features``, one row per image of the whole training set);
* references: ``ce`` (the given labels), ``ce_clean`` (the true labels), ``clean_only`` (CE on the clean
  set alone, the same recipe and number of steps).

Rows are stored, resumed and verified exactly as the feature suite's (``suite.RowSpec``, ``suite.run_all``,
``suite.verify``): ``benchmarks/results/images/<setting>/<method>-seed<k>.json``; the report is
``benchmarks/results/IMAGES.md``. ``--device cuda`` runs the same rows on a GPU into
``benchmarks/results/images-cuda/`` and ``IMAGES-cuda.md`` (never mixed with the CPU rows).

    OMP_NUM_THREADS=1 python benchmarks/images.py [--jobs 2] [--settings ...] [--methods ...] [--seeds 0]
    python benchmarks/images.py --report-only
    python benchmarks/images.py --verify img_sym50/ce/0
    python benchmarks/images.py --quick              # smoke check: synthetic images, a temporary folder
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
import suite  # noqa: E402  (benchmarks/suite.py: its row machinery and tables)

REPO = suite.REPO
SHARED = suite.DATA  # ../shared/data
LOCAL_DATA = REPO / "data"  # git-ignored: the rebuilt CIFAR-10 and the features file
FEATURES_FILE = LOCAL_DATA / "cifar10-efficientnet-lite0-train.npy"
HUMAN_LABELS = SHARED / "cifar-n" / "CIFAR-10_human.pt"

SETTINGS: dict[str, tuple[str, list[str]]] = {
    "img_sym50": ("cifar10", ["noise.protocol=symmetric", "noise.rate=0.5"]),
    "img_sym80": ("cifar10", ["noise.protocol=symmetric", "noise.rate=0.8"]),
    "img_worst": ("cifar10", ["noise.protocol=human", "noise.label_set=worst"]),
}
EPOCHS = 7
# The budget every row shares (BUDGET_WHY says why this size). The optimiser is the calibrated CE recipe:
# SGD Nesterov, lr 0.2 after a 1.5-epoch warm-up, cosine decay, weight decay 5e-4, batch 256.
BUDGET = [
    "dataset=cifar10",
    "meta.size=1000",
    "model.name=airbench",
    "model.params={}",
    f"epochs={EPOCHS}",
    "batch_size=256",
    "eval_batch_size=500",
    "optim.name=sgd",
    "optim.lr=0.2",
    "optim.momentum=0.9",
    "optim.nesterov=true",
    "optim.weight_decay=5e-4",
    "schedule.name=cosine",
    "schedule.lr_warmup_epochs=1.5",
    "augment.crop_padding=2",
    "bf16_cpu=auto",
    "eval_flip=true",
]
# Epoch-counted schedules of the papers' 200-300-epoch recipes, scaled to the 7-epoch budget: DivideMix's
# warm-up (10 of 300 epochs in its paper), co-teaching's T_k (10 of 200) and the flywheel's CR ramp (10)
# each 2 epochs here, as the network fits CIFAR-10 within a few epochs of a short one-cycle run (CE on
# the true labels: 72% after 2 of 7, 80% after 3).
RECIPES: dict[str, list[str]] = {
    "dividemix": ["dividemix.warmup_epochs=2"],
    "coteaching": ["coteaching.num_gradual=2"],
    "flywheel": ["flywheel.cr_ramp_epochs=2"],
    "dmlp": [f"dmlp.features={FEATURES_FILE}"],
}
METHODS = [
    *("ce", "dmlp", "emlc", "mlc", "l2b", "l2rw", "mwnet", "mnwnet", "rmnwnet"),
    *("flywheel", "dividemix", "elr_plus", "coteaching"),
]
REFERENCES = ["ce_clean", "clean_only"]
# clean_only trains as many steps as a noisy-set row (49k images / batch 256 an epoch), class-balanced
# draws of the 1,000 clean images: with one pass over them an epoch it took 28 steps and ended at 27.6%.
CLEAN_ONLY_BATCHES = 192
HEAD_REFERENCES = ("clean_only",)  # trained by suite.reference_run: the ce row's recipe on the clean set
FIVE = ["dmlp", "emlc", "l2b", "rmnwnet", "flywheel"]
SEEDS = [0]
EXTRA_SEEDS = {"settings": ["img_sym50", "img_worst"], "methods": ["ce", *FIVE], "seeds": [1, 2]}
ONE_STEP_META = ["l2rw", "mwnet", "mnwnet", "rmnwnet", "l2b"]
# The papers' central comparisons (winner, loser, margin in points; a negative margin: "within").
COMPARISONS = [
    ("emlc", "mlc", 0.0, "EMLC Table 1"),
    ("rmnwnet", "mnwnet", 0.0, "RMNW-Net Table 1"),
    ("rmnwnet", "mwnet", -2.0, "RMNW-Net Table 1 (within 2 points of MW-Net's clean meta set)"),
    ("l2b", "l2rw", 0.0, "L2B Table 1"),
    ("dmlp", "mlc", 0.0, "DMLP Table 1 (DMLP-Naive > MLC)"),
    ("flywheel", "elr_plus", 0.0, "LNL-flywheel Table 1"),
]


class Layout:
    """Where rows and the report go, and which device runs them (``--device``, ``--quick``)."""

    def __init__(self, device: str = "cpu", quick: Path | None = None) -> None:
        self.device, self.quick = device, quick
        suffix = "" if device == "cpu" else f"-{device}"
        base = quick if quick is not None else suite.RESULTS
        self.store = base / f"images{suffix}"
        self.report = base / f"IMAGES{suffix}.md"
        self.root = quick if quick is not None else LOCAL_DATA


LAYOUT = Layout()


# ---------------------------------------------------------------------------------------------- data
def ensure_data(layout: Layout) -> None:
    """CIFAR-10 in the official format and DMLP's features file, made once (never over a user's files)."""
    if layout.quick is not None:
        return
    if not (layout.root / "cifar-10-batches-py" / "test_batch").exists():
        build = SHARED / "build_cifar10.py"
        print(f"building CIFAR-10 into {layout.root} from {build} ...", flush=True)
        subprocess.run([sys.executable, str(build), str(layout.root)], check=True)
    if not FEATURES_FILE.exists():
        import numpy as np

        arrays = np.load(SHARED / "features" / "cifar10-efficientnet-lite0.npz", allow_pickle=False)
        tmp = FEATURES_FILE.with_suffix(".tmp.npy")
        np.save(tmp, arrays["train"])  # one row per training image, CIFAR-10's order
        os.replace(tmp, FEATURES_FILE)


def write_synthetic_cifar10(root: Path, *, train: int = 400, test: int = 100, seed: int = 0) -> None:
    """A small learnable stand-in in CIFAR-10's official format (``--quick``): each class a colour."""
    import pickle

    import numpy as np

    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    colours = rng.integers(0, 256, size=(10, 3))

    def batch(n: int) -> dict[bytes, Any]:
        labels = np.arange(n) % 10
        pixels = colours[labels][:, :, None] + rng.normal(0, 40, size=(n, 3, 1024))
        return {
            b"data": np.clip(pixels, 0, 255).astype(np.uint8).reshape(n, 3072),
            b"labels": labels.tolist(),
        }

    per_batch = train // 5
    for i in range(1, 6):
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps(batch(per_batch)))
    (folder / "test_batch").write_bytes(pickle.dumps(batch(test)))
    names = [
        c.encode() for c in ("plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
    ]
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": names}))
    np.save(root / "features.npy", rng.normal(size=(train, 16)).astype(np.float32))


# --quick: every row's stages for a few steps (the engine's smoke mode) on the synthetic images.
QUICK_BUDGET = ["dataset_options.check_sizes=false", "train_subset=300", "meta.size=100", "smoke=true"]


# ---------------------------------------------------------------------------------------------- rows
def row_overrides(
    setting: str, method: str, seed: int, layout: Layout | None = None
) -> tuple[None, list[str]]:
    """The ``--set`` overrides of one row (no config file: the budget and the library's defaults)."""
    layout = layout or LAYOUT
    _, noise = SETTINGS[setting]
    base = "ce" if method in REFERENCES else method
    sets = [*BUDGET, f"root={layout.root}", *noise, f"seed={seed}", "quiet=true", f"method={base}"]
    if setting == "img_worst":
        sets.append(f"dataset_options.human_labels={HUMAN_LABELS}")
    sets += RECIPES.get(base, [])
    if layout.quick is not None:
        sets += QUICK_BUDGET
        sets = [s.replace(str(FEATURES_FILE), str(layout.quick / "features.npy")) for s in sets]
    if layout.device != "cpu":
        sets.append(f"device={layout.device}")
    if method == "ce_clean":
        sets = [s for s in sets if not s.startswith("noise.")] + ["noise.protocol=none"]
    if method == "clean_only" and layout.quick is None:
        sets.append(f"batches_per_epoch={CLEAN_ONLY_BATCHES}")
    return None, sets


def _portable(sets: list[str], *, keep_paths: bool = False) -> list[str]:
    """The overrides as any checkout writes them: paths relative to the repository and to
    ``../shared/data``; without ``keep_paths`` the data root and the human-label file left out."""
    out = []
    for s in sets:
        if not keep_paths and (s.startswith("root=") or s.startswith("dataset_options.human_labels=")):
            continue  # where the data sit is not a setting
        out.append(s.replace(f"{REPO}/", "").replace(str(SHARED), "<shared>"))
    return out


def row_command(setting: str, method: str, seed: int) -> str:
    if method in HEAD_REFERENCES:
        return f"python benchmarks/images.py --settings {setting} --methods {method} --seeds {seed}"
    return "noisy-labels run" + "".join(
        f" --set {s}" for s in _portable(row_overrides(setting, method, seed)[1])
    )


def fingerprint(setting: str, method: str, seed: int) -> str:
    """The suite's ``<command hash>-<defaults hash>``, of the overrides as any checkout writes them."""
    return suite.run_fingerprint(None, _portable(row_overrides(setting, method, seed)[1], keep_paths=True))


ROWS = suite.RowSpec(row_overrides, row_command, fingerprint, SETTINGS, HEAD_REFERENCES)


def all_rows(settings: list[str], methods: list[str], seeds: list[int]) -> list[tuple[str, str, int]]:
    """The first seed of every row, and the extra seeds of ``EXTRA_SEEDS`` where asked for."""
    rows = [(s, m, seed) for s in settings for m in methods for seed in seeds if seed in SEEDS]
    for seed in (x for x in seeds if x not in SEEDS):
        rows += [
            (s, m, seed)
            for s in settings
            if s in EXTRA_SEEDS["settings"]
            for m in methods
            if m in EXTRA_SEEDS["methods"]
        ]
    return rows


# -------------------------------------------------------------------------------------------- report
def _last(records: list[dict], setting: str, method: str) -> float | None:
    vals = [
        r["summary"]["last_test_acc"] for r in records if r["setting"] == setting and r["method"] == method
    ]
    return 100 * statistics.mean(vals) if vals else None


def _epoch_seconds(records: list[dict], setting: str, method: str) -> float | None:
    """Median training seconds per epoch (evaluation excluded) over a row's seeds.

    The median, not the mean: a seed that shared the cores with other work would otherwise set the
    ratio of every method to CE (one CE seed ran at 2.2x its siblings' time beside tests).
    """
    vals = [
        r["summary"]["seconds"] / r["summary"]["epochs"]
        for r in records
        if r["setting"] == setting and r["method"] == method and r["summary"].get("epochs")
    ]
    return statistics.median(vals) if vals else None


def target_checks(records: list[dict]) -> list[str]:
    """The issue's targets, each met / missed / not yet run, with the numbers."""
    lines = []
    for setting in SETTINGS:
        ce = _last(records, setting, "ce")
        for method in FIVE:
            acc = _last(records, setting, method)
            lines.append(_check(f"{method} >= CE + 5 at {setting}", acc, None if ce is None else ce + 5))
        for winner, loser, margin, source in COMPARISONS:
            a, b = _last(records, setting, winner), _last(records, setting, loser)
            what = f"{winner} > {loser}" if margin >= 0 else f"{winner} >= {loser} {margin:+.0f}"
            bound = None if b is None else b + margin
            lines.append(_check(f"{what} at {setting} ({source})", a, bound, strict=margin >= 0))
        ce_time = _epoch_seconds(records, setting, "ce")
        for method in ONE_STEP_META:
            t = _epoch_seconds(records, setting, method)
            lines.append(_time_check(f"{method} epoch <= 3.5x CE's at {setting}", t, ce_time, 3.5))
        mlc_time = _epoch_seconds(records, setting, "mlc")
        lines.append(
            _time_check(
                f"emlc epoch <= 0.7x MLC's at {setting}",
                _epoch_seconds(records, setting, "emlc"),
                mlc_time,
                0.7,
            )
        )
    return lines


def _check(what: str, value: float | None, bound: float | None, *, strict: bool = False) -> str:
    if value is None or bound is None:
        return f"- {what}: not run yet"
    verdict = "met" if value > bound or (not strict and value == bound) else "**missed**"
    return f"- {what}: {verdict} ({value:.1f} against {bound:.1f})"


def _time_check(what: str, seconds: float | None, reference: float | None, ratio: float) -> str:
    if seconds is None or reference is None:
        return f"- {what}: not run yet"
    verdict = "met" if seconds <= ratio * reference else "**missed**"
    return f"- {what}: {verdict} ({seconds / reference:.2f}x)"


def rows_table(records: list[dict], setting: str) -> list[str]:
    """One setting: the suite's columns, with training seconds per epoch and its ratio to CE's as costs."""
    ce_time = _epoch_seconds(records, setting, "ce")

    def per_epoch(group: list[dict]) -> str:
        t = _epoch_seconds(group, setting, group[0]["method"])
        return "-" if t is None else f"{t:.1f}"

    def ratio(group: list[dict]) -> str:
        t = _epoch_seconds(group, setting, group[0]["method"])
        return "-" if t is None or not ce_time else f"{t / ce_time:.2f}"

    costs = {"s / epoch": per_epoch, "x CE": ratio}
    return suite.setting_table(records, setting, order=[*REFERENCES, *METHODS], costs=costs)


def write_report(layout: Layout) -> list[dict[str, Any]]:
    import torch

    from noisy_labels.engine.precision import cpu_has_native_bf16

    records, stale = suite.current_records(layout.store, ROWS)
    settings = [s for s in SETTINGS if any(r["setting"] == s for r in records)]
    wanted = all_rows(list(SETTINGS), [*REFERENCES, *METHODS], [*SEEDS, *EXTRA_SEEDS["seeds"]])
    stored = {(r["setting"], r["method"], r["seed"]) for r in records}
    missing = [row for row in wanted if row not in stored]
    device = "a GPU" if layout.device != "cpu" else "the CPU (never on a GPU here)"
    lines = [
        "# Image suite: CIFAR-10 images, the airbench network",
        "",
        f"Written by `python benchmarks/images.py` ({time.strftime('%Y-%m-%d')}) on {device}: "
        f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, one torch thread per run, "
        f"native bf16: {'yes' if cpu_has_native_bf16() else 'no'} (`bf16_cpu=auto`). Accuracies in %, "
        "mean +- std over seeds; `label acc`: the method's corrected labels on the noisy training set; "
        "`noisy-sample AUC`: its cleanness scores telling clean from noisy samples; `s / epoch`: training "
        "seconds per epoch (evaluation excluded; the median over seeds), `x CE` its ratio to the `ce` "
        "row's.",
        "",
        "**Budget** (every row): " + " ".join(f"`{s}`" for s in BUDGET) + ". " + BUDGET_WHY,
        "",
        "**Scaled schedules** (the papers count them in epochs of 200-300-epoch runs): "
        + "; ".join(f"{m}: {' '.join(f'`{s}`' for s in v)}" for m, v in RECIPES.items() if m != "dmlp")
        + ". DMLP's stage 1 is the shared ImageNet-pretrained EfficientNet-Lite0 features of the same images "
        "(`dmlp.features`); its stage 3 trains the airbench net on the purified labels. A GPU user "
        "reproduces this table with `python benchmarks/images.py --device cuda` (rows in "
        "`results/images-cuda/`).",
        "",
        f"Coverage: {len(records)} rows stored of {len(wanted)} wanted (seed 0 of every row; seeds 1-2 of "
        f"{', '.join(EXTRA_SEEDS['methods'])} at {', '.join(EXTRA_SEEDS['settings'])})"
        + (f"; missing: {len(missing)}" if missing else "; complete")
        + (f"; {stale} stale rows left out until rerun" if stale else "")
        + ". "
        + suite.verified_line(layout.store),
        "",
        "## Last-epoch test accuracy",
        "",
        *suite.headline(records, {s: s for s in SETTINGS}, [m for m in [*REFERENCES, *METHODS]]),
        "",
        "## Targets",
        "",
        *target_checks(records),
        "",
        "## What the misses show (measured)",
        "",
        *(f"- {note}" for note in MISS_NOTES),
        "",
    ]
    for setting in settings:
        lines += [*rows_table(records, setting), ""]
    layout.report.write_text("\n".join(lines) + "\n")
    return records


README_MARKERS = (
    "<!-- images headline: written by benchmarks/images.py -->",
    "<!-- end of images headline -->",
)


def readme_table(records: list[dict]) -> list[str]:
    """Last-epoch test accuracy for the README (mean over the seeds run), with the rows still to run."""
    seeds = sorted({r["seed"] for r in records}) or [0]
    table = suite.headline(records, {s: s for s in SETTINGS}, [*REFERENCES, *METHODS], std=True)
    note = "mean +- std over the seeds run, a cell without +- is seed 0 alone"
    return [
        *table,
        "",
        f"Seeds {seeds} ({note}); an empty cell is a row not run yet ({time.strftime('%Y-%m-%d')}).",
    ]


BUDGET_WHY = (
    "Why this size: one seed of the whole table must run in at most 4 hours on the 2-core machine with "
    "`--jobs 2` (one thread per run), and CE on the true labels must reach 85% in it. Calibrated with CE "
    "on the true labels (bf16, one thread, the other core busy): 20k images x 10 epochs 80.7% (81.3% "
    "with the head's logit scale 1, now the default), 20k x 16 epochs 83.2%, 25k x 14 84.8%, 30k x 12 "
    "84.6% (epoch 11), all 50k x 7 epochs 84.8% at about the same cost (350k image-steps, ~36 s per "
    "epoch): at this compute the data, not the epochs, is what helps; this budget is the last one with "
    "the new head scale."
)


# Why a target is missed, from measurements outside the table (written by hand, kept with the code that
# writes the page so the two cannot drift apart).
MISS_NOTES: list[str] = [
    "**A short budget leaves CE little memorisation to lose.** In 7 one-cycle epochs CE's accuracy on the"
    " noisy labels still rises to the last epoch (sym. 50%: 40 -> 74%; `worst`: 43 -> 77%), so the "
    "methods that fight memorisation have little to win back, and methods that correct labels with a "
    "network trained from scratch (EMLC's teacher, MLC's, the flywheel's auxiliary net) have little time "
    "to become good correctors. DMLP, whose purifier works on pretrained features, gains most (sym. 50% "
    "+5.4, `worst` +2.9 points).",
    "**MW-Net, MNW-Net and RMNW-Net: the look-ahead step (fixed).** The recipe's SGD (lr 0.2, Nesterov "
    "0.9) has an effective step of 2.0, and the family's virtual step took it: MW-Net's clean meta loss "
    "*at the look-ahead* was 7.9 where the classifier's own loss was ~1.5, so the weighting network "
    "learnt to shrink the virtual step, weighting only samples already fitted (effective sample size "
    "0.22-0.38), and the classifier stalled: MW-Net 62.2% and RMNW-Net 61.7% at `worst`, RMNW-Net 48.8% "
    "at sym. 50%. The look-ahead is now capped at 0.1, the papers' own (their lr, momentum ignored; "
    "`mwnet.lookahead_max`, `noisy_labels.defaults`), which changes no run whose effective step is at "
    "most 0.1 (the feature and MNIST rows: refingerprinted, `--verify` reproduced): MW-Net 77.3% at "
    "`worst` and 76.9% at sym. 50%, RMNW-Net 77.3% at `worst` and 70.8% at sym. 50% (AUC 0.95). That last"
    " is still below CE's 73.8%: RMNW-Net's MAE meta loss credits only what a weak classifier fits. On a "
    "20k-image sym. 50% probe it ends at 55.9% with the cap (CE 62.0%; uncapped with 2 warm-up epochs "
    "48.3%, with the look-ahead 0.2 46.3%; a tenth of its weighting step, `rmnwnet.vnet_lr=1e-4`, 64.7%, "
    "but that costs MNIST).",
    "**LNL-flywheel** (sym. 50%: best 61.2%, last 52.3%; `worst`: best 68.8% in epoch 3, last 61.3%, its "
    "labels 62.0% right where the given are 59.8%): the cycle starts from the warm-up's auxiliary "
    "network, here a weak one (47% test accuracy after 3 warm-up epochs on a 20k-image probe; the paper's"
    " starts after 10 of 300 epochs). Its fit of the given labels sets gamma = 0.33 (the truth: 0.50); "
    "the main network learns the auxiliary's labels, so a sample counts as clean where the weak network "
    "already agrees with its label, gamma falls to 0.21, most clean samples get the auxiliary's own "
    "prediction as target, and it stops learning: the probe's test accuracy 48.0% after the first cycle, "
    "45.5% at the end (CE: 62.0%); the same with the CR ramped over 2 epochs (this table's recipe) or "
    "over the library's 10 (lambda never above 1.2), so it is not the regulariser.",
    "**EMLC / MLC**: their teachers are trained from scratch on the 1,000 clean images; at sym. 50% "
    "EMLC's corrected labels end 56.5% right (MLC's 54.9%), barely above the given labels' 50%, and at "
    "`worst` both correct labels that are 59.8% right to 57.8% (EMLC; test 60.0%, its accuracy flat from "
    "epoch 3) and 61.4% (MLC; test 71.2%): a teacher that knows less than the given labels pulls the "
    "classifier below CE. EMLC > MLC holds only at sym. 80% (56.7 against 43.9%), where the given labels "
    "are worse than a teacher from 1,000 clean images. Both papers start from pretrained (SimCLR) weights"
    " (`model.init`), which a CPU budget cannot pretrain here.",
    "**Symmetric 80% in 7 epochs**: CE reaches 40.9% and the clean set alone 56.4%; the methods whose "
    "judgement comes from the network being trained collapse: co-teaching 18.8% (it keeps the 20% "
    "smallest losses from epoch 2 on, of a network at 21% accuracy), ELR+ 15.5%, the flywheel 17.3%, "
    "DivideMix 29.1% (its mixture model's AUC 0.61), L2B 24.0% and L2RW 32.9% (their meta-gradients from "
    "a network at 11% after its warm-up; L2B with a second warm-up epoch, its network then at 20.9%, ends"
    " at 25.0% with AUC 0.61, so the late start is not what holds it back). DMLP, on pretrained features,"
    " 74.5%; EMLC 56.7% (+15.8 over CE), whose teacher learns from the clean set, level with the clean "
    "set alone; MLC 43.9%.",
    "**MW-Net family at sym. 80%.** MW-Net with its clean meta set ends at 29.5%, its weights ranking "
    "clean samples above noisy ones (AUC 0.76; at sym. 50% 0.94) since its warm-up waits for a classifier"
    " above chance (below), yet 11 points under CE; MNW-Net (noisy meta set, CE meta loss) 42.0% with AUC"
    " falling from 0.43 to 0.19, and at sym. 50% 73.7% with AUC 0.07: its weights are inverted as RMNW-"
    "Net's paper predicts for a CE meta loss on noisy labels, yet the normalised weights stay broad "
    "enough that it ends level with CE. RMNW-Net's MAE meta loss keeps the ranking the right way (AUC "
    "0.69 at sym. 80%, 0.95 at sym. 50%) but weights too few samples to keep up: 32.8% and 70.8%, below "
    "MNW-Net in both (the paper's RMNW-Net > MNW-Net holds only at `worst`, 77.3 against 75.9%). MW-Net's"
    " step itself is exact: with its weighting network held constant it takes CE's steps to the last bit "
    "(`test_meta_methods.py`), and on all 50k images at sym. 80% (seed 0) it then ends at 41.3% against "
    "CE's 40.9% (epochs 2-6 within 2 points of CE's). The gap is the weighting network's own step. With "
    "the warm-up's first rule alone (one epoch: the fit of the given labels had plateaued) the classifier"
    " was still at chance (11.4%), the meta-gradient carried almost no signal, and the reference's Adam "
    "step (lr 1e-3), whose size does not shrink with the signal, walked the weighting network on noise: "
    "the ranking inverted from the first weighted epoch (AUC 0.40), the weights stayed near uniform on "
    "average (effective sample size 0.9996, 0.9999, then 0.945 in epoch 4, when the meta loss rose from "
    "2.23 to 2.33 and test accuracy fell from 24.2 to 17.4%) and the run ended at 26.2% (AUC 0.38). The "
    "warm-up now also waits until the classifier beats chance on the clean meta set "
    "(`mwnet.warmup_until_above_chance`, three binomial standard errors above the best constant guess, at"
    " most half the run): here one more epoch (20.9%), after which the ranking is the right way from the "
    "first weighted epoch (AUC 0.58, 0.61, 0.72, 0.70, 0.76) and the run ends at 29.5%; the weights then "
    "favour the samples the weak classifier already fits, which slows it (test accuracy 25.4, 23.9, 26.6,"
    " 27.3, 29.5% against CE's 27.3, 29.6, 36.3, 40.5, 40.9%). The rule changes no other stored run (each"
    " beats chance after its first epoch; MNIST sym. 80% and the features' sym. 50% reproduce exactly) "
    "except the features at sym. 90%, at chance either way. With a tenth of that step "
    "(`mwnet.vnet_lr=1e-4`, the value RMNW-Net's note measures for a from-scratch network) the weights "
    "stay uniform until the classifier has learnt something, then rank the right way (AUC 0.53, 0.61, "
    "0.74, 0.82 in epochs 4-7, effective sample size falling to 0.52, meta loss 2.20 -> 1.68) and the run"
    " ends 1.2 points under CE (39.7%), the weighting arriving too late in 7 epochs to pass it; with the "
    "new warm-up as well, 40.3% (AUC 0.84). The default stays the reference's until a rule derived from "
    "the run serves MNIST, the features and images alike (RMNW-Net's note: 1e-4 costs MNIST). The papers'"
    " 200-300-epoch runs give these methods the time to learn the clean patterns first that this budget "
    "does not.",
    "**The 4-hour aim**: the seed-0 rows' run times sum to 12.0 job-hours (MLC 2.0 h over the three "
    "settings, EMLC 1.6 h, DivideMix 1.3 h, RMNW-Net 1.1 h; two rows that shared the cores, RMNW-Net at "
    "sym. 50% and EMLC at sym. 80%, account for about 0.6 h of it), so one seed of the three settings "
    "takes ~6 h at `--jobs 2` (~5.7 h on free cores), over the aim. A shorter budget cannot keep the "
    "other condition: with 5 epochs (the same recipe on all 50k images, seed 0) CE on the true labels "
    "ends at 84.1% (epochs 1-5: 67.3, 77.1, 81.2, 83.1, 84.1%), under the required 85% (86.0% at 7 "
    "epochs), and would still take ~4.1 h; 4 hours allow about 4.9 epochs at these methods' costs. At "
    "this machine's speed the two conditions conflict, and the budget keeps the 85%.",
    "**Time per epoch**, from rows that ran two at a time with nothing else on the cores (sessions "
    "15-16): CE 29-35 s (sym. 50% seeds 0-2: 35.0, 35.4, 30.9; `worst` 32.5, 29.2, 29.7; the median over "
    "seeds in the table), MW-Net 128 s at sym. 50% and 80%, 121 s at `worst`, MNW-Net 130-133 s, RMNW-Net"
    " 121-135 s, so the MW-Net family is 3.7-4.6x CE, over the 3.5x target by up to a third; MLC 331 s "
    "and EMLC 205-215 s at `worst` (0.64x with EMLC's median seed, met). Session 16 re-timed the rows "
    "that had shared the cores, and every rerun gave the stored accuracies, label accuracies and AUCs "
    "exactly: MW-Net 171 -> 128 s (sym. 50%) and 151 -> 121 s (`worst`), RMNW-Net 199 -> 135 s (`worst`),"
    " CE seed 2 42 -> 31 s and 71 -> 30 s, L2B seed 2 182 -> 102 s and 118 -> 104 s. Session 17 re-timed "
    "the last two, again reproducing every number exactly: RMNW-Net seed 0 at sym. 50% 286 -> 153 s "
    "(seeds 1-2: 131, 122 s) and EMLC at sym. 80% 362 -> 237 s, 0.72x MLC's 332 s there, just over the "
    "0.7x target (EMLC 205-249 s per epoch over its seven rows, MLC 331-371 s). MW-Net's exact step has "
    "one more backward than L2RW / L2B (~3.7-4x CE by its pieces, `benchmarks/results/meta_step_cost.md`,"
    " fp32); the margin is thin because bf16 speeds the forward-mode (JVP) pass far less than the rest "
    "(airbench, batch 256, one thread, CPU seconds: CE step 0.391 -> 0.153 s, a meta forward + backward "
    "0.390 -> 0.152 s, the JVP pass 0.462 -> 0.339 s), so whole steps are L2RW 3.26x / MW-Net 3.89x CE in"
    " float32 and 4.24x / 5.0x in bf16 (training steps only). In the bf16 JVP pass (358 ms) BatchNorm's "
    "forward-mode rule takes 189 ms and copies of activations 107 ms, the 21 convolutions 74 ms. A hand-"
    "written BatchNorm tangent rule (an autograd Function with its own `jvp`: two per-channel means and "
    "four element-wise passes) is no cure, measured per layer at the network's three activation sizes "
    "(batch 256, one thread, beside two runs): 10-13% faster than PyTorch's rule in bf16, 6-60% slower in"
    " float32; the rule's cost is the passes over memory, not its formula.",
]


# ---------------------------------------------------------------------------------------------- main
def quick_folder() -> Path:
    """Where ``--quick`` writes its synthetic data, rows and report: a new temporary folder."""
    return Path(tempfile.mkdtemp(prefix="images-quick-"))


def main(argv: list[str] | None = None) -> int:
    global LAYOUT
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument(
        "--methods", nargs="+", default=[*REFERENCES, *METHODS], choices=[*REFERENCES, *METHODS]
    )
    suite.add_row_options(parser, SEEDS)
    parser.add_argument("--device", default="cpu", help="cpu (the stored table) or cuda")
    parser.add_argument(
        "--quick", action="store_true", help="smoke check: synthetic images, a temporary folder"
    )
    args = parser.parse_args(argv)
    if args.quick:
        tmp = quick_folder()
        write_synthetic_cifar10(tmp)
        LAYOUT = Layout(args.device, quick=tmp)
        args.settings = ["img_sym50"]  # one setting: the worst labels are CIFAR-10N's, real data
    else:
        LAYOUT = Layout(args.device)
    if args.verify or not args.report_only:
        ensure_data(LAYOUT)  # a report needs no data
    if args.verify:
        return suite.verify(args.verify, LAYOUT.store, ROWS)
    if not args.report_only:
        todo = [
            row
            for row in all_rows(args.settings, args.methods, args.seeds)
            if args.rerun or not suite.is_done(LAYOUT.store, *row, ROWS)
        ]
        print(f"{len(todo)} runs to do", flush=True)
        suite.run_all(todo, LAYOUT.store, args.jobs, args.rerun, ROWS, desc="images")
    records = write_report(LAYOUT)
    print(f"wrote {LAYOUT.report}")
    if (
        LAYOUT.quick is None
        and LAYOUT.device == "cpu"
        and suite.write_between_markers(suite.README, README_MARKERS, readme_table(records))
    ):
        print(f"updated the image table in {suite.README}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
