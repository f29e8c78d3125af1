"""Run ``noisy-labels run ARGS`` and SIGKILL it at a chosen point (the crash tests' child process).

    python crash_run.py step N -- ARGS...        killed as the N-th training batch is drawn
    python crash_run.py checkpoint N -- ARGS...  killed halfway through writing the N-th checkpoint

The patches live here, in the test's child process, not in the library.
"""

import os
import signal
import sys


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def kill_at_step(n: int) -> None:
    from noisy_labels.engine.loop import Engine

    original, drawn = Engine.batches, [0]

    def batches(self, *args, **kwargs):
        for batch in original(self, *args, **kwargs):
            drawn[0] += 1
            if drawn[0] == n:
                die()
            yield batch

    Engine.batches = batches


def kill_in_checkpoint_write(n: int) -> None:
    import io

    import torch

    from noisy_labels.engine import checkpoint, loop

    written = [0]

    def save(run_dir, state):
        written[0] += 1
        if written[0] < n:
            return checkpoint.save_checkpoint(run_dir, state)
        buffer = io.BytesIO()
        torch.save(state, buffer)

        def torn(f):
            f.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
            f.flush()
            die()

        checkpoint.atomic_write_bytes(run_dir / checkpoint.CHECKPOINT, torn)

    loop.save_checkpoint = save


if __name__ == "__main__":
    mode, n, sep, *args = sys.argv[1:]
    assert sep == "--"
    {"step": kill_at_step, "checkpoint": kill_in_checkpoint_write}[mode](int(n))
    from noisy_labels.cli import main

    sys.exit(main(["run", *args]))
