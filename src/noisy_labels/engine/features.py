"""The feature file of a data set (``noisy-labels features``): extracted with a run's network, a SimCLR
encoder trained here, or an untrained model, and reused when it records the same recipe.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from ..data.registry import load_dataset
from ..models import create_model, save_encoder
from ..ssl import SimCLRParams, extract_features, save_feature_file, train_simclr
from ..ssl.simclr import image_stats
from .runs import load_run_model

__all__ = ["make_feature_file"]


def _feature_recipe(dataset, root, run_dir, module, simclr, model, seed) -> dict[str, Any]:
    """What a feature file was computed from: a file is reused only when this matches exactly."""
    if run_dir is not None:
        backbone = {"run": str(Path(run_dir).resolve()), "module": module}
    else:
        ssl = asdict(simclr) if is_dataclass(simclr) and not isinstance(simclr, type) else simclr
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
    encoder_out: str | Path | None = None,
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
    :class:`~noisy_labels.ssl.simclr.SimCLRParams`; the encoder is saved as an encoder file, which
    ``model.init`` reads, at ``encoder_out``, by default beside ``out`` as ``<out>.encoder.pt``), or a
    freshly initialised ``model`` (a baseline).

    Parameters
    ----------
    out : str or Path
        The ``.npz`` to write; if it exists and ``overwrite`` is False nothing is computed.
    dataset, root : str
        As in :func:`noisy_labels.data.registry.load_dataset`.
    run_dir, module : see :func:`noisy_labels.engine.runs.load_run_model`
    simclr : SimCLRParams, optional
    encoder_out : str or Path, optional
        Where to save the SimCLR encoder (:func:`noisy_labels.models.init.save_encoder`); only with
        ``simclr`` and no ``run_dir``.
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
        ``test_shape``, ``source``, ``seconds``, and with SimCLR its ``history`` and the ``encoder`` file.

    Raises
    ------
    ValueError
        SimCLR or an untrained model asked for on a data set of feature vectors; ``encoder_out`` without
        SimCLR.
    """
    out = Path(out)
    if out.suffix != ".npz":
        raise ValueError(f"the feature file must end in .npz, got {out.name}.")
    trains_encoder = simclr is not None and run_dir is None
    if encoder_out is not None and not trains_encoder:
        raise ValueError("--save-encoder saves the encoder SimCLR trains: give --simclr, not --checkpoint.")
    recipe = _feature_recipe(dataset, root, run_dir, module, simclr, model, seed)
    encoder_path = Path(encoder_out) if encoder_out is not None else out.with_suffix(".encoder.pt")
    if out.exists() and not overwrite:
        if _stored_recipe(out) != recipe:
            raise FileExistsError(
                f"{out} exists but does not record these features ({_describe_recipe(recipe)}); pass "
                "--overwrite to replace it, or choose another --out."
            )
        if not trains_encoder or encoder_path.exists():  # else train again: the encoder is asked for
            return {"path": str(out), "cached": True}
    elif trains_encoder and encoder_path.exists() and not overwrite:
        raise FileExistsError(f"{encoder_path} exists; pass --overwrite to replace it.")
    start = time.perf_counter()
    bundle = load_dataset(dataset, root)
    train_x = torch.as_tensor(bundle.train.x)
    is_image = bundle.train.is_image
    info: dict[str, Any] = {"path": str(out), "cached": False}
    encoder: nn.Module
    if run_dir is not None:
        encoder = cast(nn.Module, load_run_model(run_dir, module=module).backbone)
        info["source"] = f"run {run_dir}"
    else:
        if not is_image:
            raise ValueError(
                f"{dataset} holds feature vectors, not images: SimCLR and image backbones need images "
                "(use the features as they are, or pass --checkpoint of a run trained on them)."
            )
        torch.manual_seed(seed)
        h, w, c = bundle.train.x.shape[1:]
        net = create_model(model, num_classes=bundle.train.num_classes, input_shape=(c, h, w))
        encoder = cast(nn.Module, net.backbone).to(device)
        info["source"] = f"untrained {model}"
        if simclr is not None:
            params = simclr if isinstance(simclr, SimCLRParams) else SimCLRParams(**simclr)
            info["history"] = train_simclr(
                encoder, train_x.to(device), params, feature_dim=net.feature_dim, seed=seed, progress=progress
            )
            info["source"] = f"simclr {model}"
            info["encoder"] = str(save_encoder(encoder_path, model, encoder))
    mean = std = None
    if is_image:
        mean, std = image_stats(train_x)

    def extract(x: torch.Tensor | np.ndarray, desc: str) -> np.ndarray:
        return extract_features(
            encoder, x, mean=mean, std=std, batch_size=batch_size, device=device, progress=progress, desc=desc
        )

    arrays = {"x": extract(train_x, "train features"), "y": bundle.train.y}
    if bundle.test is not None:
        arrays["x_test"] = extract(bundle.test.x, "test features")
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
