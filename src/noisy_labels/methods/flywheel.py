"""LNL-flywheel: two interconnected EM cycles (Kim et al., "Learning with Noisy Labels: Interconnection of
Two Expectation-Maximizations", ICCV 2023, sec. 3-4).

A main network ``g`` tells clean labels from corrupted ones, an auxiliary network ``f`` refurbishes them:

* main E-step (eq. 4): cleanness ``q_i = q(s_i = 1)`` from ``gamma``, ``g(x_i)[y~_i]`` and ``eps_i``;
* main M-step: ``gamma = mean q`` (eq. 6); ``g`` trained on the resampled labels ``y^_i = argmax f(x_i)``
  with the confidence regulariser, ``CE + lambda * eta`` (eq. 8-9; the paper's lambda = 3, reached by
  default through a ramp: see CR below);
* auxiliary E-step (eq. 11): targets ``q_i(y) = q_i e_{y~_i} + (1 - q_i) f(x_i)``, ``f`` averaged over two
  weak augmentations;
* auxiliary M-step: ``f`` trained with soft CE on ``q_i(y)`` under MixUp (eq. 13) plus ``alpha * L_con`` on
  strong views (alpha = 0.025); ``T`` and ``T_c`` in closed form; ``eps_i = (f(x_i) T_c)[y~_i]`` (eq. 14).

Inference uses ``f`` only. :meth:`Flywheel.cleanness` is ``q``, :meth:`Flywheel.corrected_labels` is ``y^``.

Choices the paper leaves open (all documented, most switchable in ``FlywheelParams``):

* **Scheduling.** One cycle per epoch. The whole-set steps (both E-steps, ``gamma``, ``T``, ``T_c``,
  ``eps``, ``y^``) run at the end of every epoch (:meth:`Flywheel.on_epoch_end`); during the next epoch both
  networks take their gradient M-steps on the same batches. So ``g`` learns from the ``y^`` of the ``f`` at
  the start of the epoch, not of the ``f`` that finishes it (a lag of one ``f`` update; training them one
  after the other would double the epochs).
* **Views.** ``g`` is evaluated without augmentation for eq. 4; ``f`` on two weak views, averaged (sec. 4.1),
  one pass for feature inputs, where the weak view is the identity. ``y^`` is the argmax of that average.
* **Warm-up**: plain CE of both networks on the given labels (no CR, MixUp or contrastive loss). At the
  end of every warm-up epoch ``gamma`` is reset to ``f``'s training accuracy (agreement of its
  prediction with the given labels, sec. 4.1) and ``eps`` to ``1/K``, so ``q`` and ``y^`` are reported
  from the first epoch; the last warm-up epoch's boundary is the paper's initialisation. ``eps_i`` from
  eq. 14 is used from the second cycle on, once a ``T_c`` exists.
  **Length**: ``warmup_epochs`` fixes it (the paper: 10 of 300 CIFAR epochs, set in the paper configs).
  The default (``null``) is adaptive (:func:`noisy_labels.defaults.warmup_over`): at least the paper's
  fraction of the run, then until ``f``'s agreement with the given labels rises by less than
  ``warmup_min_gain`` in an epoch, at most half the run. Why not the fraction alone (measured, seed 0,
  20 epochs, ``lambda = 1``): MNIST's small CNN under SGD is at 46% after one epoch and ended at 72.6%
  with the 1 warm-up epoch the fraction gives (seeds 1 / 2: 42.0 / 39.1%), 82.2% with 3, 93.3% with 8
  (CE: 93.9%); its agreement rises 28 -> 34 -> 41 -> 46% ... 48% over those epochs. The linear head on
  the CIFAR-10 features has learnt what it can in one epoch (+0.3 points in the second) and the rule
  gives it 2: sym. 50% 75.7 -> 75.8%, sym. 80% 60.5 -> 57.2%, uniform 80% 72.5 -> 71.1%, ``worst``
  76.1 -> 76.1% (1 -> 2 epochs; 6 epochs: sym. 80% 56.2%, uniform 80% 72.4%).
* **CR** (eq. 9): expectation under the empirical marginal of ``y^`` (``cr_prior="empirical"``; Lemma 1
  assumes uniform labels, ``"uniform"``); ``log(softmax + 1e-8)`` as in the CORES^2 code, since the
  regulariser is unbounded below otherwise.
  **Default: the paper's ``lambda = 3``, ramped up linearly over the first ``cr_ramp_epochs = 10`` epochs
  after the warm-up** (as CORES^2 ramps its weight; ``cr_ramp_epochs = 0``: the full ``lambda`` from the
  first cycle, the paper, set in the paper configs). A prediction confident in a wrong class ``j`` (the
  others near the floor, ``-log`` of it ``L`` ~ 18) scores about ``L (1 - lambda (1 - pi_j))`` against
  ``(1 - lambda) ln K`` for the uniform guess: for ``lambda <= 1`` it is never better, for ``lambda = 3``
  it is about ``-30`` against ``-4.6`` (``K = 10``), a deep basin that rewards confidence in *any* class,
  into which a ``g`` fresh from the warm-up falls at once.
  Measured (issue 21; defaults otherwise, seed 0, 3k MNIST images, the small CNN, per epoch in
  ``metrics.jsonl``: ``train_g_acc``, ``g``'s agreement with the labels it trains on, ``train_g_top_class``,
  the share of its most predicted class): at sym. 50% the warm-up ends after epoch 5; with the full
  ``lambda = 3`` ``g`` predicts one class from the first cycle (epoch 6: top class 1.00, ``g_acc`` 0.09,
  loss -23), ``gamma`` falls 0.50 -> 0.09 and ``f``'s test accuracy 0.90 -> 0.55 (epoch 10), ending at
  0.81; ramped over 10 epochs, ``g`` never collapses (top class 0.11-0.19, ``g_acc`` 0.80 -> 0.94) and the
  run ends at 0.927 (best 0.935), as with a constant ``lambda = 1`` (0.925 / 0.938, the default before
  issue 21). At sym. 80% ``g`` and ``f`` collapse to one class with any weight, ``lambda = 0`` included
  (test 0.10 from epoch 9; the warm-up ends at epoch 4 with ``f`` at 0.35 and ``gamma`` 0.15, and the
  cycle then feeds ``f`` its own predictions): not the regulariser's doing. Issue 18 measured, with a
  one-epoch warm-up, ``lambda = 3`` collapsing and a 6-epoch ramp only delaying it. On the CIFAR-10
  features (linear ``g``) constant weights 3 and 1 agree (sym. 50% 75.8 / 75.7%, sym. 80% 60.2 / 60.5%,
  uniform 80% 72.2 / 72.5%, issue 18), and the ramped default ends where the former constant 1 did: sym.
  50% 75.8% (75.8%), sym. 80% 57.7% (57.2%).
* **MixUp**: one ``lam ~ Beta(mixup_alpha, mixup_alpha)`` per batch, ``lam = max(lam, 1 - lam)`` (DivideMix),
  partners by a random permutation of the batch, mixing the weak views and the targets. ``mixup_alpha``
  is not given: default 4 (DivideMix, CIFAR). Mixing unsharpened self-targets smooths ``f`` further every
  cycle; on small CPU problems a small alpha works better (see ``configs/mnist_flywheel_sym80.yaml``).
  The Beta draw uses the global torch RNG (seeded and checkpointed by the engine).
* **Contrastive loss** (the paper cites SimCLR [8] and SupCon [19]): SimCLR's NT-Xent over two strong views
  of every batch sample, temperature 0.5 (UNICON's), through a 2-layer projection head to ``proj_dim`` on
  ``f``'s backbone features (``contrastive="simclr"``); ``"supcon"`` uses ``argmax q_i(y)`` as labels. With
  a linear ``f`` on precomputed features there is no backbone to shape, so the term is skipped.
  **Strong view** (``contrastive_view``, a view of :mod:`noisy_labels.engine.augment`): the paper's is
  RandAugment's 14 transformations [11] (sec. 4.1), ``randaugment``, set in the paper configs. The
  default is ``cutout_jitter``, a cheap strong view without the optional kornia: on the CPU its
  throughput is 2-3x ``randaugment``'s (``benchmarks/results/augment_throughput.md``), and two strong
  views of every batch are prepared at each step.
* No sharpening of ``f`` in eq. 11; a row of ``T``/``T_c`` without mass is uniform. ``T_c`` keeps a diagonal:
  in the mixture of eq. 1 a label drawn from the outlier distribution may equal the true class, and
  clean samples with ``q < 1`` contribute their corrupted part too.

Short budgets (measured, issue 22): the cycle needs a good ``f`` from the warm-up. CIFAR-10 images,
airbench from scratch, sym. 50%, 20k images, 7 epochs, seed 0: ``f`` is at 47% after its 3 warm-up
epochs, ``gamma`` starts at 0.33 (truth 0.50) and falls to 0.21 as ``g`` learns ``f``'s labels, most clean
samples get ``f``'s own prediction as target, and the run ends at 45.5% (CE 62.0%), with the CR ramped
over 2 epochs or 10 alike (``benchmarks/results/IMAGES.md``).

Initialisation: ``g`` starts from ``model.init``, ``f`` from ``auxiliary_init``, which defaults to
``model.init`` (``scratch``: freshly initialised; a path: other weights); the paper trains both from
scratch.

Table 6 ablations: ``cr_lambda=0`` (w/o CR); ``auxiliary=false`` (w/o Aux.: ``g`` alone with eq. 7's
``q``-reweighted CE on the given labels plus CR, ``eps = 1/K``, ``gamma`` initialised from ``g``'s training
accuracy, inference with ``g``, no corrected labels); ``fixed_epsilon=true`` (``eps = 1/K`` throughout; ``T``
and ``T_c`` are still estimated); ``contrastive=none`` (w/o CL).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._validation import check_choice
from ..config import VIEWS
from ..losses import mean_soft_cross_entropy
from ..models import eval_mode
from ..ssl.simclr import nt_xent_loss
from ._selection import mixup
from ._warmup import AdaptiveWarmup
from .base import Method
from .flywheel_em import (
    clean_posterior,
    corruption_transition,
    estimate_transition,
    main_loss,
    per_sample_epsilon,
    refurbished_targets,
    update_gamma,
)

CONTRASTIVE = ("simclr", "supcon", "none")
CR_PRIORS = ("empirical", "uniform")


@dataclass
class FlywheelParams:
    # CE warm-up of both networks; None: adaptive (noisy_labels.defaults.warmup_over): at least the paper's
    # 10 of 300 CIFAR epochs as a fraction of the run, then until f's agreement with the given labels
    # rises by less than warmup_min_gain in an epoch, at most half the run
    warmup_epochs: int | None = None
    warmup_min_gain: float = 0.01
    cr_lambda: float = 3.0  # eq. 8's lambda (sec. 4.1: 3); 0 = the "w/o CR" ablation
    # lambda grows linearly over this many epochs after the warm-up (the full weight at once collapses a
    # fresh g; CORES^2 ramps too); 0 = constant from the first cycle (the paper, set in the paper configs)
    cr_ramp_epochs: int = 10
    cr_prior: str = "empirical"  # p_data(y^) in eq. 9: "empirical" marginal of y^ | "uniform"
    alpha: float = 0.025  # weight of the contrastive loss in f's loss
    contrastive: str = "simclr"  # "simclr" | "supcon" | "none" (the "w/o CL" ablation)
    # the two views of the contrastive loss (sec. 4.1: RandAugment, randaugment; set in the paper configs)
    contrastive_view: str = "cutout_jitter"
    temperature: float = 0.5  # of the contrastive loss
    proj_dim: int = 128  # output width of the projection head
    mixup_alpha: float = 4.0  # Beta(a, a) of MixUp in f's loss; 0 = no MixUp
    auxiliary: bool = True  # false = the "w/o Aux." ablation (g alone, eq. 7)
    fixed_epsilon: bool = False  # true = the "eps fixed" ablation (1/K throughout)
    auxiliary_init: str | None = None  # f's backbone weights: None = model.init; "scratch"; or a path

    def __post_init__(self) -> None:
        if self.cr_ramp_epochs < 0:
            raise ValueError(f"cr_ramp_epochs must be >= 0, got {self.cr_ramp_epochs}.")
        if self.warmup_epochs is not None and self.warmup_epochs < 1:
            raise ValueError(f"warmup_epochs must be >= 1 (gamma starts from it), got {self.warmup_epochs}.")
        for key in ("cr_lambda", "alpha", "mixup_alpha", "warmup_min_gain"):
            if getattr(self, key) < 0:
                raise ValueError(f"{key} must be >= 0, got {getattr(self, key)}.")
        if self.temperature <= 0 or self.proj_dim < 1:
            raise ValueError("temperature must be > 0 and proj_dim >= 1.")
        for key, allowed in (
            ("contrastive", CONTRASTIVE),
            ("cr_prior", CR_PRIORS),
            ("contrastive_view", VIEWS),
        ):
            check_choice(key, getattr(self, key), allowed)


class Flywheel(AdaptiveWarmup, Method, name="flywheel", params=FlywheelParams):
    """LNL-flywheel: main EM on ``g`` (clean/corrupted), auxiliary EM on ``f`` (refurbishing, inference).

    Attributes (tensors on the device, checkpointed)
    ------------------------------------------------
    q : (N,) cleanness probabilities (eq. 4).  gamma : () mixture weight (eq. 6).
    eps : (N,) outlier likelihoods (eq. 14).  targets : (N, K) refurbished targets (eq. 11).
    yhat : (N,) resampled labels for ``g``.  transition, transition_c : (K, K) ``T`` and ``T_c``.
    prior : (K,) label marginal of the CR.  cycles : () number of EM boundaries done.
    """

    paper_warmup = (10, 300)  # sec. 4.2: 10 of 300 CIFAR epochs

    # ------------------------------------------------------------------ building
    def setup(self) -> None:
        p, e = self.params, self.ctx
        k, dev = e.num_classes, e.device
        self.g = e.new_model()
        self.g_opt = e.new_optimizer(self.g.parameters())
        if p.auxiliary:
            self.f = e.new_model(init=p.auxiliary_init)
            params = list(self.f.parameters())
            if self.uses_contrastive():
                e.check_view(p.contrastive_view)
                d = e.classifier(self.f).feature_dim
                self.proj = e.place(nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, p.proj_dim)))
                params += list(self.proj.parameters())
            self.f_opt = e.new_optimizer(params)
            self.targets = e.sample_state(columns=k)
            self.transition = torch.eye(k, device=dev)
            self.transition_c = torch.full((k, k), 1.0 / k, device=dev)
        self.q = e.sample_state(1.0)
        self.gamma = torch.ones((), device=dev)
        self.eps = e.sample_state(1.0 / k)
        self.yhat = e.train_labels.clone()
        self.prior = torch.full((k,), 1.0 / k, device=dev)
        self.cycles = torch.zeros((), dtype=torch.long, device=dev)
        self.g_stats: dict[str, float] = {}  # the latest boundary's view of g, for the log
        self.setup_warmup()

    def uses_contrastive(self) -> bool:
        """Whether ``L_con`` can shape ``f``: on, and ``f`` has a backbone with weights to train.

        A linear ``f`` on features has none (its "features" are the inputs): the loss would then train
        only the projection head, changing nothing in ``f``, so it is skipped to save its cost.
        """
        p = self.params
        backbone = getattr(self.ctx.unwrap(self.f), "backbone", None)
        trainable = backbone is None or any(w.requires_grad for w in backbone.parameters())
        return p.contrastive != "none" and p.alpha > 0 and trainable

    # ------------------------------------------------------------------ gradient M-steps (per batch)
    def train_step(self, batch) -> dict[str, torch.Tensor]:
        if self.in_warmup():
            stats = {"loss_g": self._ce_step(self.g, self.g_opt, batch)}
            if self.params.auxiliary:
                stats["loss_f"] = self._ce_step(self.f, self.f_opt, batch)
            return stats
        stats = self._f_step(batch) if self.params.auxiliary else {}
        return stats | self._g_step(batch) | {"gamma": self.gamma.detach()}

    def _ce_step(self, net: nn.Module, opt: torch.optim.Optimizer, batch) -> torch.Tensor:
        with self.ctx.autocast():
            loss = F.cross_entropy(net(batch.x).float(), batch.y)
        self.ctx.step(loss, opt)
        return loss.detach()

    def _f_step(self, batch) -> dict[str, torch.Tensor]:
        """Auxiliary M-step for ``f``: soft CE on ``q_i(y)`` under MixUp (eq. 13) + ``alpha * L_con``."""
        p, e = self.params, self.ctx
        # mixup partners and contrastive views from the whole global batch (under torchrun: across the
        # ranks' slices, the views drawn as in one process), then this rank's rows
        whole = batch.global_batch
        x, targets, _, _ = mixup(
            whole.x, self.targets[whole.index], p.mixup_alpha, generator=e.generator, larger_half=True
        )
        x, targets = e.local_rows(x), e.local_rows(targets)
        with e.autocast():
            loss_ce = mean_soft_cross_entropy(self.f(x), targets)
            # this rank's part of the batch objective (ctx.step's "sum"), to which L_con adds its rows' part
            loss, stats = e.part_of_batch_objective(loss_ce), {"loss_f": loss_ce.detach()}
            if hasattr(self, "proj"):  # built in setup exactly when uses_contrastive()
                view = p.contrastive_view
                views = torch.cat([e.local_rows(e.prepare(whole.raw, view)) for _ in range(2)])
                _, feats = self.f(views, return_features=True)
                b = len(batch.index)
                z1, z2 = (e.gather_batch_replicated(z) for z in self.proj(feats).split(b))
                labels = self.targets[whole.index].argmax(1) if p.contrastive == "supcon" else None
                loss_con = nt_xent_loss(z1, z2, p.temperature, labels)  # negatives: the whole batch
                loss = loss + p.alpha * loss_con
                stats["loss_con"] = loss_con.detach()
        e.step(loss, self.f_opt, reduction="sum")
        return stats

    def _g_step(self, batch) -> dict[str, torch.Tensor]:
        """Main M-step for ``g``: eq. 8 on the resampled labels (eq. 7 reweighting without ``f``)."""
        p = self.params
        with self.ctx.autocast():
            logits = self.g(batch.x)
        lam = self.cr_lambda()
        if p.auxiliary:
            loss = main_loss(logits, self.yhat[batch.index], self.prior, lam)
        else:
            loss = main_loss(logits, batch.y, self.prior, lam, weights=self.q[batch.index])
        self.ctx.step(loss, self.g_opt)
        return {"loss_g": loss.detach()}

    def cr_lambda(self) -> float:
        """eq. 8's lambda at the current step: ramped over ``cr_ramp_epochs`` after the warm-up if set."""
        p = self.params
        if p.cr_ramp_epochs <= 0:
            return p.cr_lambda
        into = self.ctx.progress() - self.warmup_epochs_done()
        return p.cr_lambda * min(1.0, max(0.0, into) / p.cr_ramp_epochs)

    # ------------------------------------------------------------------ E-steps and closed forms (per epoch)
    def on_epoch_end(self, epoch: int) -> dict[str, float]:
        """The EM boundary; logs ``g``'s training accuracy and top-class share (``train_g_acc``,
        ``train_g_top_class``: a collapsed ``g`` predicts one class, see CR in the module docstring)."""
        if self.in_warmup():
            agreement = self.em_boundary(warmup=True)
            assert agreement is not None  # a warm-up boundary measures it
            self.end_warmup_epoch(epoch, agreement)
        else:
            self.em_boundary(warmup=False)
        return self.g_stats

    @torch.no_grad()
    def em_boundary(self, *, warmup: bool) -> float | None:
        """All whole-set steps between two cycles: eq. 14, eq. 4, eq. 6, eq. 11, ``T``, ``T_c``, ``y^``.

        Returns the warm-up network's agreement with the given labels at a warm-up boundary (else None).
        """
        p, e = self.params, self.ctx
        noisy, k = e.train_labels, e.num_classes
        nets = [self.g, self.f] if p.auxiliary else [self.g]
        with eval_mode(*nets):
            g_prob = F.softmax(e.predict(self.g, e.train_x, "test"), dim=1)
            f_prob = self.aux_prediction() if p.auxiliary else None
        g_targets = self.yhat if p.auxiliary and not warmup else noisy  # what g trained on this epoch
        self.g_stats = main_network_stats(g_prob, g_targets)
        agreement = None
        if warmup:  # initialisation (sec. 4.1): gamma = training accuracy, eps = 1/K
            ref = f_prob if f_prob is not None else g_prob
            agreement = (ref.argmax(1) == noisy).float().mean()
            self.gamma.copy_(agreement)
            self.eps.fill_(1.0 / k)
        elif f_prob is not None and not p.fixed_epsilon:
            self.eps.copy_(per_sample_epsilon(f_prob, self.transition_c, noisy))
        self.q.copy_(clean_posterior(self.gamma, g_prob.gather(1, noisy[:, None]).squeeze(1), self.eps))
        self.gamma.copy_(update_gamma(self.q))
        if f_prob is not None:  # the auxiliary network is on
            self.yhat.copy_(f_prob.argmax(1))
            self.targets.copy_(refurbished_targets(self.q, noisy, f_prob))
            self.transition.copy_(estimate_transition(self.targets, noisy))
            self.transition_c.copy_(corruption_transition(self.q, f_prob, noisy))
        if p.cr_prior == "empirical":
            self.prior.copy_(torch.bincount(self.yhat, minlength=k).float() / len(self.yhat))
        self.cycles += 1
        return None if agreement is None else float(agreement)

    def aux_prediction(self) -> torch.Tensor:
        """``f``'s softmax over the training set ``(N, K)``, averaged over two weak views (sec. 4.1 (i))."""
        e = self.ctx
        views = 2 if e.is_image else 1  # the weak view of features is the identity
        probs = [F.softmax(e.predict(self.f, e.train_x, "weak"), dim=1) for _ in range(views)]
        total = probs[0]
        for more in probs[1:]:
            total = total + more
        return total / views

    # ------------------------------------------------------------------ outputs
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Inference with the auxiliary network only (sec. 4.1); ``g`` in the w/o-Aux. ablation."""
        return self.f(x) if self.params.auxiliary else self.g(x)

    def cleanness(self) -> np.ndarray | None:
        """``q(s_i = 1)`` of the latest main E-step (eq. 4), ``(N,)``."""
        return self.q.cpu().numpy() if int(self.cycles) > 0 else None

    def corrected_labels(self) -> np.ndarray | None:
        """``f``'s refurbished labels ``y^_i = argmax f(x_i)``, ``(N,)``."""
        if not self.params.auxiliary or int(self.cycles) == 0:
            return None
        return self.yhat.cpu().numpy()

    def estimated_transition(self, *, corrupted_only: bool = True) -> np.ndarray | None:
        """The latest ``T_c`` (``corrupted_only``) or ``T``, ``(K, K)``; None without the auxiliary net."""
        if not self.params.auxiliary or int(self.cycles) == 0:
            return None
        return (self.transition_c if corrupted_only else self.transition).cpu().numpy()


def main_network_stats(g_prob: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    """``g``'s agreement with the labels it trained on, and the share of its most predicted class."""
    pred = g_prob.argmax(1)
    top = torch.bincount(pred, minlength=g_prob.shape[1]).max().item() / len(pred)
    return {"g_acc": (pred == targets).float().mean().item(), "g_top_class": top}


def plot_transition(
    estimated,
    true=None,
    path: str | Path = "transition.png",
    *,
    title: str = "",
    class_names: list[str] | None = None,
    vmax: float | None = None,
) -> Path:
    """Heat-map(s) of an estimated transition matrix, beside the true one if given (the paper's Fig. 3).

    Rows are the clean (source) class ``i``, columns the noisy class ``j`` (the paper's Fig. 3 shows the
    transpose); one colour scale from 0 to ``vmax``.

    Parameters
    ----------
    estimated : array of shape (K, K)
    true : array of shape (K, K), optional
    path : str or Path
        Where the PNG is written.
    title : str
    class_names : list of str, optional
    vmax : float, optional
        Top of the colour scale; default the largest entry shown.

    Returns
    -------
    Path
        ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("estimated", np.asarray(estimated, dtype=float))]
    if true is not None:
        panels.insert(0, ("true", np.asarray(true, dtype=float)))
    k = panels[0][1].shape[0]
    names = class_names or [str(i) for i in range(k)]
    top = vmax if vmax is not None else max(float(np.nanmax(m)) for _, m in panels)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels) + 0.8, 4.0), squeeze=False)
    for ax, (label, mat) in zip(axes[0], panels, strict=True):
        im = ax.imshow(mat, vmin=0.0, vmax=top, cmap="viridis")
        ax.set(title=label, xlabel="noisy class j", ylabel="clean class i", xticks=range(k), yticks=range(k))
        ax.set_xticklabels(names, rotation=90 if k > 10 else 0, fontsize=7)
        ax.set_yticklabels(names, fontsize=7)
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8)
    if title:
        fig.suptitle(title)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
