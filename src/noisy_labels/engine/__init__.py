"""The training engine: one loop for every method, run directories, checkpoints, resume."""

from .build import Experiment, build_experiment, load_config, seed_everything
from .context import TrainingContext
from .data import prepare_data
from .experiment_data import ExperimentData
from .loop import Engine, resolve_device, summarize
from .run import run_experiment

__all__ = [
    "Engine",
    "Experiment",
    "ExperimentData",
    "TrainingContext",
    "build_experiment",
    "load_config",
    "prepare_data",
    "resolve_device",
    "run_experiment",
    "seed_everything",
    "summarize",
]
