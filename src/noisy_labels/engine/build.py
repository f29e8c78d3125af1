"""The one place that builds an experiment: a config checked against the registered methods, then
seed -> data -> loop and context -> method.

``noisy-labels run``, the scikit-learn estimator, the tests' fixtures and the benchmark suites all build
through :func:`build_experiment`; method sections of a config are checked here (:func:`load_config`,
:func:`checked_config`), so the config module knows nothing of the methods.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import Config, ConfigError, config_from_dict, config_tree, params_from_dict
from ..methods import Method, get_method_class, list_methods
from .context import NoiseAssumption, TrainingContext
from .data import prepare_data
from .distributed import DistInfo
from .experiment_data import ExperimentData
from .loop import Engine, resolve_device
from .smoke import smoke_config


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Defaults, then the YAML file (if any), then ``key=value`` overrides; validated, methods included."""
    return checked_config(config_tree(path, overrides))


def checked_config(tree: dict[str, Any]) -> Config:
    """:func:`~noisy_labels.config.config_from_dict`, then the method and its sections checked; with
    ``smoke: true``, capped to a few steps per stage (:func:`~noisy_labels.engine.smoke.smoke_config`)."""
    cfg = config_from_dict(tree)
    check_methods(cfg)
    return smoke_config(cfg, partial(method_params, cfg))


def check_methods(cfg: Config) -> None:
    """The run's method is registered and every method section holds that method's parameters."""
    known = list_methods()
    if cfg.method not in known:
        raise ConfigError(f"unknown method {cfg.method!r}; known: {', '.join(sorted(known))}.")
    for name in cfg.method_params:
        if name not in known:
            raise ConfigError(f"unknown method section {name!r}; known: {', '.join(sorted(known))}.")
        method_params(cfg, name)  # a typo fails here, before any data is loaded


def method_params(cfg: Config, name: str) -> Any:
    """Method ``name``'s ``Params`` from its config section (defaults for the keys not given)."""
    cls = get_method_class(name)
    return params_from_dict(cls.Params, cfg.method_params.get(name, {}), prefix=f"{name}.")


def check_meta_set(cfg: Config, *, has_meta: bool | None = None) -> None:
    """A method that needs a trusted (meta) set gets one (``has_meta``: given arrays hold one)."""
    has_meta = cfg.meta.size > 0 if has_meta is None else has_meta
    if get_method_class(cfg.method).requires_meta and not has_meta:
        raise ValueError(f"method {cfg.method!r} needs a trusted meta set: set meta.size > 0 (e.g. 1000).")


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)


def corrupts_meta(cfg: Config) -> bool:
    """Whether the meta set carries the training noise (``meta.corrupt``, else the method's default)."""
    cls = get_method_class(cfg.method)
    return cfg.meta.corrupt if cfg.meta.corrupt is not None else cls.corrupt_meta_default


@dataclass
class Experiment:
    """A built run: its data, the loop (``engine``) and the method, ready for ``engine.fit(method, ...)``."""

    cfg: Config
    data: ExperimentData
    engine: Engine
    method: Method
    corrupt_meta: bool

    @property
    def ctx(self) -> TrainingContext:
        return self.engine.ctx


def build_experiment(
    cfg: Config,
    *,
    device: torch.device | None = None,
    dist: DistInfo | None = None,
    data: ExperimentData | None = None,
    assumed_noise: NoiseAssumption | None = None,
) -> Experiment:
    """Seed, load the config's data (or take ``data``: from in-memory arrays,
    :func:`~noisy_labels.engine.data.prepare_arrays`, or made by a test), build the loop and the method,
    and set the method up. ``assumed_noise``: the noise the methods may take as known where the run
    injects none (the estimator's ``noise_rate``); by default the run's own noise.

    Raises
    ------
    ValueError
        The method needs a meta set and the run has none.
    """
    check_meta_set(cfg, has_meta=None if data is None else data.meta_x is not None)
    cls = get_method_class(cfg.method)
    device = device if device is not None else resolve_device(cfg.device)
    corrupt = corrupts_meta(cfg)
    seed_everything(cfg.seed)
    if data is None:
        data = prepare_data(cfg, device, corrupt_meta=corrupt)
    params = partial(method_params, cfg)
    ctx = TrainingContext(cfg, data, device, dist, method_params=params, assumed_noise=assumed_noise)
    engine = Engine(cfg, data, ctx)
    method = cls(engine.ctx, method_params(cfg, cfg.method))
    method.setup()
    return Experiment(cfg, data, engine, method, corrupt)
