"""Defaults derived from what a run knows, in one declared place.

The papers' hyper-parameters are tied to their scale: SGD lr 0.1 with momentum 0.9 is the recipe of
BatchNorm ResNets trained for 100+ epochs on 50k images. The defaults a run gets when its config leaves a
key unset (``null``) are derived here from the run's own optimiser, instead of copying those constants
onto every model. Every paper value stays reachable by setting the key (the ``configs/*_paper.yaml`` do).

Step size (``optim.lr``)
    SGD with momentum ``beta`` moves the weights by ``lr / (1 - beta)`` per unit of steady gradient, its
    *effective step*. The default effective step is :data:`EFFECTIVE_SGD_STEP` = 0.1, so ``lr = 0.1 *
    (1 - beta)`` (0.01 at momentum 0.9); Adam/AdamW get 1e-3. Measured (seed 0, symmetric 50%): with the
    papers' ``lr 0.1, momentum 0.9`` (effective step 1.0) a linear head on the standardised CIFAR-10
    features ends its first epoch at a training loss of 6.3, far above the ``ln 10 = 2.3`` of a uniform
    guess, and the small CNN on digits stays above 2.0 for 20 epochs: the trajectory oscillates, and
    MW-Net's meta-gradient then rewards the samples that undo the last overshoot, the high-loss ones,
    so its weighting network inverts (cleanness AUC 0.11 and 0.03). At effective step 0.1 (``lr 0.1,
    momentum 0`` or ``lr 0.01, momentum 0.9``) cross-entropy falls smoothly and MW-Net's AUC is 0.97 and
    0.99 (``benchmarks/results/defaults.md``).

Look-ahead step of the one-step meta methods (``<method>.lookahead_lr``)
    The virtual step ``theta' = theta - eta * sum_i w_i grad l_i`` stands for the classifier's move, so
    its default ``eta`` is the classifier's *effective* step ``lr / (1 - beta)`` at the current point of
    the schedule (:func:`lookahead_step`). The MW-Net/RMNW-Net reference code uses the plain scheduled
    ``lr`` (the same with momentum 0); with momentum 0.9 that is a tenth of the real move, and the
    weighting network's meta-gradient, which is proportional to ``eta``, fell to noise (digits, small
    CNN, ``lr 0.01, momentum 0.9``: AUC 0.5 with ``eta = lr``, 0.99 with ``eta = lr / (1 - beta)``).
    MW-Net and its variants cap it at :data:`EFFECTIVE_SGD_STEP` (``lookahead_max``), the smooth step of
    the section above and the papers' own look-ahead (their lr 0.1, momentum ignored); L2RW's and L2B's
    look-ahead size cancels in their weights. A recipe whose real steps are large and safe (BatchNorm
    networks on a one-cycle schedule) still needs a virtual plain-SGD step small enough for its
    first-order picture. Measured (CIFAR-10 images, airbench 32-128-128, SGD lr 0.2 Nesterov 0.9, an
    effective step of 2.0; CIFAR-10N ``worst``, 20k images, 7 epochs, seed 0; CE 66.0%): uncapped,
    MW-Net's clean meta loss *at the look-ahead* was 7.9 where the classifier's own loss was ~1.5, the
    weighting network learnt to shrink the virtual step (weight on samples already fitted, effective
    sample size 0.34-0.38) and the run ended at 48.8%; with the look-ahead 0.1 67.8% (ESS 0.84-0.97), with
    0.2 (``lookahead: lr``) 67.7%. The cap changes no run whose effective step is at most 0.1 (the
    library's defaults, the feature configs, Adam). ``lookahead: lr`` alone is no fix: on the CIFAR-10
    features (defaults, ``eta`` 0.01) MW-Net's weights inverted at asym. 40% (AUC 0.32, 58.1% against
    75.6%).

Warm-up length (``flywheel.warmup_epochs``, ``mwnet.warmup_epochs`` (also MNW-Net, RMNW-Net),
``l2b.warmup_epochs``: ``null`` by default)
    The papers give it in epochs of their own run: 10 of 300 (LNL-flywheel and L2B on CIFAR; L2B's ISIC
    run: 1 of 30). :func:`scaled_epochs` keeps that *fraction* of the run's ``epochs`` (at least one).
    Measured (CIFAR-10 features, uniform 80%, 20 epochs, seed 0): the flywheel with the paper's 10
    epochs memorises the noise for half the run and ends at 40.2%; with the scaled 1 epoch, 71.9%.
    A fraction of the run does not know how fast the model learns, though: MNIST's small CNN under SGD
    (3k images, 23 steps an epoch) is at 46% after that one epoch. The flywheel therefore warms up
    *until its fit of the given labels stops improving* (:func:`warmup_over`): at least the scaled
    paper length, then while the network's agreement with the given labels still rose by
    ``min_gain`` (1 point) in the last epoch, at most half the run. Seed 0, 20 epochs: the linear
    head on the features plateaus after its first epoch (+0.3 points in the second: 2 epochs), the
    small CNN after about 5-8. MW-Net and its variants use the same rule (their papers have no warm-up,
    so its minimum is one epoch; why they need one: :class:`noisy_labels.methods.meta_weighting.MWNet`);
    :mod:`noisy_labels.methods._warmup` holds the state both share.

    A plateau is not learning, though: a classifier still at chance has stopped gaining too. MW-Net
    with a trusted meta set therefore also waits (``mwnet.warmup_until_above_chance``) until the
    classifier beats chance on the meta set (:func:`beats_chance`), at most half the run: its weighting
    network sees only each sample's loss, and the losses of a classifier at chance say nothing about
    which labels are right. Measured (CIFAR-10 images, sym. 80%, airbench, 7 epochs, seed 0): after the
    one-epoch warm-up the classifier was at chance (test 11.4%), the weighting network's step walked on
    a near-empty meta-gradient and inverted the ranking (AUC 0.38; 26.2%, CE 40.9%); with the check the
    warm-up runs two epochs and the ranking is the right way (AUC 0.76; 29.5%). No other stored run
    changes (:class:`noisy_labels.methods.meta_weighting.MWNet`).
"""

from __future__ import annotations

import torch

__all__ = [
    "ADAM_LR",
    "EFFECTIVE_SGD_STEP",
    "default_lr",
    "effective_step",
    "lookahead_step",
    "scaled_ema_decay",
    "scaled_epochs",
    "warmup_over",
]

EFFECTIVE_SGD_STEP = 0.1
ADAM_LR = 1e-3


def default_lr(optimizer: str, momentum: float) -> float:
    """The learning rate a config with ``optim.lr: null`` gets for ``optimizer`` (sgd | adam | adamw).

    >>> default_lr("sgd", 0.9)
    0.01
    >>> default_lr("sgd", 0.0)
    0.1
    >>> default_lr("adam", 0.9)
    0.001
    """
    if optimizer == "sgd":
        return round(EFFECTIVE_SGD_STEP * (1.0 - momentum), 12)
    return ADAM_LR


def effective_step(group: dict) -> float:
    """``lr / (1 - momentum)`` of an SGD parameter group at its current (scheduled) lr; ``lr`` otherwise
    (Adam's groups have no ``momentum``)."""
    momentum = group.get("momentum", 0.0)
    return group["lr"] / (1.0 - momentum) if momentum < 1.0 else group["lr"]


def lookahead_step(optimizer: torch.optim.Optimizer, *, cap: float | None = None) -> float:
    """The one-step meta methods' default look-ahead size: the classifier's effective step now, at most
    ``cap`` (None: no cap; MW-Net's is :data:`EFFECTIVE_SGD_STEP`).

    >>> sgd = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.2, momentum=0.9)
    >>> round(lookahead_step(sgd), 6), round(lookahead_step(sgd, cap=EFFECTIVE_SGD_STEP), 6)
    (2.0, 0.1)
    """
    step = effective_step(optimizer.param_groups[0])
    return step if cap is None else min(step, cap)


def scaled_epochs(paper_epochs: float, paper_total: float, run_total: int, *, minimum: int = 1) -> int:
    """``paper_epochs`` of a ``paper_total``-epoch paper run, as the same fraction of ``run_total``.

    >>> scaled_epochs(10, 300, 20)
    1
    >>> scaled_epochs(10, 300, 300)
    10
    """
    return max(minimum, round(paper_epochs * run_total / paper_total))


def warmup_over(
    done: int,
    run_total: int,
    gain: float,
    *,
    paper_epochs: float,
    paper_total: float,
    min_gain: float = 0.01,
    max_share: float = 0.5,
) -> bool:
    """Whether a warm-up that has run ``done`` epochs ends now (the adaptive rule in the module notes).

    ``gain`` is how much the network's agreement with the given labels rose in the last epoch. The
    warm-up lasts at least the paper's fraction of the run (:func:`scaled_epochs`), then stops at the
    first epoch that gained less than ``min_gain``, and at the latest after ``max_share`` of the run
    (at least one epoch).

    >>> warmup_over(1, 20, 0.30, paper_epochs=10, paper_total=300)
    False
    >>> warmup_over(2, 20, 0.003, paper_epochs=10, paper_total=300)
    True
    >>> warmup_over(10, 20, 0.05, paper_epochs=10, paper_total=300)
    True
    >>> warmup_over(2, 20, 0.05, paper_epochs=0, paper_total=1, max_share=0.1)
    True
    """
    if done < scaled_epochs(paper_epochs, paper_total, run_total):
        return False
    return gain < min_gain or done >= max(1, int(run_total * max_share))


#: Binomial standard errors above the best constant guess at which a classifier beats chance (one-sided
#: p ~ 0.001 for a classifier that has learnt nothing)
CHANCE_MARGIN_Z = 3.0


def beats_chance(predicted: torch.Tensor, labels: torch.Tensor, *, z: float = CHANCE_MARGIN_Z) -> bool:
    """Whether ``predicted`` classes agree with ``labels`` significantly more often than chance.

    Chance is the best constant guess, the share ``c`` of the most frequent label; a classifier that has
    learnt nothing about the labels (a random network, one trained on labels that carry no information)
    agrees with them at most that often, up to the sampling error ``sqrt(c (1 - c) / n)`` of ``n``
    samples. It beats chance when its agreement exceeds ``c`` by more than ``z`` such errors.

    >>> labels = torch.arange(1000) % 10
    >>> beats_chance(labels.roll(1), labels), beats_chance(torch.where(labels < 2, labels, 9), labels)
    (False, True)
    >>> beats_chance(torch.zeros(1000, dtype=torch.long), labels)  # the constant guess itself: 0.1
    False
    """
    n = len(labels)
    if n == 0:
        return False
    chance = float(torch.bincount(labels).max()) / n
    agreement = float((predicted == labels).float().mean())
    return agreement > chance + z * (chance * (1 - chance) / n) ** 0.5


def scaled_ema_decay(paper_decay: float, paper_steps_per_epoch: float, steps_per_epoch: int) -> float:
    """An average's decay with the paper's horizon, ``1 / (1 - decay)`` steps, as the same share of an epoch.

    A decay counts steps, and a run with fewer steps per epoch than the paper's (a small data set, a
    large batch) would otherwise average over many more epochs: ELR+'s 0.997 is 333 steps, 0.85 of a
    CIFAR epoch at 391 steps, but 14 of MNIST-3k's 20 epochs at 23 steps each.

    >>> scaled_ema_decay(0.997, 391, 391)
    0.997
    >>> round(scaled_ema_decay(0.997, 391, 23), 3)
    0.949
    """
    horizon = steps_per_epoch / paper_steps_per_epoch / (1.0 - paper_decay)
    return round(1.0 - 1.0 / max(1.0, horizon), 6)
