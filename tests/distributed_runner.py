"""Train every named method on a tiny problem, one run after another in one process group.

``python tests/distributed_runner.py OUT METHOD...`` trains in one process;
``torchrun --nproc_per_node 2 tests/distributed_runner.py OUT METHOD...`` trains the same runs on two
ranks (the process group is joined once, by the first run). ``tests/test_distributed.py`` compares the
two. ``--kill-at-step N`` SIGKILLs rank 0 as the N-th training batch is drawn (torchrun then stops the
others); ``--resume`` continues the killed runs from their checkpoints.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from noisy_labels.engine import load_config, run_experiment

TINY = [
    "dataset=digits",
    "meta.size=100",
    "epochs=2",
    "batch_size=64",
    "noise.rate=0.4",
    "quiet=true",
    "checkpoint_every=1",
]
# What a method needs beyond TINY to be quick on digits (epoch-counted schedules inside two epochs).
EXTRA: dict[str, list[str]] = {
    "dividemix": ["dividemix.warmup_epochs=1"],
    "coteaching": ["coteaching.num_gradual=1"],
    "flywheel": ["flywheel.warmup_epochs=1"],
}


# Named variants: a method with other settings (the reference second-order meta-gradients).
VARIANTS: dict[str, tuple[str, list[str]]] = {
    "mwnet_second_order": ("mwnet", ["mwnet.meta_grad=second_order"]),
    "emlc_second_order": ("emlc", ["emlc.meta_grad=second_order"]),
    # an auxiliary network with a backbone: the flywheel's contrastive term over the whole batch
    "flywheel_mlp": ("flywheel", ["model.name=mlp", "model.params={hidden: [32]}"]),
}


def settings(name: str, out: Path) -> list[str]:
    method, extra = VARIANTS.get(name, (name, []))
    return [*TINY, f"method={method}", *EXTRA.get(method, []), *extra, f"out={out / name}"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("methods", nargs="+")
    parser.add_argument("--kill-at-step", type=int, default=0)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args(argv)
    if args.kill_at_step:
        kill_at_step(args.kill_at_step)
    for method in args.methods:
        out = args.out / method
        if args.resume:
            run_experiment(load_config(None, [f"out={out}"]), resume=True)
        else:
            run_experiment(load_config(None, settings(method, args.out)), overwrite=True)
    return 0


def kill_at_step(n: int) -> None:
    """Patch the loop (in this test process only) so that rank 0 dies as it draws its ``n``-th batch."""
    from noisy_labels.engine.loop import Engine

    original, drawn = Engine.batches, [0]

    def batches(self, *args, **kwargs):
        for batch in original(self, *args, **kwargs):
            drawn[0] += 1
            if drawn[0] == n and os.environ.get("RANK", "0") == "0":
                os.kill(os.getpid(), signal.SIGKILL)
            yield batch

    Engine.batches = batches


if __name__ == "__main__":
    sys.exit(main())
