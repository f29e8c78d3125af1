"""Settings shared by several test modules (imported by name: pytest puts this folder on sys.path)."""

import contextlib

import torch


@contextlib.contextmanager
def one_torch_thread():
    """Small ops on a shared 2-core machine: a second thread only adds contention (see performance.md)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


#: MNIST with 60% uniform noise and a 1,000-sample meta set, MLP, CPU-sized: the "beats CE" problem of
#: the meta methods (issues 4 and 6). CE ends near 0.55 here; a working meta-gradient reaches 0.8-0.9.
MNIST_UNIF60 = [
    "dataset=mnist",
    "train_subset=4000",
    "meta.size=1000",
    "noise.protocol=uniform",
    "noise.rate=0.6",
    "model.name=mlp",
    "model.params={hidden: [128]}",
    "augment.crop_padding=0",
    "epochs=20",
    "batch_size=100",
    "optim.lr=0.1",
    "optim.momentum=0.0",
    "optim.weight_decay=0.0",
    "schedule.name=constant",
    "quiet=true",
]
