"""DMLP's Table 5 ablation on the CIFAR-10 features: IPC + EAC against EAC alone and IPC alone.

The paper (Tu et al., CVPR 2023, Table 5, DMLP-Naive on CIFAR-10) finds IPC + EAC above both halves at
symmetric 80% and 90% noise (93.5 / 92.8 against EAC alone 91.1 / 67.4 and IPC alone 79.9 / 76.0, best
test accuracy). Every row here is the library's defaults on the shared features, as a user would run them,

    noisy-labels run --set dataset=cifar10_features --set root=../shared/data --set method=dmlp
        --set meta.size=1000 --set noise.protocol=symmetric --set noise.rate=R --set seed=0 <variant keys>

with ``dmlp.ipc=false`` (EAC alone) or ``dmlp.eac=false`` (IPC alone), and variants of IPC's update
(``VARIANTS``). Recorded: DMLP-Naive's last / best test accuracy, the purified labels' accuracy, and how
far IPC has moved the labels before EAC's first exchange (after epoch T - 1 = 19 of the purifier: the
share of labels whose argmax changed and their accuracy then).

Rows are stored in ``results/dmlp_ipc_ablation.json`` with a fingerprint of the resolved settings
(library defaults included): a rerun skips current rows and reruns those a changed default touches.

    OMP_NUM_THREADS=1 python benchmarks/dmlp_ipc_ablation.py [--settings sym80 sym90] [--variants ...]
    python benchmarks/dmlp_ipc_ablation.py --report-only
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from suite import DATA, RESULTS, run_fingerprint  # noqa: E402  (benchmarks/suite.py)

STORE = RESULTS / "dmlp_ipc_ablation.json"
REPORT = RESULTS / "dmlp_ipc_ablation.md"
SETTINGS = {"sym80": 0.8, "sym90": 0.9}
FIRST_EXCHANGE = 20  # the purifier's default exchange_every (T)
VARIANTS: dict[str, list[str]] = {
    "IPC + EAC": [],
    "EAC only": ["dmlp.ipc=false"],
    "IPC only": ["dmlp.eac=false"],
    # IPC's pace: Adam steps per batch visit (default 1); 3 lets a label flip before the first exchange
    # (ipc_steps x T x ipc_lr >= 1 / (2 alpha) per logit: the paper configs' pace, see purify/pipeline.py)
    "IPC + EAC, 2 IPC steps": ["dmlp.ipc_steps=2"],
    "IPC + EAC, 3 IPC steps": ["dmlp.ipc_steps=3"],
    "IPC only, 3 IPC steps": ["dmlp.eac=false", "dmlp.ipc_steps=3"],
    "IPC + EAC, 5 IPC steps": ["dmlp.ipc_steps=5"],
}
PAPER = {  # Table 5, DMLP-Naive best test accuracy on CIFAR-10
    ("sym80", "IPC + EAC"): 93.5,
    ("sym80", "EAC only"): 91.1,
    ("sym80", "IPC only"): 79.9,
    ("sym90", "IPC + EAC"): 92.8,
    ("sym90", "EAC only"): 67.4,
    ("sym90", "IPC only"): 76.0,
}


def row_settings(setting: str, variant: str) -> list[str]:
    """The ``--set`` overrides of one row (seed 0)."""
    noise = ["noise.protocol=symmetric", f"noise.rate={SETTINGS[setting]}"]
    head = ["dataset=cifar10_features", f"root={DATA}", "method=dmlp", "meta.size=1000"]
    return [*head, *noise, "seed=0", "quiet=true", *VARIANTS[variant]]


def run_row(setting: str, variant: str) -> dict[str, Any]:
    from noisy_labels.engine import load_config, run_experiment

    sets = row_settings(setting, variant)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        summary = run_experiment(load_config(None, [*sets, f"out={tmp}"]))
        purify = json.loads((Path(tmp) / "dmlp_purify.json").read_text())
    before_exchange = purify["history"][FIRST_EXCHANGE - 2]  # epoch T - 1 (the epoch-T record exchanges)
    return {
        "setting": setting,
        "variant": variant,
        "fingerprint": run_fingerprint(None, sets),
        "given_label_acc": purify["label_acc_before"],
        "changed_before_T": before_exchange["changed"],
        "label_acc_before_T": before_exchange["label_acc"],
        "label_acc": purify["label_acc"],
        "estimated_noise_rate": purify.get("estimated_noise_rate"),
        "last": summary["last_test_acc"],
        "best": summary["best_test_acc"],
        "seconds": time.perf_counter() - start,
    }


def load_rows() -> list[dict[str, Any]]:
    return json.loads(STORE.read_text()) if STORE.is_file() else []


def is_current(row: dict[str, Any]) -> bool:
    if row["variant"] not in VARIANTS or row["setting"] not in SETTINGS or "changed_before_T" not in row:
        return False
    return row["fingerprint"] == run_fingerprint(None, row_settings(row["setting"], row["variant"]))


def table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| setting | variant | keys | labels moved by IPC before the 1st exchange (acc.) | purified label "
        "acc. | test last / best | paper best | s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: (r["setting"], list(VARIANTS).index(r["variant"]))):
        keys = " ".join(f"`{k}`" for k in VARIANTS[r["variant"]]) or "defaults"
        paper = PAPER.get((r["setting"], r["variant"]), "")
        moved = f"{r['changed_before_T']:.3f} ({r['label_acc_before_T']:.3f})"
        lines.append(
            f"| {r['setting']} | {r['variant']} | {keys} | {moved} | {r['label_acc']:.3f} "
            f"| {r['last']:.4f} / {r['best']:.4f} | {paper} | {r['seconds']:.0f} |"
        )
    return lines


READING = """\
Reading (seed 0). With the default pace (one Adam step of eta_I = 0.01 per label and epoch) IPC changes no
label before EAC's first exchange at T = 20: from one-hot logits a label's argmax flips only once the
given and another logit have met, ~50 steps. The exchange (eta_E = 1) then sets the labels to a
classifier trained on the given labels alone, and IPC hardly moves its confident logits afterwards: IPC +
EAC is EAC plus a little. That holds the paper's pattern at 80% (IPC + EAC 71.8 > EAC 71.1 > IPC 55.4
label accuracy) and breaks it at 90%, where the given labels carry no class and EAC, hence IPC + EAC, end
at chance while IPC alone reaches 51%. With 3 IPC steps per visit (the paper configs' pace: a label can
flip before T) IPC has moved 58-64% of the labels by then, and at 90% IPC + EAC (64.1 / 65.7 test) beats
IPC alone (58.9 / 62.3) and EAC alone (chance), as in the paper; at 80% it stays above IPC alone but 3.6
points below EAC alone: IPC's corrections carry errors that follow the features, which a linear EAC
learns more readily than the given labels' symmetric noise. No pace here gives the paper's pattern at
both rates on these features (ImageNet features, linear heads; the paper: SimCLR ResNets). The library
default stays one step (better at every rate where the labels carry the class); the paper configs set 3.
"""


def write_report(rows: list[dict[str, Any]]) -> None:
    given = ", ".join(f"{s} {r['given_label_acc']:.3f}" for s, r in {r["setting"]: r for r in rows}.items())
    lines = [
        "# DMLP: IPC + EAC against each alone (the paper's Table 5) on the CIFAR-10 features",
        "",
        "Generated by `benchmarks/dmlp_ipc_ablation.py` (its docstring gives every row's command; seed 0,",
        "one thread on a shared 2-core CPU, so the times include other jobs' load). DMLP-Naive: a linear",
        "head trained with the library's defaults on the purified labels; 'paper best': Table 5's DMLP-Naive",
        "on CIFAR-10 (a ResNet on SimCLR features: compare the ordering, not the level). Given labels'",
        f"accuracy: {given}. At 90% symmetric noise (a wrong label drawn among the 9 others) the",
        "given label is uniform over the classes whatever the true one: EAC alone cannot beat chance there.",
        "",
        *table(rows),
        "",
        READING,
    ]
    REPORT.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args(argv)
    rows = [r for r in load_rows() if is_current(r)]
    done = {(r["setting"], r["variant"]) for r in rows}
    for setting in [] if args.report_only else args.settings:
        for variant in args.variants:
            if (setting, variant) in done:
                continue
            rows.append(run_row(setting, variant))
            STORE.write_text(json.dumps(rows, indent=1))  # after every row: an interrupted run resumes
            print(f"{setting} {variant}: {rows[-1]['label_acc']:.3f} / {rows[-1]['last']:.4f}", flush=True)
    write_report(rows)


if __name__ == "__main__":
    main()
