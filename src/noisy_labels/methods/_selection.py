"""Shared pieces of the sample-selection and regularisation baselines (Co-teaching, DivideMix, ELR, CDR).

* :func:`fit_gmm_1d` / :func:`clean_probability`: a two-component 1-D Gaussian mixture fitted by
  vectorised EM on min-max normalised per-sample losses; the posterior of the low-mean component is the
  probability that a sample is clean (Arazo et al., ICML 2019, with a beta mixture; DivideMix, Li et al.,
  ICLR 2020, sec. 3.1, with a Gaussian mixture).
* :func:`sharpen` (MixMatch, Berthelot et al., NeurIPS 2019, sec. 3.1) and :func:`mixup` (Zhang et al.,
  ICLR 2018), with DivideMix's ``lambda' = max(lambda, 1 - lambda)`` as an option.
* Small helpers: :func:`per_sample_losses`, :func:`ensemble_log_probs`.

Whole-set passes read the training labels from ``ctx.train_labels``, so DMLP (Tu et al., CVPR 2023) can
feed its purified labels to any of these methods (DMLP-X) through ``ctx.with_train_labels``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..models import eval_mode

if TYPE_CHECKING:
    from ..engine.context import TrainingContext

__all__ = [
    "GaussianMixture1D",
    "clean_probability",
    "ensemble_log_probs",
    "fit_gmm_1d",
    "min_max_normalize",
    "mixup",
    "per_sample_losses",
    "sharpen",
]


# ------------------------------------------------------------------------------------ Gaussian mixture
@dataclass
class GaussianMixture1D:
    """A fitted 1-D Gaussian mixture; components sorted by increasing mean.

    Attributes
    ----------
    means, variances, weights : ndarray of shape (K,)
    n_iter : int
        EM iterations run.
    converged : bool
        The mean log-likelihood changed by less than ``tol`` in the last iteration.
    """

    means: np.ndarray
    variances: np.ndarray
    weights: np.ndarray
    n_iter: int
    converged: bool

    def log_joint(self, x: np.ndarray) -> np.ndarray:
        """``log(weight_k N(x_n | mean_k, variance_k))`` of shape (N, K)."""
        x = np.asarray(x, dtype=np.float64)[:, None]
        return np.log(self.weights) - 0.5 * (
            np.log(2.0 * np.pi * self.variances) + (x - self.means) ** 2 / self.variances
        )

    def posterior(self, x: np.ndarray) -> np.ndarray:
        """Responsibilities ``P(component k | x_n)`` of shape (N, K); rows sum to 1."""
        log_joint = self.log_joint(x)
        return np.exp(log_joint - _logsumexp(log_joint))


def _logsumexp(a: np.ndarray) -> np.ndarray:
    top = a.max(axis=1, keepdims=True)
    return top + np.log(np.exp(a - top).sum(axis=1, keepdims=True))


def fit_gmm_1d(
    x: np.ndarray,
    *,
    n_components: int = 2,
    max_iter: int = 100,
    tol: float = 1e-3,
    reg_covar: float = 1e-6,
) -> GaussianMixture1D:
    """Fit a 1-D Gaussian mixture by expectation-maximisation, vectorised over samples.

    Deterministic: the means start at the ``(k + 0.5) / K`` quantiles of ``x``, the variances at the
    overall variance and the weights uniform (no random restarts are needed in one dimension).

    Parameters
    ----------
    x : array of shape (N,)
    n_components : int, default=2
    max_iter : int, default=100
    tol : float, default=1e-3
        Stop when the mean log-likelihood changes by less than ``tol`` (scikit-learn's criterion).
    reg_covar : float, default=1e-6
        Added to every variance, so a component collapsing onto one value stays finite.

    Returns
    -------
    GaussianMixture1D

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = np.concatenate([rng.normal(0.1, 0.05, 700), rng.normal(0.7, 0.1, 300)])
    >>> gmm = fit_gmm_1d(x)
    >>> np.round(gmm.means, 1), np.round(gmm.weights, 1)
    (array([0.1, 0.7]), array([0.7, 0.3]))
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    if x.size < n_components or not np.all(np.isfinite(x)):
        raise ValueError(f"need at least {n_components} finite values to fit the mixture, got {x.size}.")
    means = np.quantile(x, (np.arange(n_components) + 0.5) / n_components)
    gmm = GaussianMixture1D(
        means=means,
        variances=np.full(n_components, x.var() + reg_covar),
        weights=np.full(n_components, 1.0 / n_components),
        n_iter=0,
        converged=False,
    )
    previous = -np.inf
    for it in range(1, max_iter + 1):
        log_joint = gmm.log_joint(x)  # E-step
        norm = _logsumexp(log_joint)
        resp = np.exp(log_joint - norm)
        counts = resp.sum(axis=0) + 10 * np.finfo(np.float64).eps  # M-step
        gmm.means = resp.T @ x / counts
        gmm.variances = (resp * (x[:, None] - gmm.means) ** 2).sum(axis=0) / counts + reg_covar
        gmm.weights = counts / counts.sum()
        gmm.n_iter, likelihood = it, float(norm.mean())
        if abs(likelihood - previous) < tol:
            gmm.converged = True
            break
        previous = likelihood
    order = np.argsort(gmm.means)
    gmm.means, gmm.variances, gmm.weights = gmm.means[order], gmm.variances[order], gmm.weights[order]
    return gmm


def min_max_normalize(x: torch.Tensor) -> torch.Tensor:
    """``(x - min) / (max - min)``; all zeros when every value is equal."""
    low, high = x.min(), x.max()
    return (x - low) / (high - low) if high > low else torch.zeros_like(x)


def clean_probability(
    losses: torch.Tensor | np.ndarray, *, max_iter: int = 10, tol: float = 1e-2, reg_covar: float = 5e-4
) -> torch.Tensor:
    """Posterior of the low-loss component of a two-component GMM on min-max normalised losses.

    DivideMix, Li et al., ICLR 2020, sec. 3.1 (``w_i = p(g | l_i)``, ``g`` the smaller-mean component). The
    defaults are DivideMix's mixture settings (10 EM iterations, tolerance 1e-2, variance floor 5e-4).

    Parameters
    ----------
    losses : tensor or array of shape (N,)
        Per-sample losses (any scale).

    Returns
    -------
    Tensor of shape (N,), float32 on the device of ``losses`` (CPU for arrays); all ones when the
    losses are all equal (nothing to separate).
    """
    losses = torch.as_tensor(losses)
    normalized = min_max_normalize(losses.double())
    if not bool((normalized > 0).any()):
        return torch.ones_like(losses, dtype=torch.float32)
    values = normalized.cpu().numpy()
    gmm = fit_gmm_1d(values, n_components=2, max_iter=max_iter, tol=tol, reg_covar=reg_covar)
    prob = gmm.posterior(values)[:, 0]  # components are sorted: 0 has the smaller mean
    return torch.from_numpy(prob).float().to(losses.device)


# ------------------------------------------------------------------------------------ mixing targets
def sharpen(p: torch.Tensor, temperature: float) -> torch.Tensor:
    """``p^(1/T) / sum_c p_c^(1/T)`` along the last dimension (MixMatch sec. 3.1)."""
    p = p.clamp_min(1e-12) ** (1.0 / temperature)
    return p / p.sum(dim=-1, keepdim=True)


def mixup(
    x: torch.Tensor,
    targets: torch.Tensor,
    alpha: float,
    *,
    generator: torch.Generator | None = None,
    larger_half: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """Mix a batch with a random permutation of itself: ``lam a + (1 - lam) b``, ``lam ~ Beta(alpha, alpha)``.

    Parameters
    ----------
    x : tensor of shape (B, ...)
    targets : tensor of shape (B, C)
        Soft targets (one-hot for hard labels).
    alpha : float
        Beta parameter; ``alpha <= 0`` disables mixing (``lam = 1``).
    generator : torch.Generator, optional
        Draws the permutation (``lam`` comes from torch's global generator, seeded and checkpointed).
    larger_half : bool, default=False
        Use ``max(lam, 1 - lam)`` so the mix stays closer to the first sample (DivideMix sec. 3.2).

    Returns
    -------
    mixed_x, mixed_targets, permutation, lam
    """
    if alpha <= 0:
        return x, targets, torch.arange(len(x), device=x.device), 1.0
    lam = float(torch.distributions.Beta(alpha, alpha).sample())
    if larger_half:
        lam = max(lam, 1.0 - lam)
    perm = torch.randperm(len(x), generator=generator).to(x.device)
    return (*mix_pairs(x, targets, lam, perm), perm, lam)


def mix_pairs(
    x: torch.Tensor, targets: torch.Tensor, lam: float, perm: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """MixUp's combination (Zhang et al. 2018): ``lam * (x, t) + (1 - lam) * (x, t)[perm]``."""
    return lam * x + (1.0 - lam) * x[perm], lam * targets + (1.0 - lam) * targets[perm]


# ------------------------------------------------------------------------------------ whole-set passes
def per_sample_losses(
    ctx: TrainingContext, model: nn.Module, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy of every training sample (``test`` view, eval mode, no grad) and the logits.

    Returns ``(losses (N,), logits (N, C))``.
    """
    with eval_mode(model):
        logits = ctx.predict(model, ctx.train_x)
    return F.cross_entropy(logits, labels, reduction="none"), logits


def ensemble_log_probs(models: Sequence[nn.Module], x: torch.Tensor) -> torch.Tensor:
    """``log(mean_k softmax(model_k(x)))``: the averaged prediction of several networks, as logits."""
    probs = torch.stack([F.softmax(m(x).float(), dim=1) for m in models]).mean(0)
    return probs.clamp_min(1e-12).log()
