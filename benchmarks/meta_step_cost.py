"""Cost of one training step of the meta methods, as a multiple of a cross-entropy step.

For ResNet-32 and the small CNN on 32x32x3 inputs, batch 100 training + 100 meta samples, fp32, one CPU
thread: the real ``train_step`` of ``ce``, ``l2rw``, ``mwnet`` and ``l2b``, each meta method with the
fast meta-gradient (one forward-mode JVP, ``meta_grad=fast``) and with the second-order reference path
(``create_graph`` + double backward, ``meta_grad=second_order``). Steps alternate between the variants
(round robin) so machine load hits all alike; times are per-thread CPU seconds, medians over rounds,
and ratios are to the CE step's median in the same run. From one shared starting state, the weights
of one step by the two paths are compared (maximum relative difference over the batch).

Targets (issue): every one-step meta method <= 3.0x a CE step, and >= 2x faster than the second-order
path while giving the same weights.

    python benchmarks/meta_step_cost.py [--models small_cnn resnet32] [--rounds 6]
        [--formats contiguous channels_last]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import textwrap
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from noisy_labels.engine import build_experiment, load_config
from noisy_labels.engine.data import ExperimentData
from noisy_labels.meta import (
    jvp_losses,
    meta_loss_and_grad,
    parameters_of,
    weight_grad,
    weight_grad_second_order,
)
from noisy_labels.models import create_model

HERE = Path(__file__).resolve().parent
BATCH = 100
VARIANTS = [
    ("ce", None),
    ("l2rw", "fast"),
    ("l2rw", "second_order"),
    ("mwnet", "fast"),
    ("mwnet", "second_order"),
    ("l2b", "fast"),
    ("l2b", "second_order"),
]


def synthetic_data(n_train: int = 1000, n_meta: int = 200, seed: int = 0) -> ExperimentData:
    """Random 32x32x3 images and labels (the cost does not depend on the pixels)."""
    rng = np.random.default_rng(seed)

    def images(n):
        return torch.from_numpy(rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8))

    def labels(n):
        return torch.from_numpy(rng.integers(0, 10, n))

    train_y = labels(n_train)
    return ExperimentData(
        train_x=images(n_train),
        train_y=train_y,
        train_clean_y=train_y.clone(),
        meta_x=images(n_meta),
        meta_y=labels(n_meta),
        test_x=None,
        test_y=None,
        classes=tuple(str(c) for c in range(10)),
        is_image=True,
        mean=torch.full((3,), 0.5),
        std=torch.full((3,), 0.25),
        noise_record={},
        train_index=np.arange(n_train),
        meta_index=np.arange(n_meta),
    )


def build(method: str, meta_grad: str | None, model: str, channels_last: bool):
    settings = [
        f"method={method}",
        f"model.name={model}",
        f"batch_size={BATCH}",
        "meta.size=200",
        "augment.flip=true",
        "optim.lr=0.05",
        "quiet=true",
        f"channels_last={str(channels_last).lower()}",
    ]
    if meta_grad is not None:
        settings.append(f"{method}.meta_grad={meta_grad}")
    if method == "l2b":
        settings.append("l2b.warmup_epochs=0")
    cfg = load_config(None, settings)
    run = build_experiment(cfg, device=torch.device("cpu"), data=synthetic_data())
    return run.engine, run.method


def step_agreement(method: str, model: str, channels_last: bool) -> float:
    """Max relative difference, fast vs second order, after one step from the same state: of the batch's
    weights (L2RW, L2B) or of the weighting network's gradient (MW-Net, whose weights move by lr 1e-3)."""
    outputs = []
    for path in ("fast", "second_order"):
        engine, built = build(method, path, model, channels_last)
        batch = next(iter(engine.batches()))
        built.train_step(batch)
        if method == "mwnet":
            outputs.append(torch.cat([p.grad.flatten() for p in built.vnet.parameters()]).double())
        else:
            outputs.append(built.sample_weights[batch.index].double())
    fast, slow = outputs
    return ((fast - slow).abs().max() / slow.abs().max()).item()


def time_steps(model: str, rounds: int, channels_last: bool) -> dict[str, list[float]]:
    built = {v: build(v[0], v[1], model, channels_last) for v in VARIANTS}
    batches = list(next(iter(built.values()))[0].batches())[:3]
    times: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for r in range(rounds + 1):
        for variant, (_, method) in built.items():
            batch = batches[r % len(batches)]
            start = time.thread_time()
            method.train_step(batch)
            if r > 0:  # round 0 warms up allocators and kernels
                times[variant].append(time.thread_time() - start)
    return times


def table(model: str, times, diffs) -> list[str]:
    ce = statistics.median(times[("ce", None)])
    rows = [f"| {model} | ce | {1000 * ce:.0f} | 1.00 | | |"]
    for method in ("l2rw", "mwnet", "l2b"):
        fast = statistics.median(times[(method, "fast")])
        slow = statistics.median(times[(method, "second_order")])
        rows.append(
            f"| {model} | {method} fast | {1000 * fast:.0f} | **{fast / ce:.2f}** | **{slow / fast:.2f}x** "
            f"| {diffs[method]:.1e} |"
        )
        rows.append(f"| {model} | {method} second order | {1000 * slow:.0f} | {slow / ce:.2f} | | |")
    return rows


def breakdown(model_name: str, rounds: int, channels_last: bool) -> dict[str, float]:
    """The pieces of a fast meta step (library calls on one batch) in CE steps."""
    torch.manual_seed(0)
    memory = torch.channels_last if channels_last else torch.contiguous_format
    model = create_model(model_name, num_classes=10, input_shape=(3, 32, 32)).to(memory_format=memory)
    x, xm = (torch.randn(BATCH, 3, 32, 32).contiguous(memory_format=memory) for _ in range(2))
    y, ym = (torch.randint(0, 10, (BATCH,)) for _ in range(2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    params = parameters_of(model)

    def per_sample(logits):
        return F.cross_entropy(logits, y, reduction="none")

    def ce_step():
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    _, g_meta = meta_loss_and_grad(model, params, xm, ym, F.cross_entropy)
    meta = (model, x, per_sample, xm, ym, F.cross_entropy)
    pieces = {
        "CE step (forward, backward, SGD)": ce_step,
        "training forward (with graph)": lambda: per_sample(model(x)),
        "meta forward + backward": lambda: meta_loss_and_grad(model, params, xm, ym, F.cross_entropy),
        "JVP pass (dual forward, no graph)": lambda: jvp_losses(model, params, g_meta, x, per_sample),
        "JVP pass doubling as the training forward": lambda: jvp_losses(
            model, params, g_meta, x, per_sample, training_forward=True
        ),
        "meta-gradient at w = 0, fast (incl. training forward)": lambda: weight_grad(*meta, lr=0.1),
        "meta-gradient at w = 0, second order (incl. training forward)": lambda: weight_grad_second_order(
            *meta, lr=0.1
        ),
    }
    times: dict[str, list[float]] = {k: [] for k in pieces}
    for r in range(rounds + 1):
        for name, fn in pieces.items():
            start = time.thread_time()
            fn()
            if r > 0:
                times[name].append(time.thread_time() - start)
    ce = statistics.median(times["CE step (forward, backward, SGD)"])
    return {name: statistics.median(t) / ce for name, t in times.items()}


def verdict(rows: list[str]) -> list[str]:
    """Which targets the measured rows meet."""
    out = []
    for row in rows:
        cells = [c.strip().strip("*") for c in row.strip("|").split("|")]
        if cells[1].endswith(" fast"):
            ratio, speedup = float(cells[3]), float(cells[4].rstrip("x"))
            cost = "meets" if ratio <= 3.0 else "misses"
            speed = "meets" if speedup >= 2.0 else "misses"
            out.append(
                f"- {cells[0]} {cells[1][:-5]}: {ratio:.2f}x CE ({cost} <= 3.0x), "
                f"{speedup:.2f}x faster than second order ({speed} >= 2x)"
            )
    return out


READING = (
    "Reading: a fast L2RW/L2B step is the training forward (~0.4 CE steps), one meta forward + backward "
    "(~1.0), the JVP pass (1.2-1.4: the primal and two tangent convolutions per layer, plus BatchNorm's "
    "tangent rule) and the real backward (~0.6), so ~3.0-3.4x CE. MW-Net needs one more backward through "
    "the training batch (the look-ahead gradient at its current weights, before the real step at the "
    "updated ones), which puts an exact one-step MW-Net at ~3.7-4x CE by these same pieces: the 3.0x "
    "target is out of its reach. Letting the JVP pass double as the training forward records the tangent "
    "operations for backward too and saves nothing on ResNet-32 (pieces table). The meta-gradient alone "
    "is 2.7-2.9x CE against 4.2-7x for the second-order path; the >= 2x speed-up of the whole step holds "
    "for L2RW and L2B with channels_last (the engine's default for images, where BatchNorm's double "
    "backward makes the second-order path expensive), not with the contiguous layout, and not for MW-Net, "
    "whose step shares more work between the two paths. Both paths give the same weights to float32 "
    "rounding."
)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["small_cnn", "resnet32"])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument(
        "--formats",
        nargs="+",
        default=["contiguous", "channels_last"],
        choices=["contiguous", "channels_last"],
    )
    parser.add_argument("--out", default=str(HERE / "results" / "meta_step_cost.md"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    load_before = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else []
    formats = [f == "channels_last" for f in args.formats]
    sections = []
    for channels_last in formats:
        rows, pieces = [], {}
        for model in args.models:
            diffs = {m: step_agreement(m, model, channels_last) for m in ("l2rw", "mwnet", "l2b")}
            rows += table(model, time_steps(model, args.rounds, channels_last), diffs)
            pieces[model] = breakdown(model, args.rounds, channels_last)
            print("\n".join(rows[-7:]), flush=True)
        layout = "channels_last (the engine's default for images)" if channels_last else "contiguous"
        sections.append((layout, rows, pieces))
    load_after = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else []
    write_report(Path(args.out), args, sections, load_before, load_after)
    print(f"written to {args.out}")


def write_report(path: Path, args, sections, load_before, load_after) -> None:
    lines = [
        "# Meta-step cost: fast (JVP) vs second-order meta-gradients",
        "",
        textwrap.fill(
            f"Generated by `python benchmarks/meta_step_cost.py --rounds {args.rounds}`. Time per training "
            f"step (`train_step`: meta batch, meta-gradient, weights, real step), batch {BATCH} training + "
            f"{BATCH} meta images of 32x32x3, fp32, 1 thread, per-thread CPU time, median of the rounds "
            "after one warm-up round, variants interleaved. `x CE`: ratio to the cross-entropy step of the "
            "same run. `speed-up`: second-order time / fast time. `agreement`: largest relative difference "
            "between the two paths after one step from the same state (float32), of the weights (L2RW, L2B) "
            "or of the weighting network's gradient (MW-Net).",
            width=105,
        ),
        "",
        f"Machine: {cpu_name()}, torch {torch.__version__}, Python {platform.python_version()}; load average",
        f"{' '.join(load_before)} before, {' '.join(load_after)} after (a shared 2-core machine).",
        "",
        "Targets: every one-step meta method <= 3.0x CE; >= 2x faster than second order, same weights.",
        "",
        textwrap.fill(READING, width=105, break_on_hyphens=False),
    ]
    for layout, rows, pieces in sections:
        models = list(pieces)
        lines += [
            "",
            f"## Memory format: {layout}",
            "",
            "| network | step | ms | x CE | speed-up vs second order | agreement |",
            "|---|---|---|---|---|---|",
            *rows,
            "",
            *verdict(rows),
            "",
            "Where the time goes (library calls on one batch, in CE steps):",
            "",
            "| piece | " + " | ".join(models) + " |",
            "|---|" + "---|" * len(models),
            *(
                f"| {name} | " + " | ".join(f"{pieces[m][name]:.2f}" for m in models) + " |"
                for name in pieces[models[0]]
            ),
        ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
