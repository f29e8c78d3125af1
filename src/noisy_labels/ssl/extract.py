"""Run a backbone over a data set in batches and cache the features (``noisy-labels features``).

A feature file is an ``.npz`` that :func:`noisy_labels.data.features.load_features` reads back as a
data set (``x``, ``y``, ``x_test``, ``y_test``, ``classes``), so its features can be trained on
(``noisy-labels run --set dataset=FEATURES.npz``), purified (``noisy-labels purify``) or given to the
``dmlp`` method (``--set dmlp.features=FEATURES.npz``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ["extract_features", "load_run_model", "save_feature_file"]


@torch.no_grad()
def extract_features(
    encoder: nn.Module,
    x: Tensor | np.ndarray,
    *,
    mean: Tensor | None = None,
    std: Tensor | None = None,
    batch_size: int = 512,
    device: torch.device | str = "cpu",
    progress: bool = False,
    desc: str = "features",
) -> np.ndarray:
    """Features ``encoder(x)`` for a whole set, in batches, as float32 numpy.

    Parameters
    ----------
    encoder : nn.Module
        Maps a prepared batch to (B, D) features; switched to eval mode.
    x : Tensor or ndarray
        uint8 NHWC images (normalised per channel with ``mean``/``std`` in [0, 1] units, as the engine
        prepares its test view) or float (N, D) vectors (passed as they are).
    mean, std : Tensor of shape (C,), optional
        Image normalisation; default: the set's own per-channel statistics.
    batch_size : int, default=512
    device : torch.device or str, default='cpu'
    progress : bool, default=False
        A tqdm bar over batches.
    desc : str
        The bar's label.

    Returns
    -------
    ndarray of shape (N, D) float32
    """
    from tqdm.auto import tqdm

    from .simclr import image_stats

    x = torch.as_tensor(x)
    is_image = x.ndim == 4 and x.dtype == torch.uint8
    if is_image and (mean is None or std is None):
        mean, std = image_stats(x)
    encoder = encoder.to(device).eval()
    out = []
    for start in tqdm(range(0, len(x), batch_size), desc=desc, disable=not progress, leave=False):
        batch = x[start : start + batch_size].to(device)
        if is_image:
            batch = batch.permute(0, 3, 1, 2).float() / 255.0
            batch = (batch - mean.to(device).view(1, -1, 1, 1)) / std.to(device).view(1, -1, 1, 1)
        else:
            batch = batch.float()
        out.append(encoder(batch).float().flatten(1).cpu())
    return torch.cat(out).numpy()


def load_run_model(run_dir: str | Path, *, module: str = "model") -> nn.Module:
    """The trained network of a finished run: its config's model with the checkpoint's weights.

    Parameters
    ----------
    run_dir : str or Path
        A run directory written by ``noisy-labels run`` (``config.yaml`` and ``checkpoint.pt``).
    module : str, default='model'
        The method attribute holding the network in the checkpoint (``model`` for the loss-based
        methods; co-training methods may also have e.g. ``model2``).

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
    from ..config import config_from_dict, read_yaml_file
    from ..engine.checkpoint import load_checkpoint
    from ..models import create_model

    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise FileNotFoundError(f"{run_dir} is not a run directory (no config.yaml).")
    state = load_checkpoint(run_dir)
    if state is None:
        raise FileNotFoundError(f"{run_dir} has no checkpoint.pt.")
    weights = state["method"].get(module)
    if not isinstance(weights, dict):
        known = sorted(k for k, v in state["method"].items() if isinstance(v, dict))
        raise ValueError(f"the checkpoint has no network {module!r}; it holds: {', '.join(known)}.")
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


def save_feature_file(path: str | Path, arrays: dict[str, np.ndarray]) -> Path:
    """Write an ``.npz`` of plain arrays atomically (a killed run never leaves a torn cache file)."""
    import io

    from ..engine.checkpoint import atomic_write_bytes

    path = Path(path)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write_bytes(path, lambda f: f.write(buffer.getvalue()))
    return path


def _feature_recipe(dataset, root, run_dir, module, simclr, model, seed) -> dict[str, Any]:
    """What a feature file was computed from: a file is reused only when this matches exactly."""
    from dataclasses import asdict, is_dataclass

    if run_dir is not None:
        backbone = {"run": str(Path(run_dir).resolve()), "module": module}
    else:
        ssl = asdict(simclr) if is_dataclass(simclr) else simclr
        backbone = {"model": model, "seed": seed, "simclr": ssl}
    recipe = {"dataset": dataset, "root": str(Path(root).resolve()) if root else None, "backbone": backbone}
    return json.loads(json.dumps(recipe))  # as it reads back from the file (tuples become lists)


def _stored_recipe(path: Path) -> dict[str, Any] | None:
    """The recipe a feature file records, or None (an older or foreign file, or one that cannot be read)."""
    try:
        with np.load(path, allow_pickle=False) as arrays:
            return json.loads(str(arrays["recipe"])) if "recipe" in arrays else None
    except (OSError, ValueError, EOFError, KeyError):
        return None


def _describe_recipe(recipe: dict[str, Any]) -> str:
    backbone = recipe["backbone"]
    source = f"run {backbone['run']}" if "run" in backbone else f"{backbone['model']}"
    if backbone.get("simclr"):
        source = f"simclr {source}"
    return f"dataset {recipe['dataset']}, backbone {source}"


def make_feature_file(
    out: str | Path,
    *,
    dataset: str,
    root: str | None = None,
    run_dir: str | Path | None = None,
    module: str = "model",
    simclr: Any = None,
    model: str = "small_cnn",
    batch_size: int = 512,
    seed: int = 0,
    device: str = "cpu",
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Compute (or reuse) the feature file of a data set's training and test splits.

    The backbone is, in order of precedence: the network of a finished run (``run_dir``), a network
    trained here with SimCLR on the training images without their labels (``simclr``: a
    :class:`~noisy_labels.ssl.simclr.SimCLRParams`; the encoder weights are saved beside ``out`` as
    ``<out>.encoder.pt``), or a freshly initialised ``model`` (a baseline).

    Parameters
    ----------
    out : str or Path
        The ``.npz`` to write; if it exists and ``overwrite`` is False nothing is computed.
    dataset, root : str
        As in :func:`noisy_labels.data.registry.load_dataset`.
    run_dir, module : see :func:`load_run_model`
    simclr : SimCLRParams, optional
    model : str, default='small_cnn'
        Registered image model whose backbone SimCLR trains (or that is used untrained).
    batch_size : int, default=512
        Extraction batch size.
    seed : int, default=0
    device : str, default='cpu'
    overwrite : bool, default=False
    progress : bool, default=True

    Returns
    -------
    dict
        ``path``, ``cached`` (True if the file was reused), and when computed ``train_shape``,
        ``test_shape``, ``source``, ``seconds`` and the SimCLR ``history``.

    Raises
    ------
    ValueError
        SimCLR or an untrained model asked for on a data set of feature vectors.
    """
    import time

    from ..data.registry import load_dataset
    from ..models import create_model
    from .simclr import SimCLRParams, image_stats, train_simclr

    out = Path(out)
    if out.suffix != ".npz":
        raise ValueError(f"the feature file must end in .npz, got {out.name}.")
    recipe = _feature_recipe(dataset, root, run_dir, module, simclr, model, seed)
    encoder_path = out.with_suffix(".encoder.pt")
    if out.exists() and not overwrite:
        if _stored_recipe(out) == recipe:
            return {"path": str(out), "cached": True}
        raise FileExistsError(
            f"{out} exists but does not record these features ({_describe_recipe(recipe)}); pass "
            "--overwrite to replace it, or choose another --out."
        )
    if simclr is not None and run_dir is None and encoder_path.exists() and not overwrite:
        raise FileExistsError(f"{encoder_path} exists; pass --overwrite to replace it.")
    start = time.perf_counter()
    bundle = load_dataset(dataset, root)
    train_x = torch.as_tensor(bundle.train.x)
    is_image = bundle.train.is_image
    info: dict[str, Any] = {"path": str(out), "cached": False}
    if run_dir is not None:
        encoder, info["source"] = load_run_model(run_dir, module=module).backbone, f"run {run_dir}"
    else:
        if not is_image:
            raise ValueError(
                f"{dataset} holds feature vectors, not images: SimCLR and image backbones need images "
                "(use the features as they are, or pass --checkpoint of a run trained on them)."
            )
        torch.manual_seed(seed)
        h, w, c = bundle.train.x.shape[1:]
        net = create_model(model, num_classes=bundle.train.num_classes, input_shape=(c, h, w))
        encoder = net.backbone.to(device)
        info["source"] = f"untrained {model}"
        if simclr is not None:
            params = simclr if isinstance(simclr, SimCLRParams) else SimCLRParams(**simclr)
            info["history"] = train_simclr(
                encoder, train_x.to(device), params, feature_dim=net.feature_dim, seed=seed, progress=progress
            )
            info["source"] = f"simclr {model}"
            torch.save({"model": model, "backbone": encoder.state_dict()}, encoder_path)
    mean = std = None
    if is_image:
        mean, std = image_stats(train_x)
    kw = {"mean": mean, "std": std, "batch_size": batch_size, "device": device, "progress": progress}
    arrays = {"x": extract_features(encoder, train_x, desc="train features", **kw), "y": bundle.train.y}
    if bundle.test is not None:
        arrays["x_test"] = extract_features(encoder, bundle.test.x, desc="test features", **kw)
        arrays["y_test"] = bundle.test.y
    arrays["classes"] = np.array(bundle.train.classes)
    arrays["recipe"] = np.array(json.dumps(recipe, sort_keys=True))
    save_feature_file(out, arrays)
    info.update(
        train_shape=list(arrays["x"].shape),
        test_shape=list(arrays["x_test"].shape) if "x_test" in arrays else None,
        seconds=time.perf_counter() - start,
    )
    return info
