"""Start a network from saved weights: its backbone from a file, its head new (``model.init``).

EMLC (Taraday & Baskin, ICCV 2023, sec. 4.1) starts student and teacher from the same SimCLR weights;
DMLP (Tu et al., CVPR 2023, Table 6 "*") retrains from the SimCLR encoder of its first stage. Both load a
backbone and keep the classification head freshly initialised: its classes are the run's own.

A source (:data:`WeightsSource`) is

* an **encoder file**, written by :func:`save_encoder` (``noisy-labels features --simclr --save-encoder
  PATH``; DMLP's first stage, ``dmlp_encoder.pt`` in its run directory): ``torch.save`` of
  ``{"model": NAME, "backbone": STATE}``, ``NAME`` the registered model, ``STATE`` its
  ``backbone.state_dict()``;
* a **run directory** (or its ``checkpoint.pt``): the checkpoint's network ``model``, or the one named after
  a ``#``: ``runs/x#net2`` (co-teaching's second network), ``runs/x#inner.model`` (DMLP-X's network),
  ``runs/x#teacher.classifier`` (a part of a network: EMLC's teacher classifier);
* a **state-dict file**: a whole network's (``Classifier.state_dict()``, of which the ``backbone.*``
  entries are read) or a backbone's alone;
* such a mapping in memory (DMLP hands its encoder to the retraining this way).

Files are read with ``torch.load(..., weights_only=True)``: tensors and plain containers, never pickled
objects. Every failure is one line naming the source: a missing or unreadable file, a checkpoint without
the network, or the first tensor whose name or shape differs from the model's (:func:`load_backbone`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from pickle import UnpicklingError
from typing import Any, TypeAlias

import torch
from torch import Tensor, nn

from .._files import CHECKPOINT, atomic_write_bytes
from .._validation import InputFileError, read_user_file
from .base import Classifier

__all__ = [
    "SCRATCH",
    "WeightsSource",
    "checkpoint_network",
    "encoder_record",
    "init_backbone",
    "load_backbone",
    "read_backbone_weights",
    "save_encoder",
]

WeightsSource: TypeAlias = str | os.PathLike[str] | Mapping[str, Any]
StateDict: TypeAlias = dict[str, Tensor]
#: A method's init parameter set to this builds its network freshly initialised, whatever ``model.init`` is.
SCRATCH = "scratch"


# ------------------------------------------------------------------------------------------ writing
def encoder_record(model_name: str, backbone: nn.Module) -> dict[str, Any]:
    """What an encoder file holds: the registered model's name and its backbone's weights, on the CPU."""
    weights = {key: value.detach().cpu() for key, value in backbone.state_dict().items()}
    return {"model": model_name, "backbone": weights}


def save_encoder(path: str | os.PathLike[str], model_name: str, backbone: nn.Module) -> Path:
    """Write the encoder file that ``model.init`` reads (atomically: never a torn file); returns its path."""
    path = Path(path)
    record = encoder_record(model_name, backbone)
    atomic_write_bytes(path, lambda f: torch.save(record, f))
    return path


# ------------------------------------------------------------------------------------------ loading
def init_backbone(model: Classifier, source: WeightsSource) -> Classifier:
    """``model`` with its backbone's weights from ``source`` and its head untouched.

    Raises
    ------
    FileNotFoundError
        No such file or run directory (or the directory has no checkpoint).
    ValueError
        An unreadable file, one without such weights, or weights of another architecture (the message
        names the first tensor that differs).
    """
    return load_backbone(model, read_backbone_weights(source), _describe(source))


def read_backbone_weights(source: WeightsSource) -> StateDict:
    """The backbone weights ``source`` holds (the formats are in the module docstring)."""
    if isinstance(source, Mapping):
        return _backbone_part(source, _describe(source))
    path, network = _split_network(os.fspath(source))
    if path.is_dir():
        path = path / CHECKPOINT
    loaded = read_user_file(path, "weights file", _torch_load)
    if network is not None or _is_checkpoint(loaded):
        loaded = checkpoint_network(loaded, network or "model", str(path))
    return _backbone_part(loaded, str(path))


def load_backbone(model: Classifier, weights: Mapping[str, Tensor], source: str) -> Classifier:
    """Copy ``weights`` into ``model.backbone`` once every name and shape matches; the head is untouched.

    Raises
    ------
    ValueError
        Naming the first tensor of the model missing from ``weights``, of another shape there, or the
        first one in ``weights`` the model does not have.
    """
    expected = model.backbone.state_dict()
    problem = _first_mismatch(expected, weights) if expected else "its backbone has no weights to load"
    if problem:
        raise ValueError(f"cannot initialise {type(model).__name__} from {source}: {problem}.")
    model.backbone.load_state_dict(weights)
    return model


def checkpoint_network(checkpoint: Mapping[str, Any], name: str, where: str) -> StateDict:
    """Network ``name``'s weights in a run's checkpoint (dotted: ``inner.model``, ``teacher.classifier``).

    Raises
    ------
    ValueError
        ``checkpoint`` is not a run's, or holds no such network (the message lists the networks it holds).
    """
    if not _is_checkpoint(checkpoint):
        raise ValueError(f"{where} is not a run's checkpoint, so it has no network {name!r}.")
    found = _find_network(checkpoint["method"], name.split("."))
    if found is None:
        known = ", ".join(_network_names(checkpoint["method"]))
        raise ValueError(f"{where} has no network {name!r}; its networks: {known}.")
    return found


# ------------------------------------------------------------------------------------------ helpers
def _describe(source: WeightsSource) -> str:
    return "the given weights" if isinstance(source, Mapping) else os.fspath(source)


def _split_network(spec: str) -> tuple[Path, str | None]:
    """``PATH`` or ``PATH#NETWORK``; a ``#`` that is part of an existing file's name stays in it."""
    head, sep, network = spec.rpartition("#")
    if sep and network and not Path(spec).expanduser().exists():
        return Path(head).expanduser(), network
    return Path(spec).expanduser(), None


def _torch_load(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except UnpicklingError as exc:  # torch's message runs over many lines: say it in one
        refused = re.search(r"GLOBAL (\S+)", str(exc))
        problem = (
            f"it holds a pickled object ({refused.group(1)}), and weights are read with "
            "torch.load(weights_only=True), which loads only tensors and plain containers"
            if refused
            else "not a file torch.save wrote (torch.load(weights_only=True) cannot read it)"
        )
        raise InputFileError(f"cannot read weights file {path}: {problem}.") from None


def _is_checkpoint(loaded: Any) -> bool:
    """A run's checkpoint (engine.checkpoint): the method's state under ``method``, with the epoch."""
    return isinstance(loaded, Mapping) and isinstance(loaded.get("method"), Mapping) and "epoch" in loaded


def _is_state_dict(value: Any) -> bool:
    """A module's weights: a non-empty mapping of names to tensors."""
    return (
        isinstance(value, Mapping)
        and bool(value)
        and all(isinstance(k, str) and isinstance(v, Tensor) for k, v in value.items())
    )


def _find_network(node: Any, parts: list[str]) -> StateDict | None:
    """Walk a method's state down ``parts``; inside a network the rest is a prefix of its weights' names."""
    if _is_state_dict(node):
        prefix = "".join(f"{part}." for part in parts)
        found = {key.removeprefix(prefix): v for key, v in node.items() if key.startswith(prefix)}
        return found or None
    if not parts or not isinstance(node, Mapping) or parts[0] not in node:
        return None
    return _find_network(node[parts[0]], parts[1:])


def _network_names(node: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted names of the networks in a method's state (optimiser states left out)."""
    names = []
    for key, value in node.items():
        if _is_state_dict(value):
            names.append(f"{prefix}{key}")
        elif isinstance(value, Mapping) and "param_groups" not in value:
            names += _network_names(value, f"{prefix}{key}.")
    return names


def _backbone_part(loaded: Any, where: str) -> StateDict:
    """The backbone's weights in an encoder record, a whole network's state dict or a backbone's."""
    if isinstance(loaded, Mapping) and _is_state_dict(loaded.get("backbone")):
        return dict(loaded["backbone"])  # an encoder file
    if not _is_state_dict(loaded):
        raise InputFileError(
            f"{where} holds no network weights: expected an encoder file, a run's checkpoint or a state "
            "dict of tensors."
        )
    if any(key.startswith(("backbone.", "head.")) for key in loaded):  # a Classifier's
        return {k.removeprefix("backbone."): v for k, v in loaded.items() if k.startswith("backbone.")}
    return dict(loaded)


def _first_mismatch(expected: Mapping[str, Tensor], saved: Mapping[str, Tensor]) -> str | None:
    for key, tensor in expected.items():
        if key not in saved:
            return f"tensor backbone.{key} is missing there"
        if saved[key].shape != tensor.shape:
            return (
                f"tensor backbone.{key} has shape {tuple(saved[key].shape)} there, "
                f"{tuple(tensor.shape)} in the model"
            )
    extra = next((key for key in saved if key not in expected), None)
    return None if extra is None else f"tensor backbone.{extra} there is not in the model"
