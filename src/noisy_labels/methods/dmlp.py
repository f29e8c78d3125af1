"""DMLP: purify the labels with the decoupled meta label purifier, then train with any method.

Tu et al., "Learning from Noisy Labels with Decoupled Meta Label Purifier", CVPR 2023. Three stages:

1. **Label-free representation** (``dmlp.features``): the stored features of a feature data set, a
   feature file (``.npy``/``.npz`` with one row per sample of the training set before the meta split,
   e.g. from ``noisy-labels features``), SimCLR trained here on the training images without labels, or
   raw pixels (a weak baseline). SimCLR's recipe is the ``dmlp.simclr_*`` keys, one for each key of
   :class:`~noisy_labels.ssl.SimCLRParams` (``dmlp.simclr_optimizer=lars``, ``dmlp.simclr_batch_size``,
   ...; CPU-sized by default, the paper's CIFAR-10 recipe in the paper configs). A SimCLR encoder trained
   here is written to the run directory as ``dmlp_encoder.pt``, an encoder file
   (:mod:`noisy_labels.models.init`) that ``model.init`` reads.
2. **Purification** in :meth:`setup`: :class:`~noisy_labels.purify.DMLPPurifier` (IPC + EAC) on those
   features with the trusted meta set as the clean validation set. Its parameters are this section's
   other keys (``dmlp.epochs``, ``dmlp.alpha``, ...; see :class:`~noisy_labels.purify.PurifyParams`).
   By default (``dmlp.relabel=calibrated``) a sample takes its purified label only where the purifier
   beats the given label by a margin chosen on probes drawn from the meta set (``dmlp.probe_fraction``
   of it; the rest is eq. 6's validation set), so the purified labels are not less accurate than the
   given ones; ``dmlp.relabel=always`` is the paper's argmax (see :mod:`noisy_labels.purify.pipeline`).
3. **Training** (``dmlp.then``): DMLP-Naive is ``then=ce`` (the default); DMLP-X is any other registered
   method, built with its own config section and trained by the engine as usual, seeing the purified
   hard labels as its training labels (in its batches and as ``ctx.train_labels``). Settings keyed to the
   noise rate (Co-teaching's forget rate, CDR's critical fraction, DivideMix's lambda_u, read through
   ``ctx.assumed_noise_rate()`` / ``ctx.assumed_noise()``) get the rate *estimated for the purified
   labels* on the clean set, not the given labels' nominal rate (which at 80% symmetric noise would make
   Co-teaching drop 80% of labels that are ~70% right there): the error of the probes (clean samples
   passed through the purifier with a right or a wrong given label) after the relabelling rule, weighted
   by the training set's share of wrong given labels (the run's assumed rate where it knows one, else the
   calibration's estimate), an unbiased estimate of the training set's purified-label error
   (:func:`~noisy_labels.purify.pipeline.estimate_label_error`; its spread is the probes' binomial one,
   ~0.03 with 1,000 clean samples: on the CIFAR-10 features at symmetric 80%, seed 0, it read 0.23 for a
   true 0.28, benchmarks/results/dmlp_ipc_ablation.json). ``relabel=always``: the EAC classifier's
   clean-set error; with no estimate (nothing relabelled, ``keep_given``) the given labels' rate. The
   protocol stays the run's. An explicit setting (``coteaching.forget_rate``, ...) still wins.
   Table 6's "*" rows (DMLP-Naive*, DMLP*-X) retrain from the stage-1 SimCLR weights:
   ``dmlp.retrain_from_encoder=true`` starts every network of this stage from the encoder (in place of
   ``model.init``; the heads are new), so the encoder must be the run's model (``dmlp.simclr_model`` unset
   or the same).

``label_acc`` in the logs and ``summary.json`` is the accuracy of the purified labels; ``cleanness`` is
the purified probability of each given label. The purification's per-epoch history (argmax label
accuracy per epoch, the paper's Fig. 4), the calibration (threshold, estimated noise rate of the given
labels) and ``estimated_noise_rate`` (of the purified labels, what stage 3 assumes) are written to
``dmlp_purify.json`` in the run directory.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .._validation import check_choice
from ..losses import mean_soft_cross_entropy
from ..models import create_model
from ..models.init import encoder_record, save_encoder
from ..purify import DMLPPurifier, PurifyParams
from ..ssl import SimCLRParams, extract_features, train_simclr
from ..ssl.simclr import image_stats
from .base import Batch, Method, get_method_class

if TYPE_CHECKING:
    from ..engine.context import TrainingContext


@dataclass
class DMLPParams(PurifyParams):
    """The purifier's parameters plus how to get features and what to train afterwards."""

    then: str = "ce"  # the method trained on the purified labels (DMLP-X); ce = DMLP-Naive
    features: str = "auto"  # auto | data | simclr | raw | PATH (.npy / .npz key 'x'); auto: data or simclr
    targets: str = "hard"  # hard | soft (soft-label cross-entropy; only with then=ce)
    simclr_model: str | None = None  # encoder for SimCLR (e.g. mlp on a CPU); None: the run's model
    retrain_from_encoder: bool = False  # Table 6 "*": stage 3 starts from the SimCLR encoder of stage 1
    # Stage 1's SimCLR recipe: each key of noisy_labels.ssl.SimCLRParams (see it for the paper's values)
    # with a simclr_ prefix; the defaults are its CPU-sized ones.
    simclr_epochs: int = SimCLRParams.epochs
    simclr_batch_size: int = SimCLRParams.batch_size
    simclr_optimizer: str = SimCLRParams.optimizer  # adam | sgd | lars
    simclr_lr: float = SimCLRParams.lr
    simclr_lr_scaling: str = SimCLRParams.lr_scaling  # none | linear | sqrt
    simclr_warmup_epochs: int = SimCLRParams.warmup_epochs
    simclr_weight_decay: float = SimCLRParams.weight_decay
    simclr_momentum: float = SimCLRParams.momentum
    simclr_trust_coefficient: float = SimCLRParams.trust_coefficient
    simclr_temperature: float = SimCLRParams.temperature
    simclr_proj_dim: int = SimCLRParams.proj_dim
    simclr_proj_hidden: int | None = SimCLRParams.proj_hidden
    simclr_crop_scale: tuple[float, float] = SimCLRParams.crop_scale
    simclr_gray_crop_scale: tuple[float, float] = SimCLRParams.gray_crop_scale
    simclr_color_strength: float = SimCLRParams.color_strength
    simclr_hue: bool = SimCLRParams.hue
    simclr_blur: bool = SimCLRParams.blur
    simclr_noise_std: float = SimCLRParams.noise_std
    simclr_max_images: int | None = SimCLRParams.max_images  # a random subset of the images (CPU budgets)

    def __post_init__(self) -> None:
        super().__post_init__()
        try:
            self.simclr_params()
        except ValueError as exc:  # SimCLRParams names its key first: report it as this section's key
            raise ValueError(f"{SIMCLR_PREFIX}{exc}") from None
        if self.retrain_from_encoder and self.features not in ("auto", "simclr"):
            raise ValueError("retrain_from_encoder needs the SimCLR encoder of stage 1: features=simclr.")
        if self.then == "dmlp":
            raise ValueError("then cannot be 'dmlp'; name the method to train on the purified labels.")
        check_choice("targets", self.targets, ("hard", "soft"))
        if self.targets == "soft" and self.then != "ce":
            raise ValueError("targets=soft is only supported with then=ce (soft cross-entropy).")

    def simclr_params(self) -> SimCLRParams:
        """Stage 1's SimCLR recipe: the ``simclr_*`` keys without their prefix."""
        return SimCLRParams(
            **{f.name: getattr(self, SIMCLR_PREFIX + f.name) for f in dataclasses.fields(SimCLRParams)}
        )


SIMCLR_PREFIX = "simclr_"  # DMLPParams' key for each SimCLRParams key


ENCODER_FILE = "dmlp_encoder.pt"  # the stage-1 SimCLR encoder, in the run directory


class DMLP(Method, name="dmlp", params=DMLPParams):
    """Decoupled meta label purification, then ``then`` on the purified labels."""

    requires_meta = True

    def setup(self) -> None:
        p, ctx = self.params, self.ctx
        inner_cls = get_method_class(p.then)
        self.simclr_encoder: dict[str, Any] | None = None  # an encoder record, if stage 1 trains SimCLR
        train_f, meta_f = self._features()
        purify_params = PurifyParams(**{f.name: getattr(p, f.name) for f in dataclasses.fields(PurifyParams)})
        result = DMLPPurifier(purify_params, seed=ctx.seed).fit(
            train_f,
            ctx.train_labels,
            meta_f,
            ctx.meta_set()[1],
            num_classes=ctx.num_classes,
            true_labels=ctx.true_labels,
            noise_rate=ctx.assumed_noise_rate() or None,  # 0: none known (real noise), the purifier's own
            progress=not ctx.quiet,
        )
        self.soft_labels = torch.from_numpy(result.soft_labels).to(ctx.device)
        self.purified = torch.from_numpy(result.hard_labels).to(ctx.device)  # relabel / keep_given
        self.purify_cleanness = torch.from_numpy(result.cleanness)
        self.purified_noise_rate = result.estimated_error  # None: no estimate, the given labels' rate
        self._report(result)
        self.inner = inner_cls(self._stage3_context(), ctx.method_params(p.then))
        self.inner.setup()

    def _stage3_context(self) -> TrainingContext:
        """The inner method's context: the purified labels and their estimated noise rate; with
        ``retrain_from_encoder``, the encoder."""
        view = self.ctx.with_train_labels(self.purified, noise_rate=self.purified_noise_rate)
        return view.with_model_init(self.simclr_encoder) if self.params.retrain_from_encoder else view

    # ------------------------------------------------------------------ stage 1: features
    def _features(self) -> tuple[torch.Tensor, torch.Tensor]:
        ctx, source = self.ctx, self.params.features
        if source == "auto":
            source = "simclr" if ctx.is_image else "data"
        if self.params.retrain_from_encoder and source != "simclr":
            raise ValueError(
                "dmlp.retrain_from_encoder retrains from stage 1's SimCLR encoder: it needs images and "
                "dmlp.features=simclr."
            )
        if source == "data":
            if ctx.is_image:
                raise ValueError(
                    "dmlp.features=data needs a feature data set; for images use simclr or a file."
                )
            return ctx.train_x, ctx.meta_set()[0]
        if source == "raw":
            flat = [
                a.reshape(len(a), -1).float() / (255.0 if ctx.is_image else 1.0)
                for a in (ctx.train_x, ctx.meta_set()[0])
            ]
            return flat[0], flat[1]
        if source == "simclr":
            return self._simclr_features()
        return self._file_features(Path(source).expanduser())

    def _simclr_features(self) -> tuple[torch.Tensor, torch.Tensor]:
        ctx, p = self.ctx, self.params
        if not ctx.is_image:
            raise ValueError("dmlp.features=simclr needs images; this data set holds feature vectors.")
        meta_x = ctx.meta_set()[0]
        images = torch.cat([ctx.train_x, meta_x])  # no labels are read
        name = p.simclr_model or ctx.model_name()
        if p.retrain_from_encoder and name != ctx.model_name():
            raise ValueError(
                f"dmlp.retrain_from_encoder starts the run's model ({ctx.model_name()}) from the SimCLR "
                f"encoder, here a {name}: leave dmlp.simclr_model unset or set it to {ctx.model_name()}."
            )
        net = create_model(name, num_classes=ctx.num_classes, input_shape=ctx.input_shape)
        encoder = net.backbone.to(ctx.device)
        history = train_simclr(
            encoder,
            images,
            p.simclr_params(),
            feature_dim=net.feature_dim,
            seed=ctx.seed,
            progress=not ctx.quiet,
        )
        if not ctx.quiet:
            first, last = history[0]["loss"], history[-1]["loss"]
            print(f"dmlp: SimCLR {len(history)} epochs, NT-Xent {first:.3f} -> {last:.3f}")
        self.simclr_encoder = encoder_record(name, encoder)
        if ctx.out_dir is not None:
            save_encoder(ctx.out_dir / ENCODER_FILE, name, encoder)
        mean, std = image_stats(ctx.train_x)
        feats = [
            torch.from_numpy(extract_features(encoder, a, mean=mean, std=std, device=ctx.device))
            for a in (ctx.train_x, meta_x)
        ]
        return feats[0], feats[1]

    def _file_features(self, path: Path) -> tuple[torch.Tensor, torch.Tensor]:
        train_index, meta_index = self.ctx.sample_positions
        if not path.is_file():
            raise FileNotFoundError(
                f"dmlp.features: no file {path} (expected .npy/.npz, or auto|data|simclr|raw)."
            )
        arrays = np.load(path, allow_pickle=False)
        feats = arrays["x"] if path.suffix == ".npz" else arrays
        rows = self.ctx.source_size
        if feats.ndim != 2 or len(feats) != rows:
            raise ValueError(
                f"dmlp.features={path} has shape {feats.shape}; it needs one row per image of the data "
                f"set's whole training set, in its order ({rows} rows; with train_subset too)."
            )
        feats = torch.from_numpy(np.ascontiguousarray(feats, dtype=np.float32))
        return feats[torch.from_numpy(train_index)], feats[torch.from_numpy(meta_index)]

    def _report(self, result) -> None:
        ctx = self.ctx
        given = ctx.train_labels.cpu().numpy()
        record: dict[str, Any] = {
            "setup_seconds": result.setup_seconds,
            "seconds": result.seconds,
            "changed": float((result.hard_labels != given).mean()),
            "history": result.history,
        }
        if result.calibration:  # an infinite threshold (nothing relabelled) is written as null
            record["calibration"] = result.calibration_record()
        record["estimated_noise_rate"] = result.estimated_error  # what the inner method assumes
        if ctx.true_labels is not None:
            clean = ctx.true_labels.cpu().numpy()
            record["label_acc_before"] = float((given == clean).mean())
            record["label_acc"] = float((result.hard_labels == clean).mean())
        out = ctx.out_dir
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            (out / "dmlp_purify.json").write_text(json.dumps(record, indent=1))
            np.save(out / "soft_labels.npy", result.soft_labels)
        if not ctx.quiet:
            acc = (
                f"; label accuracy {record['label_acc_before']:.4f} -> {record['label_acc']:.4f}"
                if "label_acc" in record
                else ""
            )
            cal = result.calibration
            rule = f" (relabel where log-odds > {cal['threshold']:.2f})" if cal else ""
            rate = result.estimated_error
            estimate = f"; estimated noise rate {rate:.3f}" if rate is not None else ""
            print(
                f"dmlp: purified {len(result.hard_labels)} labels in {result.seconds:.1f} s{rule}{acc}"
                f"{estimate}",
                flush=True,
            )

    # ------------------------------------------------------------------ stage 3: delegate to `then`
    def train_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        if self.params.targets == "soft":
            return self._soft_ce_step(batch)
        return self.inner.train_step(batch.relabelled(self.purified))

    def _soft_ce_step(self, batch) -> dict[str, torch.Tensor]:
        inner = self.inner
        with self.ctx.autocast():
            logits = inner.model(batch.x)
            loss = mean_soft_cross_entropy(logits, self.soft_labels[batch.index])
        self.ctx.step(loss, inner.optimizer)
        acc = (logits.argmax(1) == self.purified[batch.index]).float().mean()
        return {"loss": loss.detach(), "acc": acc.detach()}

    def on_epoch_start(self, epoch: int) -> None:
        self.inner.on_epoch_start(epoch)

    def on_epoch_end(self, epoch: int) -> dict[str, Any] | None:
        return self.inner.on_epoch_end(epoch)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner.predict(x)

    def eval_modules(self):
        return self.inner.eval_modules()

    def cleanness(self) -> np.ndarray:
        return self.purify_cleanness.numpy()

    def corrected_labels(self) -> np.ndarray:
        return self.purified.cpu().numpy()

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "inner": self.inner.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        state = dict(state)
        self.inner.load_state_dict(state.pop("inner"))
        super().load_state_dict(state)
