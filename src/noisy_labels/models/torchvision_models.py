"""ImageNet backbones from torchvision (optional dependency: ``pip install noisy-labels[vision]``).

Used for Clothing1M / WebVision-style experiments, where papers start from an ImageNet-pretrained
ResNet-50 (e.g. DivideMix, Li et al., ICLR 2020). Pretrained weights are never downloaded here: they
must already be in torch.hub's cache or be given as a file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .base import Classifier
from .registry import register_model

__all__ = ["torchvision_backbone"]

_INSTALL_HINT = (
    "torchvision_backbone needs torchvision, which is not installed: pip install noisy-labels[vision]"
)


def torchvision_backbone(
    name: str,
    pretrained: bool | str | os.PathLike = False,
    *,
    num_classes: int,
    in_channels: int = 3,
    **model_kwargs: Any,
) -> Classifier:
    """A torchvision classification network split into backbone and a new linear head.

    The network's last ``nn.Linear`` (``fc`` of ResNets, ``classifier[-1]`` of VGG/EfficientNet,
    ``heads.head`` of ViT) is replaced by ``nn.Identity`` to form the backbone, and a fresh
    ``nn.Linear(feature_dim, num_classes)`` becomes the head.

    Parameters
    ----------
    name : str
        A torchvision model name, e.g. ``"resnet50"`` (see ``torchvision.models.list_models()``).
    pretrained : bool or path-like, default=False
        ``True`` loads the default ImageNet weights from torch.hub's checkpoint cache
        (``torch.hub.get_dir()/checkpoints``); a path loads that state-dict file. Nothing is downloaded.
    num_classes : int
    in_channels : int, default=3
        Must be 3: ImageNet backbones take RGB input (repeat grayscale channels instead).
    **model_kwargs
        Passed to ``torchvision.models.get_model`` (e.g. ``aux_logits=False`` for GoogLeNet).

    Returns
    -------
    Classifier

    Raises
    ------
    ImportError
        If torchvision is not installed.
    FileNotFoundError
        If ``pretrained`` weights are not available locally.
    ValueError
        If ``in_channels != 3`` or the network has no linear layer to replace.
    """
    try:
        import torchvision
    except ImportError as err:
        raise ImportError(_INSTALL_HINT) from err
    if in_channels != 3:
        raise ValueError(
            f"torchvision ImageNet backbones take 3-channel input, got in_channels={in_channels}."
        )
    model = torchvision.models.get_model(name, weights=None, **model_kwargs)
    if pretrained is True:
        weights = torchvision.models.get_model_weights(name).DEFAULT
        path = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)
        if not path.is_file():
            raise FileNotFoundError(
                f"pretrained weights for {name!r} not found at {path}; this library does not download: "
                f"fetch {weights.url} into that folder, or pass pretrained=<path to the state dict>."
            )
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    elif pretrained is not False:
        if not Path(pretrained).is_file():
            raise FileNotFoundError(f"pretrained weights file {os.fspath(pretrained)!r} does not exist.")
        model.load_state_dict(torch.load(pretrained, map_location="cpu", weights_only=True))
    feature_dim = _strip_last_linear(model, name)
    return Classifier(
        model, nn.Linear(feature_dim, num_classes), feature_dim=feature_dim, num_classes=num_classes
    )


def _strip_last_linear(model: nn.Module, name: str) -> int:
    """Replace the last registered ``nn.Linear`` by ``nn.Identity``; return its input width."""
    linears = [(path, m) for path, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"torchvision model {name!r} has no nn.Linear classifier to replace.")
    path, last = linears[-1]
    parent_path, _, attr = path.rpartition(".")
    setattr(model.get_submodule(parent_path), attr, nn.Identity())
    return last.in_features


@register_model("torchvision", requires="torchvision")
def _build_torchvision(
    *,
    num_classes: int,
    in_channels: int,
    arch: str,
    pretrained: bool | str | os.PathLike = False,
    **kwargs: Any,
) -> Classifier:
    """Registry entry: ``create_model("torchvision", arch="resnet50", num_classes=14, pretrained=True)``."""
    return torchvision_backbone(arch, pretrained, num_classes=num_classes, in_channels=in_channels, **kwargs)
