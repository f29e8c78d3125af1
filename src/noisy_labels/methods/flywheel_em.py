"""The E- and M-step formulas of LNL-flywheel (Kim et al., "Learning with Noisy Labels: Interconnection of
Two Expectation-Maximizations", ICCV 2023), as pure tensor functions.

Main EM (network ``g``): :func:`clean_posterior` (eq. 4), :func:`update_gamma` (eq. 6),
:func:`main_loss` (eq. 8 with the confidence regulariser of eq. 9; eq. 7 with ``weights``).
Auxiliary EM (network ``f``): :func:`refurbished_targets` (eq. 10-11), :func:`estimate_transition`
(the closed-form ``T`` of sec. 3.3), :func:`corruption_transition` (``T_c``, the corrupted part only),
:func:`per_sample_epsilon` (eq. 14). ``f``'s loss (eq. 13) is built in :mod:`.flywheel` from the shared
:func:`~.robust_losses.mean_soft_cross_entropy`, :func:`~._selection.mixup` and
:func:`~noisy_labels.ssl.simclr.nt_xent_loss`.

Everything is vectorised over the training set (no Python loop over samples) and follows the library's
convention ``T[i, j] = P(noisy = j | clean = i)``; the paper writes the same ``T[y, y~]``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "clean_posterior",
    "confidence_regularizer",
    "corruption_matrix",
    "corruption_transition",
    "estimate_transition",
    "main_loss",
    "per_sample_epsilon",
    "refurbished_targets",
    "update_gamma",
]

_TINY = 1e-12


# ================================================================================================ main EM
def clean_posterior(
    gamma: torch.Tensor | float, p_noisy: torch.Tensor, eps: torch.Tensor | float
) -> torch.Tensor:
    """E-step of the main EM (eq. 4): ``q(s_i = 1) = gamma g_i / (gamma g_i + (1 - gamma) eps_i)``.

    Parameters
    ----------
    gamma : float or 0-d Tensor
        Mixture weight of the clean manifold from the previous cycle.
    p_noisy : Tensor of shape (N,)
        ``g(x_i)[y~_i]``, the main network's probability of the given label.
    eps : float or Tensor of shape (N,)
        Outlier likelihood ``eps(y~_i | x_i)``: ``1/K`` at first, per-sample ``eps_i`` (eq. 14) later.

    Returns
    -------
    Tensor of shape (N,)
        Cleanness probabilities in [0, 1].

    Examples
    --------
    >>> [round(v, 4) for v in clean_posterior(0.5, torch.tensor([0.9, 0.1]), 0.1).tolist()]
    [0.9, 0.5]
    """
    clean = gamma * p_noisy
    return clean / (clean + (1.0 - gamma) * eps).clamp_min(_TINY)


def update_gamma(q: torch.Tensor) -> torch.Tensor:
    """Closed-form M-step for the mixture weight (eq. 6): the mean cleanness probability."""
    return q.mean()


def confidence_regularizer(logits: torch.Tensor, prior: torch.Tensor, *, floor: float = 1e-8) -> torch.Tensor:
    """Confidence regulariser ``eta(g)`` (eq. 9): ``mean_i sum_k p(k) log g(x_i)[k]``.

    Adding ``lambda * eta`` to a loss that is minimised pushes every prediction away from the label
    marginal ``p``, i.e. towards confident outputs (CORES^2, Cheng et al. ICLR 2021). ``log`` is taken of
    ``softmax + floor`` as in the CORES^2 code: without a floor the regulariser is unbounded below.

    Parameters
    ----------
    logits : Tensor of shape (B, K)
    prior : Tensor of shape (K,)
        ``p_data(y^)``, the label marginal of the labels ``g`` is trained on.
    floor : float, default=1e-8
    """
    log_p = torch.log(F.softmax(logits.float(), dim=1) + floor)
    return (log_p * prior).sum(dim=1).mean()


def main_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    prior: torch.Tensor,
    cr_lambda: float,
    *,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Loss of the main network: eq. 8, ``CE(g, y^) + lambda * eta(g)``.

    With ``weights`` (the cleanness probabilities) the cross-entropy term is eq. 7's reweighted
    ``mean_i q_i (-log g(x_i)[y~_i])`` instead: the "w/o auxiliary network" ablation (Table 6).
    """
    ce = F.cross_entropy(logits.float(), labels, reduction="none")
    ce = (ce * weights).mean() if weights is not None else ce.mean()
    if cr_lambda == 0:
        return ce
    return ce + cr_lambda * confidence_regularizer(logits, prior)


# =========================================================================================== auxiliary EM
def refurbished_targets(q: torch.Tensor, noisy_labels: torch.Tensor, f_prob: torch.Tensor) -> torch.Tensor:
    """E-step of the auxiliary EM (eq. 11): ``q_i(y) = q(s_i=1) e_{y~_i}[y] + q(s_i=0) f(x_i)[y]``.

    Parameters
    ----------
    q : Tensor of shape (N,)
        Cleanness probabilities from the main E-step (eq. 4).
    noisy_labels : Tensor of shape (N,)
    f_prob : Tensor of shape (N, K)
        The auxiliary network's softmax output (the paper averages two weak augmentations).

    Returns
    -------
    Tensor of shape (N, K), rows summing to 1.

    Examples
    --------
    >>> q, f = torch.tensor([0.75]), torch.tensor([[0.2, 0.8]])
    >>> refurbished_targets(q, torch.tensor([0]), f).round(decimals=4)
    tensor([[0.8000, 0.2000]])
    """
    onehot = F.one_hot(noisy_labels, f_prob.shape[1]).to(f_prob.dtype)
    return q[:, None] * onehot + (1.0 - q)[:, None] * f_prob


def _soft_transition(weights: torch.Tensor, noisy_labels: torch.Tensor) -> torch.Tensor:
    """``T[y, y'] = sum_{i: y~_i = y'} w_i(y) / sum_i w_i(y)``; a row without mass becomes uniform."""
    k = weights.shape[1]
    counts = weights.T.double() @ F.one_hot(noisy_labels, k).double()  # (K, K): clean y -> noisy y'
    totals = counts.sum(dim=1, keepdim=True)
    uniform = torch.full_like(counts, 1.0 / k)
    return torch.where(totals > _TINY, counts / totals.clamp_min(_TINY), uniform).to(weights.dtype)


def estimate_transition(targets: torch.Tensor, noisy_labels: torch.Tensor) -> torch.Tensor:
    """Closed-form M-step of ``T`` (sec. 3.3): ``T[y, y'] = sum_{i: y~_i=y'} q_i(y) / sum_i q_i(y)``.

    Parameters
    ----------
    targets : Tensor of shape (N, K)
        The auxiliary E-step's ``q_i(y)`` (eq. 11).
    noisy_labels : Tensor of shape (N,)

    Returns
    -------
    Tensor of shape (K, K)
        Row-stochastic; ``T[y, y'] = P(noisy = y' | true = y)``.

    Examples
    --------
    >>> estimate_transition(torch.tensor([[1.0, 0.0], [0.5, 0.5]]), torch.tensor([0, 1])).round(decimals=4)
    tensor([[0.6667, 0.3333],
            [0.0000, 1.0000]])
    """
    return _soft_transition(targets, noisy_labels)


def corruption_transition(q: torch.Tensor, f_prob: torch.Tensor, noisy_labels: torch.Tensor) -> torch.Tensor:
    """``T_c`` (sec. 3.3): :func:`estimate_transition` on the corrupted part ``q(s_i=0) f(x_i)`` of eq. 11.

    ``T_c[y, y'] = sum_{i: y~_i=y'} q(s_i=0) f(x_i)[y] / sum_i q(s_i=0) f(x_i)[y]``, an estimate of
    ``P(y~ = y' | y, s = 0)``, the label distribution of a corrupted sample of true class ``y``.
    """
    return _soft_transition((1.0 - q)[:, None] * f_prob, noisy_labels)


def per_sample_epsilon(f_prob: torch.Tensor, t_c: torch.Tensor, noisy_labels: torch.Tensor) -> torch.Tensor:
    """Eq. 14: ``eps_i = sum_y f(x_i)[y] T_c[y, y~_i]``, the outlier likelihood of each given label.

    Examples
    --------
    >>> f, t_c = torch.tensor([[0.5, 0.5]]), torch.tensor([[0.0, 1.0], [0.4, 0.6]])
    >>> per_sample_epsilon(f, t_c, torch.tensor([1])).round(decimals=4)
    tensor([0.8000])
    """
    return (f_prob @ t_c).gather(1, noisy_labels[:, None]).squeeze(1)


def corruption_matrix(transition) -> torch.Tensor:
    """The true ``T_c`` of a transition matrix: its off-diagonal part with rows renormalised.

    ``P(y~ = j | y = i, y~ != i)``; what :func:`corruption_transition` estimates when "corrupted" means a
    changed label. A row without off-diagonal mass (a class never flipped) is all zeros.
    """
    t = torch.as_tensor(transition, dtype=torch.float64).clone()
    t.fill_diagonal_(0.0)
    totals = t.sum(dim=1, keepdim=True)
    return torch.where(totals > 0, t / totals.clamp_min(_TINY), torch.zeros_like(t))
