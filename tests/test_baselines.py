"""The loss-based baselines, checked against their formulas computed by hand."""

import math

import pytest
import torch
import torch.nn.functional as F

from noisy_labels.losses import gce_loss, hard_bootstrap_loss, mae_loss, soft_bootstrap_loss
from noisy_labels.methods import list_methods

LOGITS = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]])
LABELS = torch.tensor([1, 2])


def probs():
    return F.softmax(LOGITS, dim=1)


def test_registry_lists_the_baselines():
    assert {"ce", "bootstrap_soft", "bootstrap_hard", "gce", "mae", "label_smoothing"} <= set(list_methods())


def test_soft_bootstrap_by_hand():
    p = probs()
    expected = 0.0
    for i, y in enumerate(LABELS.tolist()):
        target = [0.95 * (k == y) + 0.05 * p[i, k].item() for k in range(3)]
        expected -= sum(t * math.log(p[i, k].item()) for k, t in enumerate(target))
    assert soft_bootstrap_loss(LOGITS, LABELS, 0.95, detach=False).item() == pytest.approx(
        expected / 2, rel=1e-6
    )


def test_soft_bootstrap_detach_changes_only_the_gradient():
    a = LOGITS.clone().requires_grad_(True)
    b = LOGITS.clone().requires_grad_(True)
    la, lb = (
        soft_bootstrap_loss(a, LABELS, 0.9, detach=False),
        soft_bootstrap_loss(b, LABELS, 0.9, detach=True),
    )
    assert la.item() == pytest.approx(lb.item())
    la.backward()
    lb.backward()
    assert not torch.allclose(a.grad, b.grad)


def test_hard_bootstrap_by_hand():
    p = probs()
    pseudo = p.argmax(1)  # [0, 0]
    expected = sum(
        -(0.8 * math.log(p[i, y]) + 0.2 * math.log(p[i, pseudo[i]])) for i, y in enumerate(LABELS.tolist())
    )
    assert hard_bootstrap_loss(LOGITS, LABELS, 0.8).item() == pytest.approx(expected / 2, rel=1e-6)


def test_gce_limits_and_value():
    p_y = probs()[torch.arange(2), LABELS]
    assert gce_loss(LOGITS, LABELS, 0.7).item() == pytest.approx(
        ((1 - p_y**0.7) / 0.7).mean().item(), rel=1e-6
    )
    # q -> 0 recovers cross-entropy; q = 1 is half of MAE.
    assert gce_loss(LOGITS, LABELS, 1e-5).item() == pytest.approx(
        F.cross_entropy(LOGITS, LABELS).item(), rel=1e-3
    )
    assert gce_loss(LOGITS, LABELS, 1.0).item() == pytest.approx(
        mae_loss(LOGITS, LABELS).item() / 2, rel=1e-6
    )


def test_mae_equals_l1_distance_to_one_hot():
    expected = (F.one_hot(LABELS, 3) - probs()).abs().sum(1).mean()
    assert mae_loss(LOGITS, LABELS).item() == pytest.approx(expected.item(), rel=1e-6)
