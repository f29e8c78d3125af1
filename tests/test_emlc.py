"""MLC and EMLC: FPMG against brute force, the k-step formula by hand, the gate, and end-to-end runs.

Brute force, written here independently of the library: make the student's weights leaves, build one
SGD step ``w' = w - lr * grad_w mean_i CE(q_alpha(x_i, y_i), p_w(x_i))`` with ``create_graph=True``,
evaluate the clean loss at ``w'`` and differentiate w.r.t. the teacher's parameters ``alpha``. FPMG
instead takes the real step, then one JVP at the old weights and one backward into the teacher.
Every gradient comparison asks for a relative error < 1e-8 in float64.
"""

import functools
import itertools
import json
from unittest import mock

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

import noisy_labels.methods.emlc as emlc_module
from noisy_labels.engine import build_experiment, load_config, run_experiment
from noisy_labels.engine.loop import Batch
from noisy_labels.losses import soft_cross_entropy
from noisy_labels.meta import (
    StudentStep,
    discounts,
    fpmg_backward,
    lookahead_meta_loss,
    meta_loss_and_grad,
    mixed_hessian_backward,
    parameters_of,
    snapshot,
)
from noisy_labels.methods import get_method_class, list_methods
from noisy_labels.methods.emlc import inject_noise
from noisy_labels.metrics import roc_auc
from noisy_labels.models import GatedTeacher, create_model
from shared_settings import MNIST_UNIF60, one_torch_thread, three_epochs_and_two_plus_one

TOL = 1e-8
C = 4


def rel_err(a, b):
    return ((a - b).norm() / b.norm()).item()


def flat(tensors):
    return torch.cat([t.reshape(-1) for t in tensors])


def make(kind, seed=0):
    """A float64 student and EMLC teacher in train mode, a training batch and a clean batch."""
    torch.manual_seed(seed)
    if kind == "cnn_bn":
        shape = (2, 8, 8)

        def net():
            return create_model("small_cnn", num_classes=C, input_shape=shape, widths=(3, 4))
    else:
        shape = (6,)
        hidden = {"mlp": (7,), "mlp_bn": (7, 5)}[kind]

        def net():
            return create_model("mlp", num_classes=C, feature_dim=6, hidden=hidden, batchnorm=kind != "mlp")

    student = net().double().train()
    teacher = GatedTeacher(net(), embedding=3, hidden=5).double().train()
    x, xm = torch.randn(10, *shape, dtype=torch.float64), torch.randn(9, *shape, dtype=torch.float64)
    y, ym = torch.randint(0, C, (10,)), torch.randint(0, C, (9,))
    return student, teacher, x, y, xm, ym


def teacher_soft_labels(teacher, x, y):
    """The teacher's soft labels with their graph, leaving its BatchNorm running statistics alone."""
    buffers = {k: b.clone() for k, b in teacher.named_buffers()}
    return functional_call(teacher, (dict(teacher.named_parameters()), buffers), (x, y))[0]


def targets_for(teacher):
    return lambda step: soft_cross_entropy(teacher_soft_labels(teacher, step.x, step.context))


def brute_force(student, teacher, x, y, xm, ym, lr):
    """d L_clean(w - lr grad_w L~(w, alpha)) / d alpha by differentiating through the step."""
    theta = dict(student.named_parameters())
    bufs = {k: b.clone() for k, b in student.named_buffers()}
    q = teacher_soft_labels(teacher, x, y)
    logits = functional_call(student, (theta, bufs), (x,))
    loss = -(q * F.log_softmax(logits, dim=1)).sum(1).mean()
    grads = torch.autograd.grad(loss, list(theta.values()), create_graph=True)
    ahead = {k: p - lr * g for (k, p), g in zip(theta.items(), grads, strict=True)}
    bufs = {k: b.clone() for k, b in student.named_buffers()}
    meta = F.cross_entropy(functional_call(student, (ahead, bufs), (xm,)), ym)
    return flat(torch.autograd.grad(meta, list(teacher.parameters())))


def real_sgd_step(student, teacher, x, y, lr):
    """One real student step on the teacher's (detached) soft labels; returns the recorded step."""
    old = snapshot(parameters_of(student))
    with torch.no_grad():
        q = teacher_soft_labels(teacher, x, y)
    optimizer = torch.optim.SGD(student.parameters(), lr=lr)
    optimizer.zero_grad()
    soft_cross_entropy(q)(student(x)).mean().backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return StudentStep(old, x, lr, context=y)


def teacher_grad(teacher, backward_fn):
    teacher.zero_grad(set_to_none=True)
    backward_fn()
    return flat([torch.zeros_like(p) if p.grad is None else p.grad for p in teacher.parameters()])


# ------------------------------------------------------------------------ (a) one step: exact
@pytest.mark.parametrize("kind", ["mlp", "mlp_bn", "cnn_bn"])
@pytest.mark.parametrize("path", ["fpmg", "second_order"])
def test_one_step_meta_gradient_matches_brute_force(kind, path):
    student, teacher, x, y, xm, ym = make(kind)
    lr = 0.3
    expected = brute_force(student, teacher, x, y, xm, ym, lr)
    step = real_sgd_step(student, teacher, x, y, lr)
    _, g = meta_loss_and_grad(student, parameters_of(student), xm, ym, F.cross_entropy)
    fn = fpmg_backward if path == "fpmg" else mixed_hessian_backward
    inputs = list(teacher.parameters())
    got = teacher_grad(teacher, lambda: fn(student, [step], g, targets_for(teacher), inputs=inputs))
    assert rel_err(got, expected) < TOL
    assert expected.abs().max() > 1e-6  # a non-trivial gradient
    assert all(p.grad is None for p in student.parameters())  # nothing leaked into the student


def test_mlc_lookahead_objective_matches_brute_force():
    """MLC's virtual step from the same weights reaches the same point: the same exact gradient."""
    student, teacher, x, y, xm, ym = make("mlp_bn")
    expected = brute_force(student, teacher, x, y, xm, ym, 0.3)
    loss = soft_cross_entropy(teacher_soft_labels(teacher, x, y))(student(x)).mean()
    meta = lookahead_meta_loss(student, loss, xm, ym, F.cross_entropy, lr=0.3)
    assert rel_err(flat(torch.autograd.grad(meta, list(teacher.parameters()))), expected) < TOL


# ------------------------------------------------------------------------ (b) k steps: Prop. 2
def test_k_step_approximation_matches_its_formula_by_hand():
    """A linear student and a linear-softmax teacher, where eq. 11 is explicit.

    For logits ``z = W x + b`` and ``q = softmax(A x + c)``: ``J_w(log p_i) g = d_i - (p_i . d_i) 1`` with
    ``d_i = G x_i + g_b``, and ``J_alpha(q_i)^T v = (q_i * (v - q_i . v)) [x_i; 1]``, so eq. 11 reads
    ``grad_(A, c) = sum_tau eta_tau gamma^(t - tau) mean_i r_i [x_i; 1]^T``,
    ``r_i = q_i * (d_i - q_i . d_i)``, with ``g = (G, g_b)`` the clean-loss gradient at the final weights.
    """
    torch.manual_seed(1)
    d, k, gamma = 5, 3, 0.8
    student = create_model("linear", num_classes=C, feature_dim=d).double().train()
    teacher = nn.Linear(d, C).double()
    batches = [torch.randn(6 + i, d, dtype=torch.float64) for i in range(k)]
    lrs = [0.5, 0.2, 0.4]
    xm, ym = torch.randn(7, d, dtype=torch.float64), torch.randint(0, C, (7,))

    def soft(x):
        return F.softmax(teacher(x), dim=1)

    steps = []
    for x, lr in zip(batches, lrs, strict=True):
        old = snapshot(parameters_of(student))
        with torch.no_grad():
            q = soft(x)
        student.zero_grad()
        soft_cross_entropy(q)(student(x)).mean().backward()
        with torch.no_grad():
            for p in student.parameters():
                p -= lr * p.grad
        steps.append(StudentStep(old, x, lr))
    # By hand: the clean gradient at the final weights, then eq. 11.
    with torch.no_grad():
        weight, bias = student.head.weight, student.head.bias
        err = F.softmax(xm @ weight.T + bias, dim=1) - F.one_hot(ym, C).double()
        big_g, g_b = err.T @ xm / len(ym), err.mean(0)
        grad_a, grad_c = torch.zeros(C, d, dtype=torch.float64), torch.zeros(C, dtype=torch.float64)
        for tau, (x, lr) in enumerate(zip(batches, lrs, strict=True)):
            q = soft(x)
            direction = x @ big_g.T + g_b
            r = q * (direction - (q * direction).sum(1, keepdim=True))
            coef = lr * gamma ** (k - 1 - tau) / len(x)
            grad_a += coef * r.T @ x
            grad_c += coef * r.sum(0)
    _, g = meta_loss_and_grad(student, parameters_of(student), xm, ym, F.cross_entropy)

    def targets(step):
        return soft_cross_entropy(soft(step.x))

    for fn in (fpmg_backward, mixed_hessian_backward):
        teacher.zero_grad()
        fn(student, steps, g, targets, gamma=gamma)
        assert rel_err(teacher.weight.grad, grad_a) < TOL and rel_err(teacher.bias.grad, grad_c) < TOL


def test_k_step_fpmg_sums_discounted_mixed_hessians_at_each_steps_old_weights():
    """A nonlinear student with BatchNorm: FPMG over k = 3 steps equals eq. 8 built term by term."""
    student, teacher, _, _, xm, ym = make("mlp_bn", seed=2)
    gamma, lrs = 0.7, [0.3, 0.1, 0.2]
    steps = []
    for lr in lrs:
        x, y = torch.randn(8, 6, dtype=torch.float64), torch.randint(0, C, (8,))
        steps.append(real_sgd_step(student, teacher, x, y, lr))
    _, g = meta_loss_and_grad(student, parameters_of(student), xm, ym, F.cross_entropy)
    expected = 0
    for tau, step in enumerate(steps):  # -eta_tau gamma^(t - tau) grad_alpha <grad_w L~_tau(w^tau), g>
        theta = {k: p.clone().requires_grad_() for k, p in step.params.items()}
        bufs = {k: b.clone() for k, b in student.named_buffers()}
        logits = functional_call(student, (theta, bufs), (step.x,))
        q = teacher_soft_labels(teacher, step.x, step.context)
        loss = -(q * F.log_softmax(logits, dim=1)).sum(1).mean()
        grads = torch.autograd.grad(loss, list(theta.values()), create_graph=True)
        inner = sum((gr * g[k]).sum() for gr, k in zip(grads, theta, strict=True))
        coef = -step.lr * gamma ** (len(steps) - 1 - tau)
        expected = expected + coef * flat(torch.autograd.grad(inner, list(teacher.parameters())))
    inputs = list(teacher.parameters())
    got = teacher_grad(
        teacher, lambda: fpmg_backward(student, steps, g, targets_for(teacher), gamma=gamma, inputs=inputs)
    )
    assert rel_err(got, expected) < TOL
    assert discounts(lrs, gamma) == pytest.approx([0.3 * 0.49, 0.1 * 0.7, 0.2])


# ------------------------------------------------------------------------ (c) the gate
@pytest.mark.parametrize("strategy", ["random", "adversarial", "mixed"])
def test_injection_corrupts_half_to_wrong_classes(strategy):
    y = torch.randint(0, 10, (64,))
    logits = torch.randn(64, 10)
    out, clean = inject_noise(y, logits, strategy=strategy, generator=torch.Generator().manual_seed(0))
    assert (~clean).sum() == 32 and (out[~clean] != y[~clean]).all() and (out[clean] == y[clean]).all()
    if strategy == "adversarial":  # the teacher's best wrong class
        masked = logits.scatter(1, y[:, None], float("-inf"))
        assert (out[~clean] == masked.argmax(1)[~clean]).all()


def test_gate_learns_to_separate_clean_from_corrupted_labels():
    """Gaussian blobs, the teacher trained on eq. 12's CE + BCE only; the gate ranks held-out labels."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    centres = torch.randn(C, 8) * 2.0

    def draw(n):
        y = torch.randint(0, C, (n,), generator=gen)
        return centres[y] + torch.randn(n, 8, generator=gen), y

    teacher = GatedTeacher(
        create_model("mlp", num_classes=C, feature_dim=8, hidden=(32,)), embedding=8, hidden=16
    )
    optimizer = torch.optim.Adam(teacher.parameters(), lr=1e-2)
    for _ in range(300):
        x, y = draw(64)
        logits, h = teacher.classifier(x, return_features=True)
        labels, clean = inject_noise(y, logits, strategy="mixed", generator=gen)
        bce = F.binary_cross_entropy_with_logits(teacher.gate_logit(h, labels), clean.float())
        optimizer.zero_grad()
        (F.cross_entropy(logits, y) + bce).backward()
        optimizer.step()
    x, y = draw(2000)
    noisy = torch.where(torch.rand(2000, generator=gen) < 0.5, torch.randint(0, C, (2000,), generator=gen), y)
    teacher.eval()
    with torch.no_grad():
        _, gate = teacher(x, noisy)
    auc = roc_auc(gate.numpy(), (noisy == y).numpy())
    print(f"gate AUC {auc:.3f}")
    assert auc > 0.95, auc


# ------------------------------------------------------------------------ the methods
DIGITS = ["dataset=digits", "meta.size=100", "epochs=2", "batch_size=64", "noise.rate=0.4", "quiet=true"]


def test_registered_with_a_meta_set_requirement():
    assert {"mlc", "emlc"} <= set(list_methods())
    assert get_method_class("mlc").requires_meta and get_method_class("emlc").requires_meta


def test_command_line_contract(tmp_path, capsys):
    from noisy_labels.cli import main

    assert main(["methods"]) == 0
    assert {"mlc", "emlc"} <= set(capsys.readouterr().out.split())
    for method, steps in (("emlc", "5"), ("mlc", None)):
        args = ["run", "--set", "dataset=digits", "--set", f"method={method}", "--set", "meta.size=100"]
        args += ["--set", "epochs=1", "--out", str(tmp_path / method)]
        if steps:
            args += ["--set", f"emlc.steps={steps}"]
        assert main(args) == 0
        out = capsys.readouterr().out
        assert "cleanness_auc=" in out and "label_acc=" in out


@pytest.mark.parametrize("setting", ["emlc.injection=flip", "emlc.steps=0", "mlc.meta_loss=mse"])
def test_bad_settings_are_clear_errors(tmp_path, setting):
    method = setting.split(".")[0]
    with pytest.raises(ValueError, match=setting.split("=")[0]):  # when the config is read
        load_config(None, [*DIGITS, f"method={method}", setting, f"out={tmp_path / 'r'}"])


def float64_emlc(*settings):
    """A built EMLC on digits (an MLP with BatchNorm) in float64, with float64 meta batches."""
    model = ["model.name=mlp", "model.params={hidden: [16], batchnorm: true}", "batch_size=32"]
    cfg = load_config(None, [*DIGITS, *model, "method=emlc", *settings])
    run = build_experiment(cfg)
    engine, built = run.engine, run.method
    for module in built.eval_modules():
        module.double().train()
    draw = run.ctx.meta_batch
    run.ctx.meta_batch = lambda *a, **k: (lambda x, y: (x.double(), y))(*draw(*a, **k))
    return built, engine


@pytest.mark.parametrize(("setting", "expected"), [(None, "share"), ("emlc.student_clean_weight=1", 1.0)])
def test_student_clean_term_defaults_to_the_clean_sets_share(setting, expected):
    """Issue 18: a clean sample weighs as much as a noisy one per epoch unless the weight is set."""
    built, engine = float64_emlc(*([setting] if setting else []))
    share = len(engine.data.meta_y) / engine.ctx.num_train
    assert 0 < share < 1
    assert built.params.student_clean_weight == pytest.approx(share if expected == "share" else expected)


@pytest.mark.parametrize("method", ["emlc", "mlc"])
def test_a_student_trained_on_the_clean_set_is_selected_on_a_held_out_share(method):
    """Selecting on samples the student fits would favour memorisation: 20% of the meta set selects only."""
    run = build_experiment(load_config(None, [*DIGITS, f"method={method}", f"{method}.select_by_clean=true"]))
    built, full_y = run.method, run.data.meta_y
    held_x, held_y = built.selection_set
    kept_x, kept_y = built.ctx.meta_set()  # what the student, the teacher and the meta-gradient draw from
    assert len(held_y) == 20 and len(kept_y) == 80 and len(held_x) == 20 and len(kept_x) == 80
    counts = torch.bincount(torch.cat([held_y, kept_y]), minlength=10)
    assert torch.equal(counts, torch.bincount(full_y, minlength=10))
    rows = {tuple(r.tolist()) for r in kept_x}
    assert not any(tuple(r.tolist()) in rows for r in held_x)  # disjoint
    assert len(built.ctx.meta_batch(500)[1]) == 80
    assert built.on_epoch_end(0)["clean_acc"] * 20 % 1 == pytest.approx(0, abs=1e-5)  # scored on the 20


@pytest.mark.parametrize(
    "settings",
    [[], ["emlc.select_by_clean=true", "emlc.student_clean_weight=0"], ["emlc.selection_holdout=0"]],
)
def test_the_whole_meta_set_trains_unless_the_student_is_both_trained_and_selected_on_it(settings):
    run = build_experiment(load_config(None, [*DIGITS, "method=emlc", *settings]))
    assert run.method.selection_set is None
    assert torch.equal(run.method.ctx.meta_set()[1], run.data.meta_y)


@pytest.mark.parametrize("steps", [1, 3])
def test_fpmg_and_second_order_train_identically(steps):
    runs = []
    for path, weight in (("fast", 1), ("second_order", 1), ("fast", 0)):
        built, engine = float64_emlc(
            f"emlc.steps={steps}", f"emlc.meta_grad={path}", f"emlc.meta_weight={weight}"
        )
        for batch in itertools.islice(engine.batches(), 6):
            built.train_step(Batch(batch.index, batch.raw, batch.x.double(), batch.y))
        runs.append(flat(built.teacher.parameters()).detach())
    fast, slow, without_meta = runs
    assert rel_err(fast, slow) < 1e-8
    assert rel_err(fast, without_meta) > 1e-6  # the meta term moved the teacher


def test_resume_restores_teacher_and_selection(tmp_path):
    """Two epochs, then one more after a resume, equals three epochs in one go (k = 3 windows)."""
    settings = [*DIGITS, "method=emlc", "emlc.steps=3", "emlc.select_by_clean=true", "schedule.name=constant"]
    full, resumed, state = three_epochs_and_two_plus_one(tmp_path, settings)
    assert {"model", "teacher", "teacher_optimizer", "selected", "best_clean_acc"} <= set(state)
    for key in ("last_test_acc", "label_acc", "cleanness_auc"):
        assert resumed[key] == full[key], key
    records = [json.loads(line) for line in (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()]
    assert all(0.0 <= r["train_clean_acc"] <= 1.0 for r in records)


# ------------------------------------------------------------------------ (d) end to end on MNIST
MNIST = MNIST_UNIF60


@functools.cache
def mnist_summary(root, out, method, *settings, flip_mlc=False):
    """Summary of one MNIST run (cached: CE is shared by several tests), on one thread."""
    exact = emlc_module.lookahead_meta_loss

    def flipped(*args, **kwargs):
        return -exact(*args, **kwargs)

    name = "-".join([method, *settings, "flipped" if flip_mlc else "exact"]).replace("=", "_")
    cfg = load_config(None, [*MNIST, f"root={root}", f"method={method}", *settings, f"out={out}/{name}"])
    with (
        one_torch_thread(),
        mock.patch.object(emlc_module, "lookahead_meta_loss", flipped if flip_mlc else exact),
    ):
        return run_experiment(cfg)


@pytest.fixture(scope="module")
def mnist(shared_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("mnist_emlc")
    return functools.partial(mnist_summary, str(shared_data / "mnist"), str(out))


@pytest.mark.slow
def test_emlc_beats_cross_entropy_on_mnist_with_60_percent_uniform_noise(mnist):
    ce, emlc = mnist("ce")["last_test_acc"], mnist("emlc")
    print(f"emlc: last {emlc['last_test_acc']:.3f} (CE {ce:.3f}), label acc {emlc['label_acc']:.3f}")
    assert emlc["last_test_acc"] > ce + 0.2
    assert emlc["cleanness_auc"] > 0.9


@pytest.mark.slow
def test_emlc_meta_gradient_alone_corrects_labels(mnist):
    """The teacher trained by the meta term only, against the same with the meta-gradient's sign flipped
    (the noisy labels themselves are 46% right)."""
    meta_only = ("emlc.ce_weight=0", "emlc.bce_weight=0")
    exact = mnist("emlc", *meta_only)
    flipped = mnist("emlc", *meta_only, "emlc.meta_weight=-1")
    print(f"emlc meta only: label acc {exact['label_acc']:.3f}, flipped {flipped['label_acc']:.3f}")
    assert exact["label_acc"] > flipped["label_acc"] + 0.2
    assert exact["last_test_acc"] > flipped["last_test_acc"]


@pytest.mark.slow
def test_mlc_beats_cross_entropy_and_its_flipped_meta_gradient(mnist):
    ce, mlc, flipped = mnist("ce")["last_test_acc"], mnist("mlc"), mnist("mlc", flip_mlc=True)
    print(
        f"mlc: last {mlc['last_test_acc']:.3f} (CE {ce:.3f}), "
        f"label acc {mlc['label_acc']:.3f}, flipped {flipped['label_acc']:.3f}"
    )
    assert mlc["last_test_acc"] > ce + 0.15
    assert mlc["label_acc"] > flipped["label_acc"] + 0.2
