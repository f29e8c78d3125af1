"""Engine overhead: samples/s of the engine's cross-entropy epoch against a bare PyTorch loop.

Both train the same small CNN on the same MNIST images with the same batch size, optimiser and
preprocessing (normalisation, no augmentation), from the same initial weights. Runs alternate
(bare, engine, bare, engine, ...) so machine load hits both alike; the table reports the median ratio.
Target: the engine costs at most 5% over the bare loop.

    python benchmarks/engine_overhead.py [--root ../shared/data/mnist] [--samples 10240] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from noisy_labels.engine import Engine, build_experiment, load_config

HERE = Path(__file__).resolve().parent


def make_engine(root: str, samples: int, batch_size: int) -> tuple[Engine, object]:
    cfg = load_config(
        None,
        [
            "dataset=mnist",
            f"root={root}",
            f"train_subset={samples}",
            "noise.rate=0.5",
            "model.name=small_cnn",
            f"batch_size={batch_size}",
            "augment.crop_padding=0",
            "augment.flip=false",
            "quiet=true",
            "schedule.name=constant",
            "optim.lr=0.01",
        ],
    )
    run = build_experiment(cfg, device=torch.device("cpu"))
    return run.engine, run.method


def bare_epoch(model, optimizer, x_uint8, y, mean, std, batch_size: int, generator) -> float:
    """The hand-written loop: permute, slice, normalise, forward, backward, step."""
    start = time.perf_counter()
    order = torch.randperm(len(y), generator=generator)
    for i in range(0, len(y), batch_size):
        idx = order[i : i + batch_size]
        xb = (x_uint8[idx].permute(0, 3, 1, 2).float().div_(255.0) - mean) / std
        loss = F.cross_entropy(model(xb), y[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def engine_epoch(engine: Engine, method, epoch: int) -> float:
    start = time.perf_counter()
    engine.train_epoch(method, epoch)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", default=str(HERE.parent.parent / "shared" / "data" / "mnist"))
    parser.add_argument("--samples", type=int, default=10240)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=str(HERE / "results" / "engine_overhead.md"))
    args = parser.parse_args()

    engine, method = make_engine(args.root, args.samples, args.batch_size)
    data = engine.data
    bare_model = engine.ctx.new_model()
    bare_model.load_state_dict(method.model.state_dict())
    bare_opt = engine.ctx.new_optimizer(bare_model.parameters(), scheduled=False)
    mean, std = data.mean.view(1, -1, 1, 1), data.std.view(1, -1, 1, 1)
    gen = torch.Generator().manual_seed(1)
    n = len(data.train_y)
    bare_epoch(bare_model, bare_opt, data.train_x, data.train_y, mean, std, args.batch_size, gen)  # warm-up
    engine_epoch(engine, method, 0)
    bare_times, engine_times = [], []
    for r in range(args.repeats):
        bare_times.append(
            bare_epoch(bare_model, bare_opt, data.train_x, data.train_y, mean, std, args.batch_size, gen)
        )
        engine_times.append(engine_epoch(engine, method, r + 1))
    ratios = [e / b for e, b in zip(engine_times, bare_times, strict=True)]
    ratio = statistics.median(ratios)
    bare_s, engine_s = statistics.median(bare_times), statistics.median(engine_times)
    rows = [
        "# Engine overhead (cross-entropy epoch, small CNN, MNIST)",
        "",
        f"{n} training samples, batch {args.batch_size}, CPU threads {torch.get_num_threads()}, "
        f"torch {torch.__version__}; "
        f"{args.repeats} alternating epochs each after one warm-up epoch. Machine: 2 CPU cores.",
        "",
        "| loop | median samples/s | median seconds/epoch |",
        "|---|---:|---:|",
        f"| bare PyTorch loop | {n / bare_s:.0f} | {bare_s:.2f} |",
        f"| noisy_labels engine (`ce`) | {n / engine_s:.0f} | {engine_s:.2f} |",
        "",
        f"Engine time / bare time: median {ratio:.3f} (per pair: {', '.join(f'{x:.3f}' for x in ratios)}). "
        f"Target <= 1.05: {'met' if ratio <= 1.05 else 'NOT met'}.",
        "",
    ]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(rows))
    print("\n".join(rows))


if __name__ == "__main__":
    main()
