"""One experiment from a config: run directory, data, method, training, summary."""

from __future__ import annotations

import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from ..config import Config, config_to_dict, deep_merge, read_yaml_file
from ..methods import Method
from .build import build_experiment, check_meta_set, checked_config
from .checkpoint import atomic_write_bytes, check_run_dir, clear_run_dir, load_checkpoint, write_json
from .distributed import init_distributed
from .experiment_data import ExperimentData
from .loop import Engine, resolve_device


def default_run_dir(cfg: Config) -> Path:
    noise = (
        "clean"
        if cfg.noise.protocol == "none"
        else f"{cfg.noise.protocol}{cfg.noise.label_set or cfg.noise.rate}"
    )
    dataset = Path(cfg.dataset).stem if ("/" in cfg.dataset or "." in cfg.dataset) else cfg.dataset
    return Path("runs") / f"{dataset}-{noise}-{cfg.method}-seed{cfg.seed}-{time.strftime('%Y%m%d-%H%M%S')}"


# What --resume may change: none of them alters what the run has trained so far.
RESUMABLE_KEYS = ("epochs", "quiet", "checkpoint_every")


def run_experiment(
    cfg: Config, *, resume: bool = False, overwrite: bool = False, changes: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Run (or resume) one experiment; returns the summary also written to ``out/summary.json``.

    ``resume`` continues the run in ``cfg.out`` with its own ``config.yaml``; ``changes`` may set only
    :data:`RESUMABLE_KEYS` (e.g. more ``epochs`` for a finished run; the learning-rate schedule then
    follows the new length from the checkpoint on). ``overwrite`` replaces a run directory, and only
    once the new run's config and data have been checked and loaded.

    Raises
    ------
    FileExistsError
        ``out`` exists and neither ``resume`` nor ``overwrite`` was given, or ``overwrite`` was given
        for a folder that holds files no run writes.
    ValueError
        The method needs a meta set and ``meta.size`` is 0, the data/noise settings are inconsistent,
        or ``changes`` touches a key a resumed run cannot change.
    """
    run_dir = Path(cfg.out) if cfg.out else default_run_dir(cfg)
    if resume:  # the run exists already: every rank may look
        check_run_dir(run_dir, resume=True, overwrite=False)
        cfg = _resumed_config(run_dir, changes or {})
    elif changes:
        raise ValueError("changes apply to a resumed run only.")
    check_meta_set(cfg)  # before the run directory is looked at
    device = resolve_device(cfg.device)
    dist = init_distributed(device)
    if dist.is_main and not resume:  # rank 0 alone: the others would see the folder it starts to fill
        check_run_dir(run_dir, resume=False, overwrite=overwrite)
    run = build_experiment(cfg, device=device, dist=dist)
    data, engine, method = run.data, run.engine, run.method
    state = load_checkpoint(run_dir) if resume else None
    if state is not None and state["epoch"] > cfg.epochs:
        raise ValueError(
            f"{run_dir} has trained {state['epoch']} epochs already; epochs={cfg.epochs} is fewer."
        )
    if dist.is_main and resume and changes:
        _write_config(run_dir, cfg)
    if dist.is_main and not resume:  # the new run is valid and its data loaded: only now replace the old
        clear_run_dir(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
    if dist.is_main and state is None:
        _write_run_header(run_dir, cfg, data)
    summary = engine.fit(method, run_dir, resume_state=state)
    summary.update(_describe(cfg, data, engine, run.corrupt_meta))
    if dist.is_main:
        write_json(run_dir / "summary.json", summary)
        _write_outputs(run_dir, method)
    return summary


def _resumed_config(run_dir: Path, changes: dict[str, Any]) -> Config:
    """The run's own config, with ``changes`` to :data:`RESUMABLE_KEYS` (anything else is refused)."""
    refused = [key for key in _dotted(changes) if key not in RESUMABLE_KEYS]
    if refused:
        raise ValueError(
            f"--resume continues the run as it was configured: it can change {', '.join(RESUMABLE_KEYS)}, "
            f"not {', '.join(refused)} (start a new run for that)."
        )
    tree = read_yaml_file(run_dir / "config.yaml", "run config")
    cfg = checked_config(deep_merge(tree, changes))
    cfg.out = str(run_dir)
    return cfg


def _dotted(tree: dict[str, Any], prefix: str = "") -> list[str]:
    """The keys of a nested override tree as ``a.b`` paths."""
    keys = []
    for key, value in tree.items():
        path = f"{prefix}{key}"
        keys += _dotted(value, f"{path}.") if isinstance(value, dict) else [path]
    return keys


def _write_config(run_dir: Path, cfg: Config) -> None:
    text = yaml.safe_dump(config_to_dict(cfg), sort_keys=False)
    atomic_write_bytes(run_dir / "config.yaml", lambda f: f.write(text.encode()))


def _write_run_header(run_dir: Path, cfg: Config, data: ExperimentData) -> None:
    _write_config(run_dir, cfg)
    write_json(run_dir / "noise.json", data.noise_record)
    write_json(
        run_dir / "environment.json",
        {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "platform": platform.platform(),
            "git_revision": _git_revision(),
            "threads": torch.get_num_threads(),
        },
    )
    np.savez(
        run_dir / "split.npz",
        train_index=data.train_index,
        meta_index=data.meta_index,
        noisy_labels=data.train_y.cpu().numpy(),
    )


def _write_outputs(run_dir: Path, method: Method) -> None:
    """Per-sample outputs a user can feed to another pipeline (training-set order of split.npz)."""
    scores = method.cleanness()
    if scores is not None:
        np.save(run_dir / "cleanness.npy", np.asarray(scores, dtype=np.float32))
    corrected = method.corrected_labels()
    if corrected is not None:
        np.save(run_dir / "corrected_labels.npy", np.asarray(corrected))


def _describe(cfg: Config, data: ExperimentData, engine: Engine, corrupt: bool) -> dict[str, Any]:
    return {
        "method": cfg.method,
        "dataset": cfg.dataset,
        "noise_protocol": cfg.noise.protocol,
        "noise_rate": cfg.noise.rate,
        "label_set": cfg.noise.label_set,
        "realised_rate": data.noise_record.get("realised_rate"),
        "meta_size": cfg.meta.size,
        "meta_corrupted": bool(corrupt and cfg.meta.size > 0),
        "seed": cfg.seed,
        "device": str(engine.ctx.device),
        "model": engine.ctx.model_name(),
        "num_train": engine.ctx.num_train,
    }


def _git_revision() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=Path(__file__).parent
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None
