"""MLC and EMLC: a teacher corrects the noisy labels and learns from the student's clean loss.

Both train the student on the teacher's soft labels, ``mean_i CE(q_alpha(x_i, y~_i), p_w(x_i))`` (EMLC
eq. 6), and train the teacher so that the student's steps lower its loss on the trusted (meta) set
(eq. 3-5); :mod:`noisy_labels.meta.teacher` holds the shared meta-gradient machinery.

* ``mlc``: Meta Label Correction (Zheng, Awadallah & Dumais, AAAI 2021), EMLC's baseline. The teacher
  (label-correction network) reads the *student's* penultimate features ``h(x)`` (detached) and an
  embedding of the noisy label: ``q = softmax(MLP([h, e(y~)]))``. Per step: a virtual SGD step of the
  student built with ``create_graph``, the clean loss at the virtual weights, a double backward into the
  teacher and one teacher step (the classic second-order meta-gradient), then the real student step on
  the soft labels of the teacher *before* its update (as MLC's code).
* ``emlc``: Enhanced MLC (Taraday & Baskin, ICCV 2023). The teacher (Fig. 3) has its own feature
  extractor and classifier (a second network of the config's model, independent of the student), a
  label embedding ``z`` of the noisy label and an MLP on ``[h, z]`` giving a gate ``w in (0, 1)``;
  ``q = w * onehot(y~) + (1 - w) * softmax(teacher logits)``. Algorithm 1: the student takes its real
  step first; every ``steps`` (k) student steps the teacher takes one step on eq. 12,
  ``L_CE + L_BCE + L_META``: cross-entropy of its classifier on an augmented clean batch (sec. 3.6),
  BCE of the gate on that batch with half its labels corrupted (``injection``), and the meta-gradient
  by FPMG (Algorithm 2): exact for k = 1 (Prop. 1), the discounted mixed Hessians of Prop. 2 for k > 1.

Choices where the papers leave room (reference code: MitchellKT/Enhanced-Meta-Label-Correction, and
microsoft/MLC for MLC):

* Step sizes: ``eta`` of Prop. 1-2 is the student's current learning rate (the reference uses the
  scheduled lr); with a schedule each recorded step uses its own ``eta_tau`` and ``gamma`` defaults to
  ``1 - eta`` at the teacher's step. The real optimiser may have momentum and weight decay: neither
  depends on the current teacher, so the one-step derivative ``-eta H`` holds for (non-Nesterov) SGD
  momentum too; it is an approximation under Adam.
* Algorithm 2, line 6 writes ``J_w^(t)`` inside the loop over tau; eq. 11 has ``J_w^(tau)``: each step's
  JVP is taken at the weights before *that* step, as eq. 11.
* The meta-gradient is scaled by ``meta_weight`` and summed with the other terms, each averaged over its
  own batch (eq. 12 with unit weights). ``meta_weight=0``, ``ce_weight=0`` or ``bce_weight=0`` switch a
  term off (ablations).
* Clean data of the teacher: CE and BCE share one forward of a fresh meta batch in ``clean_view``; the
  meta-gradient's clean loss uses another fresh meta batch in the weak view. The paper (sec. 3.6) and
  the reference apply AutoAugment to every clean batch: the paper configs set ``autoaugment``. The
  default is ``cutout_jitter``, a cheap strong view without the optional kornia: on the CPU its
  throughput is 2-3x ``autoaugment``'s (``benchmarks/results/augment_throughput.md``), and on feature
  vectors every strong view is the same dropout + noise (:mod:`noisy_labels.engine.augment`).
* Injection (sec. 3.6): a random share of the batch (``corrupt_fraction``; the paper: half) gets a wrong
  label. The share is the gate's prior of a corrupted label, so the default is the noise rate the run
  assumes (the realised rate, as Co-teaching's forget rate; half where none is known). Measured (CIFAR-10
  features, linear head, defaults, seed 0): on CIFAR-10N ``random1`` (17% noisy) the paper's half made
  the teacher relabel good samples (corrected labels 77.9% right against 82.8% given; test 74.3%, below
  CE's 76.0%); with 0.17, 84.0% and 77.2%. At uniform 80% the two agree (71.4 / 71.3%). ``random``
  draws it uniformly among the *other* classes (the reference draws among all, so some "corrupted"
  labels are right and counted clean); ``adversarial`` takes the teacher classifier's highest-scoring
  wrong class (the reference's default); ``mixed`` picks one of the two per sample; ``none`` turns BCE off
  (an ablation: reference-implementations.md notes CIFAR runs without it, but the code version we read
  always applies ``adversarial``). The paper configs keep eq. 12's BCE on with ``adversarial``, the
  strategy sec. 3.6 proposes: the injection is part of the method. The gate's BCE also trains the feature
  extractor (the reference passes the features with their graph).
* Teacher optimisers, on the student's LR schedule: EMLC's defaults are the reference's, the config's
  optimiser (SGD there) at the student's lr without momentum; MLC's are Adam (its code: Adam with
  amsgrad) at lr 3e-4 (its code's default 3e-5 goes with an Adam student at 3e-4) without weight decay.
  ``teacher_optim``, ``teacher_lr``, ``teacher_momentum``, ``teacher_weight_decay`` override them.
* The student's loss: the teacher's soft labels (EMLC eq. 6), plus ``student_clean_weight`` times CE on
  a clean batch. Both references add that clean term (not in EMLC's paper); MLC's code in its default
  ``hmlc_K_mix`` mode, on half of each clean batch weighted by batch size, i.e. 0.5 next to the soft
  term: MLC's default is 0.5; EMLC's the clean set's share of the training set, ``n_clean / n_train``
  (a clean sample then weighs as much as a noisy one per epoch). The paper configs set 0: the paper's
  student learns from the teacher's soft labels alone (eq. 6) and the clean set selects it (sec. 4.1).
  Measured (defaults, seed 0). MLC: on MNIST 3k with the small CNN, sym. 50%, the soft labels alone
  trained the student to one class (10.9%; its teacher starts from a random network and has no gate),
  with 0.5 it reached 94.8% (CE 93.9%); on the CIFAR-10 features, uniform 80% 70.7 -> 71.4%, ``aggre``
  73.4 -> 73.6%. EMLC on MNIST (1,000 clean, 2,000 noisy): 92.0% without the term (its gate stays near
  0.5 there), 96.3% at the share 0.5, 97.3% at 1; on the features (1,000 clean, 49,000 noisy) the
  reference's 1 cycles the clean set 49 times per epoch and cost 0.9-1.6 points (uniform 80% 71.3 ->
  70.4%, sym. 80% 71.2 -> 70.0%, ``aggre`` 78.0 -> 76.4%), the share (0.02) not (``aggre`` 78.1%).
* The teacher's soft labels for the student come from a train-mode forward; at the teacher's step they
  are recomputed with cloned BatchNorm buffers and replayed dropout masks (the same function), except
  the window's last step, whose graph is kept from the training forward.
* A window never crosses an epoch: the teacher steps at the end of every epoch even if fewer than k
  student steps were recorded, so checkpoints hold no partial window.
* Initialisation (sec. 4.1: student and teacher from the same SimCLR weights): the student's backbone
  starts from ``model.init``, the teacher's from ``teacher_init``, which defaults to ``model.init`` (a path
  gives it others, ``scratch`` none); the heads and the gate are new (see :mod:`noisy_labels.models.init`).
* The teacher's network is the config's model unless ``teacher_model`` names another. On precomputed
  features with a linear student, a linear teacher would have no feature extractor of its own (its gate
  would read the raw features); the shipped features config gives the teacher an MLP (Fig. 3's extractor
  + classifier), which corrected more labels than the linear one at 80% symmetric noise.
* Outputs, from each sample's latest batch: ``cleanness`` is the mass its soft label ``q`` puts on the
  given label (EMLC: ``w + (1 - w) p_teacher(y~)``, the gate and the teacher's classifier together;
  MLC: the teacher's probability of it); ``corrected_labels`` the argmax of ``q``. Neither paper scores
  samples. Measured (CIFAR-10 features, defaults, seed 0), cleanness AUC of EMLC's gate alone against
  ``q(y~)``: ``aggre`` 0.714 / 0.832, ``random1`` 0.830 / 0.869, sym. 80% 0.876 / 0.921: at low noise the
  gate, trained on 1,000 clean samples with a few injected errors, barely separates (mean 0.91 clean
  against 0.86 noisy at ``aggre``) while the teacher's classifier does.
* Student selection (sec. 4.1: "the student model when its validation score is the highest"): after each
  epoch the student's accuracy on the selection set is logged as ``train_clean_acc``; with
  ``select_by_clean`` the engine evaluates (and so reports) the student of the best such accuracy so far.
  The selection set is the whole meta set unless the student also trains on it (``student_clean_weight >
  0``, the references' extra term): a selection on samples the student fitted favours memorisation, so a
  class-balanced ``selection_holdout`` share of the meta set (default 0.2) is then kept out of all
  training (student, teacher, meta-gradient) and selects alone
  (:meth:`~noisy_labels.engine.context.TrainingContext.with_meta_holdout`). No library default selects
  (``select_by_clean`` false), so the holdout changes no default run; the EMLC paper configs train no
  student on the clean set, the MLC paper config (both on) holds out.
* MLC's teacher: label embedding 64 and two tanh hidden layers of 128 (the MLC code's defaults; PyTorch's
  initialisation instead of its Xavier one); MLC's k-step accumulation (its ``gradient_steps``, with a
  data-dependent discount) is not implemented: one step, as EMLC's paper compares.

Student and teacher steps run under bf16 autocast where the run uses mixed precision
(``ctx.meta_autocast``; full precision otherwise). Under ``torchrun`` (each rank a slice of the global
batch) the teacher's meta-gradient is the global batch's: MLC's look-ahead gradient is the ranks' sum,
FPMG weighs each slice's mean by its share, and the teacher's gradients are summed over the ranks before
its step (``tests/test_distributed.py``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.func import functional_call

from .._validation import check_choice
from ..config import VIEWS
from ..losses import soft_cross_entropy
from ..meta import (
    META_GRADS,
    StudentStep,
    buffers_of,
    capture_rng,
    fpmg_backward,
    lookahead_meta_loss,
    meta_loss_and_grad,
    mixed_hessian_backward,
    parameters_of,
    replay_rng,
    snapshot,
)
from ..models import GatedTeacher, LabelCorrector, eval_mode
from .base import Method
from .meta_weighting import META_LOSSES

if TYPE_CHECKING:
    from ..engine.context import TrainingContext

INJECTIONS = ("random", "adversarial", "mixed", "none")


def inject_noise(
    labels: Tensor,
    logits: Tensor,
    *,
    strategy: str = "adversarial",
    fraction: float = 0.5,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Corrupt a random ``fraction`` of a clean batch for the gate's BCE (EMLC sec. 3.6).

    Parameters
    ----------
    labels : Tensor of shape (B,)
        Clean labels.
    logits : Tensor of shape (B, C)
        The teacher classifier's logits (``adversarial`` takes its best wrong class).
    strategy : {'random', 'adversarial', 'mixed'}, default='adversarial'
        ``random``: a uniformly drawn wrong class; ``mixed``: either strategy with probability 1/2.
    fraction : float, default=0.5
    generator : torch.Generator, optional
        CPU generator for the draws.

    Returns
    -------
    labels : Tensor of shape (B,)
        The batch's labels with the chosen ones corrupted (always to a wrong class).
    clean : Tensor of shape (B,), bool
        Which labels were left clean (the BCE targets).

    Examples
    --------
    >>> y = torch.tensor([0, 1, 2, 0])
    >>> logits = torch.tensor([[0.0, 5.0, 1.0], [0.0, 9.0, 1.0], [3.0, 0.0, 9.0], [9.0, 0.0, 2.0]])
    >>> out, clean = inject_noise(y, logits, generator=torch.Generator().manual_seed(0))
    >>> int((~clean).sum()), bool((out[~clean] != y[~clean]).all()), bool((out[clean] == y[clean]).all())
    (2, True, True)
    """
    check_choice("strategy", strategy, INJECTIONS[:3])
    b, num_classes = logits.shape
    device = labels.device
    order = torch.randperm(b, generator=generator).to(device)
    corrupt = torch.zeros(b, dtype=torch.bool, device=device)
    corrupt[order[: int(round(fraction * b))]] = True
    shift = torch.randint(1, num_classes, (b,), generator=generator).to(device)
    coin = torch.rand(b, generator=generator).to(device) < 0.5
    random_wrong = (labels + shift) % num_classes
    masked = logits.detach().scatter(1, labels[:, None], float("-inf"))
    adversarial = masked.argmax(dim=1)
    wrong = {
        "random": random_wrong,
        "adversarial": adversarial,
        "mixed": torch.where(coin, random_wrong, adversarial),
    }[strategy]
    return torch.where(corrupt, wrong, labels), ~corrupt


# ------------------------------------------------------------------------------------------ shared
class TeacherStudent(Method):
    """Shared plumbing of MLC and EMLC: teacher optimiser, per-sample outputs, clean-set selection."""

    requires_meta = True

    def setup(self) -> None:
        p = self.params
        self.selection_set: tuple[Tensor, Tensor] | None = None  # trusted samples kept for selection only
        if self.holds_out_selection():
            self.ctx, self.selection_set = self.ctx.with_meta_holdout(p.selection_holdout)
        super().setup()
        # Latest teacher outputs per training sample (tensors, so checkpoints restore them).
        self.sample_cleanness = self.ctx.sample_state(1.0)
        self.sample_corrected = self.ctx.train_labels.clone().to(self.ctx.device)
        if p.select_by_clean:
            self.selected = copy.deepcopy(self.ctx.unwrap(self.model))
            self.best_clean_acc = torch.tensor(-1.0)

    def holds_out_selection(self) -> bool:
        """Whether a share of the trusted set selects the student and nothing else: when the student also
        trains on that set (a selection on samples it fitted would favour memorisation)."""
        p = self.params
        trains_on_clean = p.student_clean_weight is None or p.student_clean_weight > 0  # None: a share > 0
        return p.select_by_clean and trains_on_clean and p.selection_holdout > 0

    def new_teacher_optimizer(self, params) -> torch.optim.Optimizer:
        """The teacher's optimiser: the config's, with the method's overrides, on the LR schedule."""
        p, cfg = self.params, self.ctx.optim
        name = p.teacher_optim or cfg.name
        momentum = p.teacher_momentum
        overrides = {"name": name, "lr": p.teacher_lr or cfg.lr, "momentum": momentum}
        overrides["nesterov"] = cfg.nesterov and momentum > 0
        if p.teacher_weight_decay is not None:
            overrides["weight_decay"] = p.teacher_weight_decay
        return self.ctx.new_optimizer(params, **overrides)

    def student_lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def meta_loss_fn(self):
        return META_LOSSES[self.params.meta_loss]

    def record(self, index: Tensor, given: Tensor, soft: Tensor) -> None:
        """Keep a batch's cleanness (its soft label's mass on the given label) and corrected labels."""
        soft = soft.detach()
        self.ctx.write_samples(
            self.sample_cleanness, index, soft.gather(1, given[:, None]).squeeze(1).float()
        )
        self.ctx.write_samples(self.sample_corrected, index, soft.argmax(dim=1))

    def train_step(self, batch):
        # bf16 where the run uses mixed precision (ctx.meta_autocast: the teacher's meta-gradient has no
        # loss scaler); a no-op in float32 runs
        with self.ctx.meta_autocast():
            return self.teacher_student_step(batch)

    def teacher_student_step(self, batch) -> dict[str, Tensor]:
        """One student step and (when due) one teacher step: MLC's and EMLC's own."""
        raise NotImplementedError

    def clean_term(self) -> Tensor | float:
        """The reference code's optional CE of the student on a clean batch (no teacher dependence)."""
        weight = self.params.student_clean_weight
        if weight <= 0:
            return 0.0
        x, y = self.ctx.meta_batch(self.params.meta_batch_size)
        return weight * F.cross_entropy(self.model(x), y)

    def on_epoch_end(self, epoch: int) -> dict[str, Tensor]:
        """The student's accuracy on the selection set (the held-out share, else the whole meta set; logged
        as ``train_clean_acc``), and the clean-set selection."""
        ctx = self.ctx
        meta_x, meta_y = self.selection_set or ctx.meta_set()
        with eval_mode(self.model):
            logits = ctx.predict(self.model, meta_x)
        acc = (logits.argmax(1) == meta_y.to(logits.device)).float().mean()
        if self.params.select_by_clean and acc.item() >= self.best_clean_acc.item():
            self.best_clean_acc.fill_(acc.item())
            self.selected.load_state_dict(ctx.unwrap(self.model).state_dict())
        return {"clean_acc": acc}

    def predict(self, x: Tensor) -> Tensor:
        if self.params.select_by_clean and self.best_clean_acc.item() >= 0:
            return self.selected(x)
        return self.model(x)

    def cleanness(self) -> np.ndarray:
        return self.sample_cleanness.cpu().numpy()

    def corrected_labels(self) -> np.ndarray:
        return self.sample_corrected.cpu().numpy()


# ---------------------------------------------------------------------------------------------- MLC
@dataclass
class TeacherParams:
    """What MLC and EMLC share: the teacher's optimiser, the meta loss, the student's options."""

    teacher_optim: str | None = None  # None: the config's optimiser (EMLC reference: SGD for both)
    teacher_lr: float | None = None  # None: the student's lr (EMLC reference: 0.02 both), same schedule
    teacher_momentum: float = 0.0  # SGD momentum of the teacher (EMLC reference: plain SGD)
    teacher_weight_decay: float | None = None  # None: optim.weight_decay (EMLC reference: 5e-4 both)
    meta_loss: str = "ce"  # "ce" (EMLC eq. 5) | "mae" (robust meta loss for a noisy meta set)
    meta_batch_size: int | None = None  # None: the training batch size
    # CE on a clean batch in the student's loss (both references); None: the clean set's share of the
    # training set, so a clean sample weighs as much as a noisy one per epoch (see the module docstring)
    student_clean_weight: float | None = None
    select_by_clean: bool = False  # evaluate the student of the best meta-set accuracy (EMLC sec. 4.1)
    # share of the meta set kept out of all training and used only for select_by_clean, when the student
    # also trains on the meta set (student_clean_weight > 0); 0: select on the samples it trains on
    selection_holdout: float = 0.2

    def __post_init__(self) -> None:
        check_choice("meta_loss", self.meta_loss, META_LOSSES)
        if not 0.0 <= self.selection_holdout < 1.0:
            raise ValueError(f"selection_holdout must be in [0, 1), got {self.selection_holdout}.")
        if self.teacher_optim is not None:
            check_choice("teacher_optim", self.teacher_optim, ("sgd", "adam", "adamw"))


@dataclass
class MLCParams(TeacherParams):
    label_embedding: int = 64  # label-correction network: embedding of the noisy label (MLC code)
    hidden: int = 128  # its two tanh hidden layers
    teacher_optim: str | None = "adam"  # MLC's code: Adam (amsgrad) for the teacher; None: optim.name
    teacher_lr: float | None = 3e-4  # None: the student's lr (optim.lr); on the same schedule
    teacher_weight_decay: float | None = 0.0  # MLC's code: none; None: optim.weight_decay
    student_clean_weight: float = 0.5  # MLC's code (hmlc_K_mix): CE on a clean batch, see the docstring


class MLC(TeacherStudent, name="mlc", params=MLCParams):
    """Meta Label Correction: a label-correction network on the student's features, second order."""

    def setup(self) -> None:
        super().setup()
        p = self.params
        feature_dim = self.ctx.classifier(self.model).feature_dim
        self.teacher = LabelCorrector(
            feature_dim, self.ctx.num_classes, embedding=p.label_embedding, hidden=p.hidden
        ).to(self.ctx.device)
        self.teacher_optimizer = self.new_teacher_optimizer(self.teacher.parameters())

    def teacher_student_step(self, batch):
        logits, h = self.model(batch.x, return_features=True)
        soft = self.teacher(h.detach(), batch.y)
        # Teacher: one SGD step down the clean loss after a virtual student step (double backward).
        clean = self.clean_term()
        meta_x, meta_y = self.ctx.meta_batch(self.params.meta_batch_size)
        # under torchrun: this rank's part of the global batch's objective, the ranks' gradients summed
        virtual = self.ctx.part_of_batch_objective(soft_cross_entropy(soft)(logits).mean(), clean)
        meta_loss = lookahead_meta_loss(
            self.model,
            virtual,
            meta_x,
            meta_y,
            self.meta_loss_fn(),
            lr=self.student_lr(),
            total_of=partial(self.ctx.global_sum, grad="replicated"),
        )
        self.teacher_optimizer.zero_grad(set_to_none=True)
        meta_loss.backward(inputs=list(self.teacher.parameters()), retain_graph=True)
        self.ctx.sum_gradients(self.teacher.parameters())  # each rank's soft labels: its slice's part
        self.teacher_optimizer.step()
        # Student: the real step on the soft labels of the teacher before its update (MLC's code).
        self.record(batch.index, batch.y, soft)
        real = soft_cross_entropy(soft.detach())(logits).mean() + clean
        self.ctx.step(real, self.optimizer)
        return {"loss": real.detach(), "meta_loss": meta_loss.detach()}


# --------------------------------------------------------------------------------------------- EMLC
@dataclass
class EMLCParams(TeacherParams):
    steps: int = 1  # k: look-ahead steps per teacher update, 1 (Prop. 1) or more (Prop. 2; paper: 5)
    gamma: float | None = None  # Prop. 2's discount; None: 1 - the student's current lr
    meta_grad: str = "fast"  # "fast": FPMG (Algorithm 2) | "second_order": double backward (reference)
    ce_weight: float = 1.0  # eq. 12 L_CE: teacher classifier on clean batches (0 = off)
    bce_weight: float = 1.0  # eq. 12 L_BCE: gate on half-corrupted clean batches (0 = off)
    meta_weight: float = 1.0  # eq. 12 L_META: the meta-gradient (0 = off)
    injection: str = "adversarial"  # "random" | "adversarial" | "mixed" | "none" (sec. 3.6)
    # share of each clean batch corrupted for BCE; None: the assumed noise rate (0.5, the paper's
    # "half" of sec. 3.6, where none is known); see the module docstring
    corrupt_fraction: float | None = None
    # augmentation of the teacher's clean batches, a view of noisy_labels.engine.augment (sec. 3.6:
    # autoaugment, set in the paper configs; the default is cheap and needs no kornia)
    clean_view: str = "cutout_jitter"
    label_embedding: int = 128  # size of the label embedding z (reference code)
    gate_hidden: int = 128  # hidden units of the gate MLP (reference code)
    teacher_model: str | None = None  # None: the config's model (with its params)
    # the teacher's backbone weights: None = model.init (sec. 4.1: the student's SimCLR weights);
    # "scratch" = freshly initialised; or a path (noisy_labels.models.init)
    teacher_init: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}.")
        if self.gamma is not None and not 0.0 <= self.gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {self.gamma}.")
        if self.corrupt_fraction is not None and not 0.0 < self.corrupt_fraction < 1.0:
            raise ValueError(f"corrupt_fraction must be in (0, 1), got {self.corrupt_fraction}.")
        check_choice("meta_grad", self.meta_grad, META_GRADS)
        check_choice("injection", self.injection, INJECTIONS)
        check_choice("clean_view", self.clean_view, VIEWS)


def clean_share(ctx: TrainingContext) -> float:
    """``n_clean / n_train``: the weight at which a clean batch's CE, added every student step, gives each
    clean sample the weight of one training sample per epoch (both draw batches of the same size)."""
    return len(ctx.meta_set()[1]) / ctx.num_train


def default_corrupt_fraction(noise_rate: float) -> float:
    """The BCE injection share: the noise rate the run assumes, within [0.05, 0.95]; 0.5 if none is known.

    >>> default_corrupt_fraction(0.17), default_corrupt_fraction(0.0)
    (0.17, 0.5)
    """
    return min(max(noise_rate, 0.05), 0.95) if noise_rate > 0 else 0.5


class EMLC(TeacherStudent, name="emlc", params=EMLCParams):
    """Enhanced Meta Label Correction: gated teacher, FPMG meta-gradients, CE + BCE + meta objective."""

    def setup(self) -> None:
        super().setup()
        p = self.params
        if p.corrupt_fraction is None:
            p.corrupt_fraction = default_corrupt_fraction(self.ctx.assumed_noise_rate())
        if p.student_clean_weight is None:
            p.student_clean_weight = clean_share(self.ctx)
        self.ctx.check_view(p.clean_view)
        classifier = self.ctx.classifier(self.ctx.new_model(p.teacher_model, init=p.teacher_init))
        self.teacher = GatedTeacher(classifier, embedding=p.label_embedding, hidden=p.gate_hidden).to(
            self.ctx.device
        )
        self.teacher_optimizer = self.new_teacher_optimizer(self.teacher.parameters())
        self.history: list[StudentStep] = []  # the current window; empty between epochs
        self.pending = 0  # student steps since the teacher's last update (0 between epochs)

    def teacher_student_step(self, batch):
        p, ctx = self.params, self.ctx
        last = ctx.is_last_step
        self.pending += 1
        update_now = self.pending >= p.steps or last
        track = p.meta_weight != 0  # a negative weight flips the meta-gradient (a test's control)
        teacher_rng = capture_rng(batch.x.device)
        # The window's last soft labels keep their graph for the meta-gradient; earlier ones are rebuilt.
        with torch.set_grad_enabled(track and update_now):
            soft, gate = self.teacher(batch.x, batch.y)
        self.record(batch.index, batch.y, soft)
        if track:
            weights = snapshot(parameters_of(self.model))
            context = (batch.y, teacher_rng, soft if soft.requires_grad else None)
            rng = capture_rng(batch.x.device)
            step = StudentStep(weights, batch.x, self.student_lr(), rng, context, ctx.clock.batch_share)
        logits = self.model(batch.x)
        # The clean term has no mixed Hessian with the teacher: FPMG over the soft-label term stays exact.
        loss = soft_cross_entropy(soft.detach())(logits).mean() + self.clean_term()
        ctx.step(loss, self.optimizer)
        stats = {"loss": loss.detach(), "mean_gate": gate.detach().mean()}
        if track:
            self.history.append(step)
        if update_now:
            stats |= self.teacher_step()
        return stats

    def targets(self, step: StudentStep):
        """The recorded step's loss vector on soft labels with their graph to the teacher."""
        y, rng, soft = step.context
        if soft is None:
            params: dict[str, Tensor] = dict(self.teacher.named_parameters())
            with replay_rng(rng):
                soft, _ = functional_call(self.teacher, (params, buffers_of(self.teacher)), (step.x, y))
        return soft_cross_entropy(soft)

    def teacher_step(self) -> dict[str, Tensor]:
        """One teacher update on eq. 12; statistics weighted by the student steps it covers."""
        p, ctx = self.params, self.ctx
        covered, self.pending = self.pending, 0
        self.teacher_optimizer.zero_grad(set_to_none=True)
        stats = {}
        if self.history:
            meta_x, meta_y = ctx.meta_batch(p.meta_batch_size)
            params = parameters_of(self.model)
            meta_loss, g_meta = meta_loss_and_grad(self.model, params, meta_x, meta_y, self.meta_loss_fn())
            backward = fpmg_backward if p.meta_grad == "fast" else mixed_hessian_backward
            backward(
                self.model,
                self.history,
                g_meta,
                self.targets,
                gamma=p.gamma,
                scale=p.meta_weight,
                inputs=list(self.teacher.parameters()),
            )
            ctx.sum_gradients(self.teacher.parameters())  # each rank's steps: its slices' parts
            stats["meta_loss"] = meta_loss
            self.history = []
        if p.ce_weight > 0 or (p.bce_weight > 0 and p.injection != "none"):
            stats |= self.supervised_backward()
        self.teacher_optimizer.step()
        return {k: v * covered for k, v in stats.items()}

    def supervised_backward(self) -> dict[str, Tensor]:
        """Eq. 12's L_CE and L_BCE on one clean batch (one teacher forward), backpropagated."""
        p, ctx = self.params, self.ctx
        x, y = ctx.meta_batch(p.meta_batch_size, view=p.clean_view)
        logits, h = self.teacher.classifier(x, return_features=True)
        ce = F.cross_entropy(logits, y)
        loss, stats = p.ce_weight * ce, {"teacher_ce": ce.detach()}
        if p.bce_weight > 0 and p.injection != "none":
            labels, clean = inject_noise(
                y, logits, strategy=p.injection, fraction=p.corrupt_fraction, generator=ctx.generator
            )
            gate_logit = self.teacher.gate_logit(h, labels)
            bce = F.binary_cross_entropy_with_logits(gate_logit, clean.to(gate_logit.dtype))
            loss = loss + p.bce_weight * bce
            stats["gate_bce"] = bce.detach()
        loss.backward(inputs=list(self.teacher.parameters()))
        return stats
