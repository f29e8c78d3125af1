"""Experiment configuration: dataclass defaults <- YAML file <- ``--set key=value`` overrides.

A config is a tree of dataclasses. Method hyper-parameters live in a section named after the method
(``bootstrap_soft: {beta: 0.95}``, ``--set dmlp.then=ce``): here any top-level mapping that is not a
config key is kept as a method section, and :func:`noisy_labels.engine.build.load_config` checks it
against that method's own parameter dataclass, so a typo in any key is an error naming the key, never a
silently ignored value. This module knows nothing of the methods.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import yaml

from ._validation import check_choice, read_user_file
from .defaults import default_lr


class _YAMLLoader(yaml.SafeLoader):
    """PyYAML follows YAML 1.1, which reads ``3e-4`` (an exponent without a dot) as a string; YAML 1.2
    and every user mean a float, in config files and ``--set`` values alike."""


_YAMLLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$"),
    list("-+0123456789."),
)


def load_yaml(text: str) -> Any:
    """YAML as the config reads it (safe, with YAML 1.2's exponent floats)."""
    return yaml.load(text, Loader=_YAMLLoader)  # noqa: S506 - a SafeLoader subclass


def read_yaml_file(path: str | Path, what: str) -> Any:
    """A user's YAML file (a config, a run's ``config.yaml``); unreadable: one line naming it."""
    return read_user_file(path, what, lambda f: load_yaml(f.read_text(encoding="utf-8")))


class ConfigError(ValueError):
    """A configuration key or value is wrong; the message names it."""


@dataclass
class NoiseConfig:
    protocol: str = "symmetric"  # a name from noisy_labels.data.noise.PROTOCOLS, or "none"
    rate: float = 0.5
    label_set: str | None = None  # for protocol "human": e.g. "worst", "aggre", "random1"
    dataset: str | None = None  # class structure for "asymmetric": cifar10 | cifar100 (default: the data set)
    seed: int | None = None  # None: the experiment seed


@dataclass
class MetaConfig:
    size: int = 0  # trusted samples carved from the training set; 0 = no clean set
    corrupt: bool | None = None  # noisy meta set (RMNW-Net); None = the method's default


@dataclass
class ModelConfig:
    name: str = (
        "auto"  # auto: linear head for features, small_cnn for small images, preact_resnet18 otherwise
    )
    params: dict[str, Any] = field(default_factory=dict)
    # Backbone weights to start from (the head stays new): an encoder file (noisy-labels features --simclr
    # --save-encoder), a run directory (RUN_DIR#NETWORK for another network) or a state-dict file; see
    # noisy_labels.models.init. None: from scratch. Methods' extra networks follow it unless their own
    # init parameter (emlc.teacher_init, coteaching.peer_init, flywheel.auxiliary_init) says otherwise.
    init: str | None = None


@dataclass
class OptimConfig:
    name: str = "sgd"  # sgd | adam | adamw
    lr: float | None = None  # None: derived (noisy_labels.defaults: 0.01 for SGD momentum 0.9, 1e-3 Adam)
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    betas: tuple[float, float] = (0.9, 0.999)


@dataclass
class ScheduleConfig:
    name: str = "cosine"  # cosine | multistep | constant
    lr_warmup_epochs: float = 0.0  # linear learning-rate warm-up (not the methods' CE warm-up)
    milestones: list[float] = field(default_factory=list)  # epochs, for multistep
    gamma: float = 0.1


#: The augmentation views a method may ask the engine for (:mod:`noisy_labels.engine.augment` says
#: what each does to images and to feature vectors).
View = Literal["test", "weak", "cutout_jitter", "autoaugment", "randaugment"]
VIEWS: tuple[str, ...] = get_args(View)


@dataclass
class AugmentConfig:
    crop_padding: int | None = None  # None: 4 px for 32x32 images, 2 px for smaller, off for features
    flip: bool | None = None  # None: on for 3-channel images, off otherwise (digits must not flip)


@dataclass
class Config:
    dataset: str = "digits"
    root: str | None = None
    download: bool = False
    # Loader options, e.g. {human_labels: path/CIFAR-10_human.pt} for cifar10, {image_size: 64} for folders.
    dataset_options: dict[str, Any] = field(default_factory=dict)
    train_subset: int | None = None  # a seeded, class-stratified subset of the training set (CPU-sized runs)
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    meta: MetaConfig = field(default_factory=MetaConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    method: str = "ce"
    method_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    epochs: int = 20
    batch_size: int = 128
    batches_per_epoch: int | None = None  # fixed number of class-balanced batches (Clothing1M protocol)
    # A few steps of every stage, on a few samples, to check that a config runs before the real run
    # (noisy_labels.engine.smoke holds every cap); the models, method and recipe stay the config's.
    smoke: bool = False
    eval_batch_size: int = 128  # CPU convolutions run ~2x faster per sample at 128 than at 1024
    grad_clip: float | None = None
    standardize_features: bool = True
    amp: bool | None = None  # None: on with CUDA
    # bf16 autocast on the CPU: true | false | auto (on where the processor has native bf16, AMX or
    # AVX512-BF16: noisy_labels.engine.precision). Off by default: the stored CPU benchmarks ran in fp32.
    bf16_cpu: bool | str = False
    eval_flip: bool = False  # images: test accuracy from the mean logits of each image and its mirror
    channels_last: bool | None = None  # None: on (image inputs, any device)
    seed: int = 0
    device: str = "auto"
    out: str | None = None
    checkpoint_every: int = 1  # epochs
    quiet: bool = False
    tensorboard: bool = False


# ----------------------------------------------------------------------------------------- parsing


def parse_value(text: str) -> Any:
    """A ``--set`` value as YAML (``0.5`` -> float, ``[1, 2]`` -> list, ``null`` -> None)."""
    try:
        return load_yaml(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"cannot parse value {text!r}: {exc}") from exc


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``["a.b=1", "c=x"]`` -> nested ``{"a": {"b": 1}, "c": "x"}``."""
    tree: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set takes key=value, got {pair!r}.")
        node = tree
        *parents, leaf = key.strip().split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {key}: {part} is set to a value and a section at once.")
        node[leaf] = parse_value(value)
    return tree


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """``update`` over ``base``, mappings merged key by key; an empty mapping clears (``model.params={}``).

    >>> deep_merge({"model": {"name": "mlp", "params": {"hidden": [512]}}}, {"model": {"params": {}}})
    {'model': {'name': 'mlp', 'params': {}}}
    """
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and value and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def config_tree(path: str | Path | None = None, overrides: list[str] | None = None) -> dict[str, Any]:
    """The YAML file's tree (if any) with ``key=value`` overrides merged in (unchecked)."""
    tree: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        loaded = read_yaml_file(p, "config file") or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{p} must hold a mapping of keys to values.")
        tree = loaded
    return deep_merge(tree, parse_overrides(overrides or []))


def config_from_dict(tree: dict[str, Any]) -> Config:
    """A :class:`Config` from a nested mapping; top-level mappings that are not config keys become
    ``method_params`` sections (checked against the methods by ``noisy_labels.engine.build``)."""
    tree = dict(tree)
    keys = {f.name for f in fields(Config)}
    sections = {
        k: tree.pop(k) for k in list(tree) if k not in keys and isinstance(tree[k], (dict, type(None)))
    }
    method_sections = deep_merge(tree.pop("method_params", {}) or {}, sections)
    cfg = _build(Config, tree, prefix="")
    for name, section in method_sections.items():
        if not isinstance(section, (dict, type(None))):
            raise ConfigError(f"method section {name} must be a mapping, got {section!r}.")
    cfg.method_params = {k: dict(v or {}) for k, v in method_sections.items()}
    if cfg.optim.lr is None:
        cfg.optim.lr = default_lr(cfg.optim.name, cfg.optim.momentum)
    _check_values(cfg)
    return cfg


def params_from_dict(cls: type, values: dict[str, Any], *, prefix: str = ""):
    """Build a (method parameter) dataclass from a mapping, rejecting unknown keys and wrong types."""
    return _build(cls, values, prefix=prefix)


def _build(cls: type, values: dict[str, Any], *, prefix: str):
    if not isinstance(values, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'} must be a mapping, got {values!r}.")
    hints = get_type_hints(cls)
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(
            f"unknown config key(s) {', '.join(prefix + u for u in unknown)}; "
            f"known under {prefix or 'the top level'}: {', '.join(sorted(names))}."
        )
    kwargs = {}
    for name, value in values.items():
        hint = hints[name]
        if isinstance(hint, type) and is_dataclass(hint):
            kwargs[name] = _build(hint, value or {}, prefix=f"{prefix}{name}.")
        else:
            kwargs[name] = _coerce(value, hint, f"{prefix}{name}")
    try:
        return cls(**kwargs)  # method Params check their values when built (__post_init__)
    except ConfigError:
        raise
    except ValueError as exc:
        raise ConfigError(f"{prefix}{exc}") from None


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """Check ``value`` against a simple type hint, converting ints to floats and lists to tuples."""
    origin, args = get_origin(hint), get_args(hint)
    if origin is Union or type(hint).__name__ == "UnionType":
        if value is None and type(None) in args:
            return None
        for option in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, option, key)
            except ConfigError:
                continue
        raise ConfigError(f"{key}: {value!r} is not a valid {hint}.")
    if hint is Any:
        return value
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if hint in (str, bool) and isinstance(value, hint):
        return value
    if origin in (list, tuple) and isinstance(value, (list, tuple)):
        item = args[0] if args else Any
        items = [_coerce(v, item, key) for v in value]
        if origin is tuple and args and args[-1] is not Ellipsis and len(items) != len(args):
            raise ConfigError(f"{key}: expected {len(args)} values, got {len(items)}.")
        return tuple(items) if origin is tuple else items
    if origin is dict and isinstance(value, dict):
        return dict(value)
    raise ConfigError(
        f"{key}: expected {getattr(hint, '__name__', hint)}, got {value!r} ({type(value).__name__})."
    )


def _check_values(cfg: Config) -> None:
    positive = {
        "epochs": cfg.epochs,
        "batch_size": cfg.batch_size,
        "eval_batch_size": cfg.eval_batch_size,
        "checkpoint_every": cfg.checkpoint_every,
    }
    for key, value in positive.items():
        if value < 1:
            raise ConfigError(f"{key} must be >= 1, got {value}.")
    if not 0.0 <= cfg.noise.rate <= 1.0:
        raise ConfigError(f"noise.rate must lie in [0, 1], got {cfg.noise.rate}.")
    if cfg.train_subset is not None and cfg.train_subset < 1:
        raise ConfigError(f"train_subset must be >= 1 or null, got {cfg.train_subset}.")
    if cfg.meta.size < 0:
        raise ConfigError(f"meta.size must be >= 0, got {cfg.meta.size}.")
    if isinstance(cfg.bf16_cpu, str) and cfg.bf16_cpu != "auto":
        raise ConfigError(f"bf16_cpu must be true, false or auto, got {cfg.bf16_cpu!r}.")
    if cfg.optim.lr is None or cfg.optim.lr <= 0:  # resolved from the defaults before this check
        raise ConfigError(f"optim.lr must be > 0, got {cfg.optim.lr}.")
    choices: dict[str, tuple[str, tuple[str, ...]]] = {
        "optim.name": (cfg.optim.name, ("sgd", "adam", "adamw")),
        "schedule.name": (cfg.schedule.name, ("cosine", "multistep", "constant")),
    }
    for key, (name, allowed) in choices.items():
        check_choice(key, name, allowed, error=ConfigError)


def config_to_dict(cfg: Config) -> dict[str, Any]:
    """A plain, YAML-safe dict (tuples become lists) that ``config_from_dict`` reads back."""

    def plain(v):
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        return v

    return plain(asdict(cfg))


def replace(cfg: Config, **changes) -> Config:
    return dataclasses.replace(cfg, **changes)
