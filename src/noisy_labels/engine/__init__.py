"""The training engine: one loop for every method, run directories, checkpoints, resume."""

from .data import ExperimentData, prepare_data
from .loop import Batch, Engine, resolve_device, summarize
from .run import run_experiment

__all__ = [
    "Batch",
    "Engine",
    "ExperimentData",
    "prepare_data",
    "resolve_device",
    "run_experiment",
    "summarize",
]
