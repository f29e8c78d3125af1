"""Training on image sets too large for memory (Clothing1M, WebVision): images decoded per batch.

The engine indexes its stored sets like tensors (``train_x[idx]``, ``test_x[a:b]``, ``len``). For an
in-memory set they are uint8 tensors ``(N, H, W, C)``; :class:`LazyImages` gives the same interface over an
:class:`~noisy_labels.data.lazy.ImageListDataset`, decoding the requested images with a small thread pool
(Pillow releases the GIL while decoding), so every method runs unchanged. Per-epoch passes over the
training set (DivideMix, the flywheel) decode it once per pass, as the reference implementations do.

:func:`prepare_lazy_data` maps the official splits onto the engine's roles:

* Clothing1M: ``noisy_train`` (real noisy labels) trains; the trusted meta set is a class-balanced draw
  of ``meta.size`` images from ``clean_train`` (0: none; ``dataset_options.meta_split=val`` draws from the
  validation split instead, as L2B does); ``test`` evaluates.
* WebVision mini: ``train`` trains; ``val`` evaluates; no trusted set.

The noise is real, so ``noise.protocol`` must be ``none`` and no clean training labels are known
(``label_acc`` and ``cleanness_auc`` are not reported).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import cast

import numpy as np
import torch

from .._validation import check_choice
from ..config import Config, ConfigError
from ..data.lazy import ImageListDataset, load_clothing1m, load_webvision_mini, read_image
from .experiment_data import ExperimentData
from .smoke import smoke_rows

LAZY_DATASETS = ("clothing1m", "webvision_mini")
_STATS_SAMPLE = 500  # images read to estimate the per-channel mean and std


class LazyImages:
    """Images of an :class:`ImageListDataset`, indexable like a uint8 ``(N, H, W, C)`` tensor.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from PIL import Image
    >>> folder = tempfile.mkdtemp()
    >>> Image.fromarray(np.zeros((20, 24, 3), np.uint8)).save(f"{folder}/a.png")
    >>> images = LazyImages(ImageListDataset([f"{folder}/a.png"] * 3, [0, 1, 0], ["x", "y"], image_size=8))
    >>> len(images), tuple(images[torch.tensor([0, 2])].shape), tuple(images[1:].shape)
    (3, (2, 8, 8, 3), (2, 8, 8, 3))
    """

    def __init__(self, dataset: ImageListDataset, device: torch.device | str = "cpu", threads: int = 4):
        if dataset.image_size is None:
            raise ValueError("lazy training needs a fixed image_size so that a batch has one shape.")
        self.dataset = dataset
        self.device = torch.device(device)
        self.threads = threads
        self._pool: ThreadPoolExecutor | None = None  # one decoding pool for all batches, made on first use
        channels = 3 if dataset.mode == "RGB" else 1
        self.shape = (len(dataset), dataset.image_size, dataset.image_size, channels)
        self.dtype = torch.uint8

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key) -> torch.Tensor:
        if isinstance(key, slice):
            index = np.arange(len(self))[key]
        else:
            index = np.atleast_1d(torch.as_tensor(key).cpu().numpy()).astype(np.int64)
        return self.read(index).to(self.device)

    def read(self, index: np.ndarray) -> torch.Tensor:
        """Decode ``index`` (any order, repeats allowed) into a uint8 tensor ``(len(index), H, W, C)``."""
        ds = self.dataset
        out = np.empty((len(index), *self.shape[1:]), dtype=np.uint8)

        def load(i: int) -> None:
            out[i] = read_image(ds.paths[index[i]], ds.image_size, resize=ds.resize, mode=ds.mode).reshape(
                self.shape[1:]
            )

        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="decode")
        list(self._pool.map(load, range(len(index))))
        return torch.from_numpy(out)

    def subset(self, index: np.ndarray) -> LazyImages:
        """The images at ``index``, still lazy."""
        return LazyImages(listed_subset(self.dataset, index), self.device, self.threads)

    def channel_stats(self, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel pixel mean and std in [0, 1] units, from a seeded sample of the images."""
        rng = np.random.default_rng(seed)
        sample = rng.choice(len(self), size=min(_STATS_SAMPLE, len(self)), replace=False)
        pixels = self.read(np.sort(sample)).reshape(-1, self.shape[-1]).double().numpy() / 255.0
        return pixels.mean(0), pixels.std(0) + 1e-8


def listed_subset(dataset: ImageListDataset, index: np.ndarray) -> ImageListDataset:
    """The images of a listing at ``index``, with the listing's decoding options."""
    return ImageListDataset(
        [dataset.paths[i] for i in index],
        dataset.labels[index],
        dataset.classes,
        image_size=dataset.image_size,
        resize=dataset.resize,
        mode=dataset.mode,
        name=dataset.name,
    )


def balanced_draw(labels: np.ndarray, size: int, num_classes: int, seed: int) -> np.ndarray:
    """``size`` indices spread as evenly over the classes as their counts allow (sorted)."""
    if size > len(labels):
        raise ConfigError(f"meta.size={size} is larger than the {len(labels)} trusted images available.")
    rng = np.random.default_rng(seed)
    pools = [rng.permutation(np.flatnonzero(labels == c)) for c in range(num_classes)]
    picked: list[int] = []
    depth = 0
    while len(picked) < size:  # one image per class per round, skipping exhausted classes
        row = [int(p[depth]) for p in pools if depth < len(p)]
        picked.extend(row[: size - len(picked)])
        depth += 1
    return np.sort(np.asarray(picked, dtype=np.int64))


def load_lazy_splits(
    cfg: Config,
) -> tuple[ImageListDataset, ImageListDataset | None, ImageListDataset | None]:
    """Training, trusted and test sets of a lazy data set (before the meta-size draw)."""
    options = {"image_size": 224, "resize": 256, **cfg.dataset_options}
    trusted = options.pop("meta_split", "clean_train")  # L2B's Clothing1M runs use "val"
    if cfg.root is None:
        raise ConfigError(f"{cfg.dataset} is read from disk: set root=PATH (its folder).")
    if cfg.dataset == "clothing1m":
        check_choice("dataset_options.meta_split", trusted, ("clean_train", "val"), error=ConfigError)
        splits = load_clothing1m(cfg.root, **options)
        return splits["noisy_train"], splits[trusted], splits["test"]
    splits = load_webvision_mini(cfg.root, **options)
    if cfg.meta.size:
        raise ConfigError("webvision_mini has no trusted set: set meta.size=0.")
    return splits["train"], None, splits["val"]


def prepare_lazy_data(cfg: Config, device: torch.device) -> ExperimentData:
    """:class:`~.experiment_data.ExperimentData` whose image sets are :class:`LazyImages`."""
    if cfg.noise.protocol != "none":
        raise ConfigError(
            f"{cfg.dataset} carries real label noise: set noise.protocol=none (got {cfg.noise.protocol!r})."
        )
    if cfg.train_subset is not None:
        raise ConfigError(f"train_subset is not supported for {cfg.dataset}; use batches_per_epoch.")
    train, trusted, test = load_lazy_splits(cfg)
    train_index = np.arange(len(train))
    meta_x = meta_y = None
    meta_index = np.zeros(0, dtype=np.int64)
    if trusted is not None and cfg.meta.size:
        meta_index = balanced_draw(trusted.labels, cfg.meta.size, trusted.num_classes, cfg.seed)
    if cfg.smoke:
        train_index, meta_index, test = _smoke_listings(train, trusted, meta_index, test, seed=cfg.seed)
        train = listed_subset(train, train_index)
    train_x = LazyImages(train, device)
    if trusted is not None and len(meta_index):
        meta_x = LazyImages(trusted, device).subset(meta_index)
        meta_y = torch.as_tensor(trusted.labels[meta_index]).to(device)
    mean, std = train_x.channel_stats(cfg.seed)
    # LazyImages stand in for the image tensors (indexing decodes a batch): typed as the tensors they yield
    return ExperimentData(
        train_x=cast(torch.Tensor, train_x),
        train_y=torch.as_tensor(train.labels).to(device),
        train_clean_y=None,
        meta_x=cast(torch.Tensor | None, meta_x),
        meta_y=meta_y,
        test_x=cast(torch.Tensor | None, LazyImages(test, device) if test is not None else None),
        test_y=torch.as_tensor(test.labels).to(device) if test is not None else None,
        classes=train.classes,
        is_image=True,
        mean=torch.as_tensor(mean, dtype=torch.float32).to(device),
        std=torch.as_tensor(std, dtype=torch.float32).to(device),
        noise_record={"protocol": "real", "dataset": cfg.dataset},
        train_index=train_index,
        meta_index=meta_index,
    )


def _smoke_listings(
    train: ImageListDataset,
    trusted: ImageListDataset | None,
    meta_index: np.ndarray,
    test: ImageListDataset | None,
    *,
    seed: int,
) -> tuple[np.ndarray, np.ndarray, ImageListDataset | None]:
    """A smoke run's rows (:func:`~.smoke.smoke_rows`): training positions, trusted positions, test set."""
    meta_labels = trusted.labels[meta_index] if trusted is not None and len(meta_index) else None
    rows = smoke_rows(len(train), meta_labels, None if test is None else len(test), seed=seed)
    kept_meta = meta_index if rows.meta is None else meta_index[rows.meta]
    kept_test = test if test is None or rows.test is None else listed_subset(test, rows.test)
    return rows.train, kept_meta, kept_test
