"""Models by name: ``@register_model`` fills the registry, ``create_model`` builds from it.

An entry is either an *image* model, built as ``builder(num_classes=..., in_channels=..., **kwargs)``
for ``(B, C, H, W)`` inputs, or a *features* model, built as ``builder(num_classes=...,
in_features=..., **kwargs)`` for ``(B, D)`` inputs. ``create_model`` turns its uniform arguments into
whichever of the two the entry needs, so callers (configs, the CLI, tests) never special-case a model.
"""

from __future__ import annotations

import difflib
import importlib.util
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from .._validation import check_num_classes
from .base import Classifier

__all__ = ["register_model", "create_model", "list_models"]

InputKind = Literal["image", "features"]
F = TypeVar("F", bound=Callable[..., Classifier])


@dataclass(frozen=True)
class _Entry:
    builder: Callable[..., Classifier]
    inputs: InputKind
    requires: str | None  # an optional package the model needs; hidden from list_models without it

    def available(self) -> bool:
        return self.requires is None or importlib.util.find_spec(self.requires) is not None


_REGISTRY: dict[str, _Entry] = {}


def register_model(
    name: str, *, inputs: InputKind = "image", requires: str | None = None
) -> Callable[[F], F]:
    """Class or function decorator that registers a model builder under ``name``.

    Parameters
    ----------
    name : str
        Registry key, lower case (e.g. ``"resnet32"``).
    inputs : {'image', 'features'}, default='image'
        ``'image'`` builders take ``num_classes`` and ``in_channels``; ``'features'`` builders take
        ``num_classes`` and ``in_features``. Both accept further keyword arguments.
    requires : str, optional
        Import name of an optional dependency; without it the model is left out of
        :func:`list_models` and building it raises the builder's ``ImportError``.

    Raises
    ------
    ValueError
        If ``name`` is already registered or ``inputs`` is not one of the two kinds.
    """
    if inputs not in ("image", "features"):
        raise ValueError(f"inputs must be 'image' or 'features', got {inputs!r}.")

    def decorator(builder: F) -> F:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered (by {_REGISTRY[name].builder!r}).")
        _REGISTRY[name] = _Entry(builder, inputs, requires)
        return builder

    return decorator


def list_models(*, include_unavailable: bool = False) -> list[str]:
    """Sorted names of registered models, leaving out those whose optional dependency is missing."""
    return sorted(n for n, e in _REGISTRY.items() if include_unavailable or e.available())


def create_model(
    name: str,
    *,
    num_classes: int,
    in_channels: int | None = None,
    input_shape: Sequence[int] | None = None,
    feature_dim: int | None = None,
    **kwargs: Any,
) -> Classifier:
    """Build a registered model.

    Parameters
    ----------
    name : str
        A name from :func:`list_models`.
    num_classes : int
        Number of output logits, >= 2.
    in_channels : int, optional
        Image channels for image models; defaults to ``input_shape[0]`` or 3.
    input_shape : sequence of int, optional
        Shape of one input without the batch dimension: ``(C, H, W)`` for image models (only ``C`` is
        used; all image models pool adaptively), ``(D,)`` (or any shape, flattened) for feature models.
    feature_dim : int, optional
        Input dimension ``D`` for feature models (``linear``, ``mlp``).
    **kwargs
        Passed to the model's constructor (e.g. ``dropout=0.3`` for ``wide_resnet``).

    Returns
    -------
    Classifier

    Raises
    ------
    ValueError
        Unknown ``name`` (the message lists the known ones), or input arguments that do not fit the
        model kind.

    Examples
    --------
    >>> net = create_model("small_cnn", num_classes=10, input_shape=(1, 28, 28))
    >>> net.num_classes, net.feature_dim
    (10, 128)
    >>> create_model("mlp", num_classes=3, feature_dim=20, hidden=(64,)).feature_dim
    64
    """
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, _REGISTRY, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown model {name!r}.{hint} Known models: {', '.join(list_models())}.")
    entry = _REGISTRY[name]
    num_classes = check_num_classes(num_classes)
    if entry.inputs == "image":
        if feature_dim is not None:
            raise ValueError(
                f"{name!r} is an image model taking (B, C, H, W) inputs; pass in_channels or "
                f"input_shape=(C, H, W) instead of feature_dim, or use 'linear'/'mlp' for feature vectors."
            )
        channels = _channels(name, in_channels, input_shape)
        return entry.builder(num_classes=num_classes, in_channels=channels, **kwargs)
    if in_channels is not None:
        raise ValueError(f"{name!r} takes feature vectors (B, D); pass feature_dim=D instead of in_channels.")
    return entry.builder(
        num_classes=num_classes, in_features=_in_features(name, feature_dim, input_shape), **kwargs
    )


def _channels(name: str, in_channels: int | None, input_shape: Sequence[int] | None) -> int:
    if input_shape is not None:
        shape = tuple(input_shape)
        if len(shape) != 3:
            raise ValueError(
                f"{name!r} needs input_shape=(C, H, W) without the batch dimension, got {shape}; "
                "grayscale images need an explicit channel, e.g. (1, 28, 28)."
            )
        if in_channels is not None and in_channels != shape[0]:
            raise ValueError(f"in_channels={in_channels} contradicts input_shape={shape}; pass only one.")
        in_channels = shape[0]
    in_channels = 3 if in_channels is None else in_channels
    if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
        raise ValueError(f"in_channels must be a positive integer, got {in_channels!r}.")
    return in_channels


def _in_features(name: str, feature_dim: int | None, input_shape: Sequence[int] | None) -> int:
    if feature_dim is None and input_shape is None:
        raise ValueError(f"{name!r} takes feature vectors (B, D): pass feature_dim=D (or input_shape=(D,)).")
    if input_shape is not None:
        # Any shape is accepted because the backbone flattens, e.g. a linear model on raw MNIST pixels.
        flat = math.prod(input_shape)
        if feature_dim is not None and feature_dim != flat:
            raise ValueError(f"feature_dim={feature_dim} contradicts input_shape={tuple(input_shape)}.")
        feature_dim = flat
    if isinstance(feature_dim, bool) or not isinstance(feature_dim, int) or feature_dim < 1:
        raise ValueError(f"feature_dim must be a positive integer, got {feature_dim!r}.")
    return feature_dim
