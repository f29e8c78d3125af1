"""The fast meta-gradient (one JVP) against brute-force autograd through the look-ahead, in float64.

Brute force, written here independently of the library: make the weights ``w`` a leaf, build
``theta'(w) = theta - lr * grad(sum_k w_k l_k(theta))`` with ``create_graph=True``, evaluate the meta loss
at ``theta'`` and differentiate w.r.t. ``w``. Every comparison asks for a relative error < 1e-8.
"""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from noisy_labels.losses import mae_loss
from noisy_labels.meta import (
    buffers_of,
    capture_rng,
    functional_forward,
    jvp_losses,
    lookahead,
    normalize_sum,
    parameters_of,
    weight_grad,
    weight_grad_second_order,
)
from noisy_labels.models import WeightNet, create_model

LR = 0.3
TOL = 1e-8


def rel_err(a, b):
    return ((a - b).norm() / b.norm()).item()


def make(kind, seed=0):
    """A float64 model in train mode and a training + meta batch for it."""
    torch.manual_seed(seed)
    if kind == "mlp":
        model = create_model("mlp", num_classes=4, feature_dim=6, hidden=(7,))
        shape = (6,)
    elif kind == "mlp_bn":
        model = create_model("mlp", num_classes=4, feature_dim=6, hidden=(7, 5), batchnorm=True)
        shape = (6,)
    elif kind == "cnn_bn":
        model = create_model("small_cnn", num_classes=4, input_shape=(2, 8, 8), widths=(3, 4))
        shape = (2, 8, 8)
    elif kind == "mlp_dropout":
        model = create_model("mlp", num_classes=4, feature_dim=6, hidden=(16,), dropout=0.5)
        shape = (6,)
    else:
        raise ValueError(kind)
    model = model.double().train()
    x, xm = torch.randn(10, *shape, dtype=torch.float64), torch.randn(9, *shape, dtype=torch.float64)
    y, ym = torch.randint(0, 4, (10,)), torch.randint(0, 4, (9,))
    return model, x, y, xm, ym


def ce_vector(y):
    return lambda logits: F.cross_entropy(logits, y, reduction="none")


def two_term_vector(y):
    """L2B's terms: CE on the given labels, then CE on the hard pseudo-labels."""

    def fn(logits):
        pseudo = logits.detach().argmax(1)
        return torch.cat(
            [F.cross_entropy(logits, y, reduction="none"), F.cross_entropy(logits, pseudo, reduction="none")]
        )

    return fn


def brute_force(model, x, loss_vector_fn, xm, ym, meta_loss_fn, w0):
    """d L_meta(theta'(w)) / dw at w0 by differentiating through the look-ahead (independent code)."""
    names = [n for n, _ in model.named_parameters()]
    theta = [p for _, p in model.named_parameters()]
    w = w0.detach().clone().requires_grad_(True)
    bufs = {n: b.clone() for n, b in model.named_buffers()}
    losses = loss_vector_fn(functional_call(model, (dict(zip(names, theta, strict=True)), bufs), (x,)))
    grads = torch.autograd.grad((w * losses).sum(), theta, create_graph=True)
    ahead = {n: p - LR * g for n, p, g in zip(names, theta, grads, strict=True)}
    bufs = {n: b.clone() for n, b in model.named_buffers()}
    meta = meta_loss_fn(functional_call(model, (ahead, bufs), (xm,)), ym)
    return torch.autograd.grad(meta, w)[0]


KINDS = ["mlp", "mlp_bn", "cnn_bn"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("meta_loss_fn", [F.cross_entropy, mae_loss], ids=["ce", "mae"])
def test_lookahead_at_theta_prime_matches_brute_force(kind, meta_loss_fn):
    """MW-Net: non-zero weights, look-ahead at theta' != theta."""
    model, x, y, xm, ym = make(kind)
    w = torch.rand(10, dtype=torch.float64)
    w = w / w.sum()
    expected = brute_force(model, x, ce_vector(y), xm, ym, meta_loss_fn, w)
    losses = ce_vector(y)(model(x))
    fast = weight_grad(model, x, ce_vector(y), xm, ym, meta_loss_fn, lr=LR, weights=w, losses=losses)
    second = weight_grad_second_order(model, x, ce_vector(y), xm, ym, meta_loss_fn, lr=LR, weights=w)
    assert rel_err(fast.grad, expected) < TOL
    assert rel_err(second.grad, expected) < TOL
    assert expected.abs().max() > 1e-6  # a non-trivial gradient


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("own_forward", [True, False], ids=["own_forward", "callers_forward"])
def test_weights_at_zero_matches_brute_force(kind, own_forward):
    """L2RW: the meta-gradient at w = 0 (theta' = theta)."""
    model, x, y, xm, ym = make(kind)
    expected = brute_force(
        model, x, ce_vector(y), xm, ym, F.cross_entropy, torch.zeros(10, dtype=torch.float64)
    )
    losses = None if own_forward else ce_vector(y)(model(x))
    fast = weight_grad(model, x, ce_vector(y), xm, ym, F.cross_entropy, lr=LR, losses=losses)
    second = weight_grad_second_order(model, x, ce_vector(y), xm, ym, F.cross_entropy, lr=LR)
    assert rel_err(fast.grad, expected) < TOL
    assert rel_err(second.grad, expected) < TOL
    assert fast.losses.grad_fn is not None  # the real step can backpropagate through them


@pytest.mark.parametrize("kind", KINDS)
def test_l2b_two_terms_per_sample_at_zero_matches_brute_force(kind):
    model, x, y, xm, ym = make(kind)
    fn = two_term_vector(y)
    expected = brute_force(model, x, fn, xm, ym, F.cross_entropy, torch.zeros(20, dtype=torch.float64))
    fast = weight_grad(model, x, fn, xm, ym, F.cross_entropy, lr=LR)
    assert fast.grad.shape == (20,)
    assert rel_err(fast.grad, expected) < TOL


def test_meta_gradient_equals_minus_lr_times_per_sample_gradient_inner_products():
    """The identity itself, per sample: dL/dw_i = -lr <grad l_i(theta), grad L_meta(theta')>."""
    model, x, y, xm, ym = make("mlp_bn")
    w = torch.full((10,), 0.1, dtype=torch.float64)
    params = parameters_of(model)
    losses = ce_vector(y)(functional_forward(model, params, x))
    g_train = torch.autograd.grad((w * losses).sum(), list(params.values()), retain_graph=True)
    ahead = {
        k: v.detach().requires_grad_()
        for k, v in lookahead(params, dict(zip(params, g_train, strict=True)), LR).items()
    }
    g_meta = torch.autograd.grad(
        F.cross_entropy(functional_forward(model, ahead, xm), ym), list(ahead.values())
    )
    per_sample = []
    for i in range(10):
        gi = torch.autograd.grad(losses[i], list(params.values()), retain_graph=True)
        per_sample.append(-LR * sum((a * b).sum() for a, b in zip(gi, g_meta, strict=True)))
    fast = weight_grad(model, x, ce_vector(y), xm, ym, F.cross_entropy, lr=LR, weights=w, losses=losses)
    assert rel_err(fast.grad, torch.stack(per_sample)) < TOL


@pytest.mark.parametrize("training_forward", [False, True], ids=["untracked", "as_training_forward"])
def test_jvp_matches_per_sample_directional_derivatives(training_forward):
    model, x, y, _, _ = make("cnn_bn")
    reference = create_model("small_cnn", num_classes=4, input_shape=(2, 8, 8), widths=(3, 4)).double()
    reference.load_state_dict(model.state_dict())
    params = parameters_of(model)
    direction = {k: torch.randn_like(v) for k, v in params.items()}
    losses, tangent = jvp_losses(model, params, direction, x, ce_vector(y), training_forward=training_forward)
    recomputed = ce_vector(y)(reference.train()(x))  # a plain training forward, with its graph
    ref_params = dict(reference.named_parameters())
    expected = []
    for i in range(10):
        gi = torch.autograd.grad(recomputed[i], list(ref_params.values()), retain_graph=True)
        expected.append(sum((g * direction[k]).sum() for g, k in zip(gi, params, strict=True)))
    assert rel_err(tangent, torch.stack(expected)) < TOL
    assert losses.requires_grad == training_forward
    if training_forward:  # usable as the real step's forward: same gradient, stats updated once
        w = torch.rand(10, dtype=torch.float64)
        ours = torch.autograd.grad((w * losses).sum(), list(params.values()))
        theirs = torch.autograd.grad((w * recomputed).sum(), list(ref_params.values()))
        assert all(rel_err(a, b) < TOL for a, b in zip(ours, theirs, strict=True))
    moved = not torch.equal(
        dict(model.named_buffers())["backbone.1.running_mean"], reference.backbone[1].running_mean
    )
    assert moved != training_forward  # equal to the reference (moved once) only as a training forward


def test_tangent_is_differentiable_w_r_t_soft_labels():
    """EMLC's FPMG shape: d/dz sum_i <grad_theta l_i(theta; softmax(z_i)), v>, a JVP followed by a VJP."""
    model, x, _, _, _ = make("cnn_bn")
    z = torch.randn(10, 4, dtype=torch.float64, requires_grad=True)  # a teacher's logits

    def soft_ce(logits):
        return -(torch.softmax(z, dim=1) * torch.log_softmax(logits, dim=1)).sum(dim=1)

    params = parameters_of(model)
    direction = {k: torch.randn_like(v) for k, v in params.items()}
    _, tangent = jvp_losses(model, params, direction, x, soft_ce, differentiable_tangent=True)
    (fast,) = torch.autograd.grad(tangent.sum(), z)
    losses = soft_ce(functional_forward(model, params, x))
    grads = torch.autograd.grad(losses.sum(), list(params.values()), create_graph=True)
    inner = sum((g * direction[k]).sum() for g, k in zip(grads, params, strict=True))
    (slow,) = torch.autograd.grad(inner, z)
    assert rel_err(fast, slow) < TOL
    assert all(p.grad is None for p in params.values())


def test_dropout_masks_are_replayed_for_the_jvp():
    model, x, y, xm, ym = make("mlp_dropout")
    w = torch.full((10,), 0.1, dtype=torch.float64)
    torch.manual_seed(7)
    expected = brute_force(model, x, ce_vector(y), xm, ym, F.cross_entropy, w)
    torch.manual_seed(7)
    rng = capture_rng("cpu")
    losses = ce_vector(y)(model(x))
    fast = weight_grad(
        model, x, ce_vector(y), xm, ym, F.cross_entropy, lr=LR, weights=w, losses=losses, rng=rng
    )
    assert rel_err(fast.grad, expected) < TOL


def test_weighting_network_gradient_matches_full_second_order():
    """MW-Net's Theta-gradient: fast dL/dw pulled back through normalisation and the weighting net."""
    model, x, y, xm, ym = make("cnn_bn")
    torch.manual_seed(3)
    vnet = WeightNet(hidden=10).double()
    losses = ce_vector(y)(model(x))
    # Fast: dL/dw from one JVP, then a VJP into the weighting net.
    w = normalize_sum(vnet(losses.detach()))
    fast = weight_grad(model, x, ce_vector(y), xm, ym, F.cross_entropy, lr=LR, weights=w, losses=losses)
    fast_grads = torch.autograd.grad(w, list(vnet.parameters()), grad_outputs=fast.grad)
    # Brute force: backpropagate the meta loss through theta'(Theta) into the weighting net.
    params = dict(model.named_parameters())
    w2 = normalize_sum(vnet(losses.detach()))
    g = torch.autograd.grad((w2 * losses).sum(), list(params.values()), create_graph=True, retain_graph=True)
    ahead = {k: p - LR * gk for (k, p), gk in zip(params.items(), g, strict=True)}
    meta = F.cross_entropy(functional_call(model, (ahead, buffers_of(model)), (xm,)), ym)
    slow_grads = torch.autograd.grad(meta, list(vnet.parameters()))
    for a, b in zip(fast_grads, slow_grads, strict=True):
        assert rel_err(a, b) < TOL


@pytest.mark.parametrize("path", ["fast_w", "fast_zero", "second_order"])
def test_running_statistics_move_exactly_once_per_step(path):
    """Look-ahead, meta and JVP forwards leave BN running stats alone; the training forward updates them."""
    model, x, y, xm, ym = make("cnn_bn")
    reference = create_model("small_cnn", num_classes=4, input_shape=(2, 8, 8), widths=(3, 4)).double()
    reference.load_state_dict(model.state_dict())
    reference.train()(x)  # one plain training forward
    w = torch.full((10,), 0.1, dtype=torch.float64)
    if path == "fast_w":
        losses = ce_vector(y)(model(x))
        weight_grad(model, x, ce_vector(y), xm, ym, F.cross_entropy, lr=LR, weights=w, losses=losses)
    elif path == "fast_zero":
        weight_grad(model, x, ce_vector(y), xm, ym, F.cross_entropy, lr=LR)
    else:
        weight_grad_second_order(model, x, ce_vector(y), xm, ym, F.cross_entropy, lr=LR, weights=w)
    for (name, a), b in zip(model.named_buffers(), reference.buffers(), strict=True):
        assert torch.equal(a, b), name


def test_functional_forward_leaves_buffers_alone_unless_asked():
    model, x, *_ = make("cnn_bn")
    before = {k: v.clone() for k, v in model.named_buffers()}
    functional_forward(model, parameters_of(model), x)
    assert all(torch.equal(before[k], v) for k, v in model.named_buffers())
    functional_forward(model, parameters_of(model), x, buffers=buffers_of(model, clone=False))
    assert not torch.equal(
        before["backbone.1.running_mean"], dict(model.named_buffers())["backbone.1.running_mean"]
    )


def test_frozen_parameters_stay_out_of_the_lookahead():
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2)).double()
    model[0].weight.requires_grad_(False)
    assert set(parameters_of(model)) == {"0.bias", "1.weight", "1.bias"}
    x, xm = torch.randn(5, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    y, ym = torch.randint(0, 2, (5,)), torch.randint(0, 2, (4,))
    fast = weight_grad(model, x, ce_vector(y), xm, ym, F.cross_entropy, lr=LR)
    second = weight_grad_second_order(model, x, ce_vector(y), xm, ym, F.cross_entropy, lr=LR)
    assert rel_err(fast.grad, second.grad) < TOL
