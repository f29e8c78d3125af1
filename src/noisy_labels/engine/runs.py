"""What a finished run directory holds, read back: its trained network (:func:`load_run_model`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from ..config import config_from_dict, read_yaml_file
from ..models import create_model
from ..models.init import checkpoint_network
from .checkpoint import load_checkpoint

__all__ = ["load_run_model"]


def load_run_model(run_dir: str | Path, *, module: str = "model") -> nn.Module:
    """The trained network of a finished run: its config's model with the checkpoint's weights.

    Parameters
    ----------
    run_dir : str or Path
        A run directory written by ``noisy-labels run`` (``config.yaml`` and ``checkpoint.pt``).
    module : str, default='model'
        The method attribute holding the network in the checkpoint (``model`` for the loss-based
        methods; co-training methods have e.g. ``net2``; dotted for an inner method's: ``inner.model``).

    Returns
    -------
    Classifier
        In eval mode, on the CPU; use ``.backbone`` (or ``.features``) for features.

    Raises
    ------
    FileNotFoundError
        No config or checkpoint in ``run_dir``.
    ValueError
        ``module`` is not in the checkpoint (the message lists what is).
    """
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise FileNotFoundError(f"{run_dir} is not a run directory (no config.yaml).")
    state = load_checkpoint(run_dir)
    if state is None:
        raise FileNotFoundError(f"{run_dir} has no checkpoint.pt.")
    weights = checkpoint_network(state, module, str(run_dir))
    cfg = config_from_dict(read_yaml_file(run_dir / "config.yaml", "run config"))
    input_shape, num_classes = _shapes_from_weights(weights)
    names = [cfg.model.name]
    if cfg.model.name == "auto":  # the engine's rule picks one of these; the weights' keys tell which
        names = ["linear", "mlp"] if len(input_shape) == 1 else ["small_cnn", "preact_resnet18"]
    for name in names:
        model = create_model(name, num_classes=num_classes, input_shape=input_shape, **cfg.model.params)
        if set(model.state_dict()) == set(weights):
            model.load_state_dict(weights)
            return model.eval()
    raise ValueError(f"{run_dir}: the checkpoint's {module!r} weights fit none of the models {names}.")


def _shapes_from_weights(weights: dict[str, Any]) -> tuple[tuple[int, ...], int]:
    """Input shape (channels or feature width) and class count from a Classifier's state dict."""
    head = [k for k in weights if k.startswith("head.") and k.endswith("weight")]
    num_classes = int(weights[head[-1]].shape[0])
    first = next(v for k, v in weights.items() if k.endswith("weight") and v.ndim in (2, 4))
    if first.ndim == 4:  # conv: (out, in, kh, kw); image models pool adaptively, so H = W = 32 is enough
        return (int(first.shape[1]), 32, 32), num_classes
    return (int(first.shape[1]),), num_classes
