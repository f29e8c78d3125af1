"""DMLP: IPC's closed form and gradient, EAC's exchange, the purifier on a noisy problem, the method."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from noisy_labels.cli import main
from noisy_labels.purify import DMLPPurifier
from noisy_labels.purify.eac import eac_loss, exchange_labels
from noisy_labels.purify.ipc import RowAdam, ipc_value_and_grad, ridge_lambda, ridge_operator
from shared_settings import noisy_blobs

D64 = torch.float64


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: small ops, one thread


def _problem(b, d, n_v=30, c=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    ft = torch.randn(b, d, generator=g, dtype=D64) + 0.5  # non-zero mean: the intercept matters
    fv = torch.randn(n_v, d, generator=g, dtype=D64) + 0.5
    logits = torch.randn(b, c, generator=g, dtype=D64)
    yv = F.one_hot(torch.arange(n_v) % c, c).to(D64)
    return ft, fv, logits, yv


def _direct_prediction(ft, fv, p, lam, intercept):
    """Eq. 5 by a direct solve of the ridge normal equations, with an unpenalised bias column."""
    if intercept:
        ft = torch.cat([ft, torch.ones(len(ft), 1, dtype=D64)], 1)
        fv = torch.cat([fv, torch.ones(len(fv), 1, dtype=D64)], 1)
    penalty = torch.full((ft.shape[1],), lam, dtype=D64)
    if intercept:
        penalty[-1] = 0.0
    w = torch.linalg.solve(ft.T @ ft + torch.diag(penalty), ft.T @ p)
    return fv @ w


def _direct_loss(ft, fv, logits, yv, lam, intercept, alpha, entropy_weight, eps=1e-6):
    pred = _direct_prediction(ft, fv, torch.softmax(alpha * logits, 1), lam, intercept)
    q = pred.clamp_min(eps)
    return ((pred - yv).square().sum(1) - entropy_weight * (q * q.log()).sum(1)).mean()


# b > d gives the primal form, b < d the dual (Woodbury) form; both must equal the direct solve.
@pytest.mark.parametrize(
    ("b", "d", "form"), [(40, 12, "primal"), (12, 40, "dual"), (40, 12, "dual"), (12, 40, "primal")]
)
@pytest.mark.parametrize("intercept", [True, False])
def test_ridge_operator_matches_direct_solve(b, d, form, intercept):
    ft, fv, logits, _ = _problem(b, d)
    p = torch.softmax(logits, 1)
    op = ridge_operator(ft, fv, ridge=0.05, fit_intercept=intercept, form=form)
    assert op.form == form
    centred = ft - ft.mean(0) if intercept else ft
    assert op.lam == pytest.approx(ridge_lambda(centred, 0.05))
    expected = _direct_prediction(ft, fv, p, op.lam, intercept)
    torch.testing.assert_close(op.apply(p), expected, rtol=1e-9, atol=1e-10)
    if intercept:  # an unpenalised bias reproduces the constant: every predicted row sums to one
        torch.testing.assert_close(op.apply(p).sum(1), torch.ones(len(fv), dtype=D64))


@pytest.mark.parametrize(("b", "d"), [(40, 12), (12, 40)])
@pytest.mark.parametrize("alpha", [1.0, 2.5])
def test_ipc_gradient_matches_autograd_through_direct_solve(b, d, alpha):
    ft, fv, logits, yv = _problem(b, d, seed=1)
    op = ridge_operator(ft, fv, ridge=0.1)
    loss, grad = ipc_value_and_grad(op, logits, yv, alpha=alpha, entropy_weight=0.7)
    y = logits.clone().requires_grad_(True)
    ref = _direct_loss(ft, fv, y, yv, op.lam, True, alpha, 0.7)
    ref.backward()
    torch.testing.assert_close(loss, ref.detach(), rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(grad, y.grad, rtol=1e-7, atol=1e-12)


def test_ridge_operator_rejects_no_regularisation():
    ft, fv, _, _ = _problem(10, 20)
    with pytest.raises(ValueError, match="ridge must be > 0"):
        ridge_operator(ft, fv, ridge=0.0)


def test_row_adam_equals_adam_on_its_rows_and_leaves_other_rows_alone():
    g = torch.Generator().manual_seed(0)
    params = torch.randn(6, 3, generator=g)
    reference = params[2:5].clone().requires_grad_(True)
    torch_adam = torch.optim.Adam([reference], lr=0.1, betas=(0.5, 0.999))
    ours = RowAdam((6, 3), lr=0.1, betas=(0.5, 0.999))
    before = params.clone()
    for _ in range(4):
        grad = torch.randn(3, 3, generator=g)
        reference.grad = grad.clone()
        torch_adam.step()
        ours.step(params, grad, slice(2, 5))
    torch.testing.assert_close(params[2:5], reference.detach())
    torch.testing.assert_close(params[[0, 1, 5]], before[[0, 1, 5]])


def test_exchange_is_the_ema_of_label_distributions():
    g = torch.Generator().manual_seed(0)
    y, z = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    full = exchange_labels(y, z, momentum=1.0, alpha=2.0)
    torch.testing.assert_close(torch.softmax(2.0 * full, 1), torch.softmax(z, 1))
    half = exchange_labels(y, z, momentum=0.3, alpha=2.0)
    expected = 0.7 * torch.softmax(2.0 * y, 1) + 0.3 * torch.softmax(z, 1)
    torch.testing.assert_close(torch.softmax(2.0 * half, 1), expected)
    torch.testing.assert_close(
        exchange_labels(y, z, momentum=0.0, alpha=2.0).exp().sum(1) ** 0, torch.ones(5)
    )


def test_eac_loss_is_cross_entropy_plus_entropy():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    targets = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
    p = torch.softmax(logits, 1)
    ce = -(targets * p.log()).sum(1)
    ent = -(p * p.log()).sum(1)
    assert float(eac_loss(logits, targets, entropy_weight=0.5)) == pytest.approx(
        float((ce + 0.5 * ent).mean())
    )


# ---------------------------------------------------------------------------------- the purifier


FAST = {"epochs": 30, "batch_size": 500, "exchange_every": 10, "eac_batch_size": 100}


@pytest.fixture(scope="module")
def blobs():
    return noisy_blobs()


def test_purifier_outputs_and_history(blobs):
    x, noisy, xv, yv, clean = blobs
    res = DMLPPurifier(**FAST).fit(x, noisy, xv, yv, true_labels=clean)
    n, c = len(x), 4
    assert res.soft_labels.shape == (n, c) and res.soft_labels.dtype == np.float32
    np.testing.assert_allclose(res.soft_labels.sum(1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(res.hard_labels, res.soft_labels.argmax(1))
    np.testing.assert_allclose(res.cleanness, res.soft_labels[np.arange(n), noisy])
    assert [r["epoch"] for r in res.history] == list(range(1, 31))
    assert sum(r.get("exchanged", False) for r in res.history) == 3
    assert res.history[-1]["label_acc"] == pytest.approx((res.hard_labels == clean).mean())


def test_purification_raises_label_accuracy_by_a_wide_margin(blobs):
    """50% symmetric noise: IPC alone, EAC alone and both must clean most labels.

    A sign error in IPC's gradient, an exchange that never runs (the reference code's bug) or labels
    that leave the simplex all fail these margins.
    """
    x, noisy, xv, yv, clean = blobs
    noisy_acc = (noisy == clean).mean()
    accs = {}
    for name, kw in {"both": {}, "ipc": {"eac": False, "ipc_lr": 0.1}, "eac": {"ipc": False}}.items():
        res = DMLPPurifier(**{**FAST, **kw}).fit(x, noisy, xv, yv)
        accs[name] = (res.hard_labels == clean).mean()
    assert noisy_acc < 0.55
    assert accs["ipc"] > noisy_acc + 0.25, accs
    assert accs["eac"] > noisy_acc + 0.3, accs
    assert accs["both"] > noisy_acc + 0.3, accs
    # The cleanness score ranks the noisy labels below the clean ones.
    res = DMLPPurifier(**FAST).fit(x, noisy, xv, yv)
    wrong = noisy != clean
    assert res.cleanness[wrong].mean() < res.cleanness[~wrong].mean() - 0.3


def test_purifier_is_deterministic(blobs):
    x, noisy, xv, yv, _ = blobs
    a = DMLPPurifier(**FAST, seed=3).fit(x, noisy, xv, yv)
    b = DMLPPurifier(**FAST, seed=3).fit(x, noisy, xv, yv)
    np.testing.assert_array_equal(a.soft_labels, b.soft_labels)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a: {**a, "noisy": a["noisy"][:-1]}, "same number of rows"),
        (lambda a: {**a, "xv": a["xv"][:, :-1]}, "columns"),
        (lambda a: {**a, "noisy": np.where(a["noisy"] == 0, 7, a["noisy"]), "c": 4}, "outside"),
        (lambda a: {**a, "yv": np.where(a["yv"] == 3, 0, a["yv"]), "c": 4}, r"class\(es\) \[3\]"),
        (
            lambda a: {**a, "x": np.where(np.arange(a["x"].size).reshape(a["x"].shape) == 5, np.nan, a["x"])},
            "NaN",
        ),
    ],
)
def test_purifier_rejects_bad_input(blobs, change, message):
    x, noisy, xv, yv, _ = blobs
    a = change({"x": x, "noisy": noisy, "xv": xv, "yv": yv, "c": None})
    with pytest.raises(ValueError, match=message):
        DMLPPurifier(epochs=1).fit(a["x"], a["noisy"], a["xv"], a["yv"], num_classes=a["c"])


def test_purifier_rejects_bad_params(blobs):
    x, noisy, xv, yv, _ = blobs
    with pytest.raises(ValueError, match="momentum"):
        DMLPPurifier(momentum=1.5).fit(x, noisy, xv, yv)
    with pytest.raises(ValueError, match="at least one"):
        DMLPPurifier(ipc=False, eac=False).fit(x, noisy, xv, yv)


# ---------------------------------------------------------------------------------- the method
@pytest.fixture(scope="module")
def feature_file(tmp_path_factory):
    """1200 blob samples (the run carves its 100 trusted ones) and 400 test samples, as an .npz data set."""
    x, _, _, _, y = noisy_blobs(n=1600, n_clean=0, seed=1)
    path = tmp_path_factory.mktemp("feat") / "blobs.npz"
    x = x.astype(np.float32)
    np.savez(path, x=x[:1200], y=y[:1200], x_test=x[1200:], y_test=y[1200:])
    return path


FAST_RUN = {
    "method": "dmlp",
    "meta.size": 100,
    "noise.rate": 0.5,
    "epochs": 3,
    "quiet": "true",
    "optim.lr": 0.05,
    "dmlp.epochs": 20,
    "dmlp.batch_size": 500,
    "dmlp.exchange_every": 10,
    "dmlp.eac_batch_size": 100,
}


def _run_args(tmp_path, feature_file, *extra):
    """``noisy-labels run`` arguments of a small DMLP run on the blob features, then ``extra``."""
    sets = {"dataset": feature_file, **FAST_RUN}
    args = ["run", *(a for key, value in sets.items() for a in ("--set", f"{key}={value}"))]
    return [*args, "--out", str(tmp_path / "run"), *extra]


def _run(tmp_path, feature_file, *extra):
    assert main(_run_args(tmp_path, feature_file, *extra)) == 0
    out = tmp_path / "run"
    return out, json.loads((out / "summary.json").read_text())


def test_dmlp_naive_runs_and_reports_purified_label_accuracy(tmp_path, feature_file):
    out, summary = _run(tmp_path, feature_file)
    record = json.loads((out / "dmlp_purify.json").read_text())
    assert summary["method"] == "dmlp"
    assert summary["label_acc"] == pytest.approx(record["label_acc"])
    assert record["label_acc"] > record["label_acc_before"] + 0.25
    assert summary["best_test_acc"] > 0.8
    corrected = np.load(out / "corrected_labels.npy")
    noisy = np.load(out / "split.npz")["noisy_labels"]  # the given labels stay recorded as given
    assert corrected.shape == noisy.shape and (corrected != noisy).mean() > 0.2
    assert np.load(out / "soft_labels.npy").shape == (len(noisy), 4)


def test_dmlp_x_trains_another_method_on_the_purified_labels(tmp_path, feature_file):
    _, summary = _run(
        tmp_path, feature_file, "--set", "dmlp.then=bootstrap_soft", "--set", "bootstrap_soft.beta=0.9"
    )
    assert summary["label_acc"] > 0.75 and summary["best_test_acc"] > 0.8


@pytest.mark.parametrize("inner", ["coteaching", "dividemix", "elr_plus", "cdr"])
def test_dmlp_x_with_the_sample_selection_methods(tmp_path, feature_file, inner):
    """DMLP-DivideMix, DMLP-ELR+, DMLP-Co-teaching, DMLP-CDR (the paper's Tables 1, 4, 6): one option each."""
    out, summary = _run(tmp_path, feature_file, "--set", f"dmlp.then={inner}")
    purified = np.load(out / "corrected_labels.npy")
    assert summary["label_acc"] > 0.75 and summary["best_test_acc"] > 0.8
    assert np.load(out / "cleanness.npy").shape == purified.shape


def test_dmlp_rejects_itself_as_the_inner_method(tmp_path, feature_file, capsys):
    code = main(_run_args(tmp_path, feature_file, "--set", "dmlp.then=dmlp"))
    assert code == 2 and "dmlp.then cannot be 'dmlp'" in capsys.readouterr().err


def test_dmlp_soft_targets_and_resume(tmp_path, feature_file):
    """Soft-label CE (DMLP-Naive with soft targets); an interrupted run resumes with the inner state."""
    import yaml

    out, first = _run(tmp_path, feature_file, "--set", "dmlp.targets=soft", "--set", "epochs=2")
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    cfg["epochs"] = 3  # as if the run had been stopped after 2 of 3 epochs
    (out / "config.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["run", "--resume", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["epochs"] == 3 and summary["label_acc"] == pytest.approx(first["label_acc"])
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 3 and json.loads(lines[2])["test_acc"] > 0.8


def test_keep_given_relabels_only_where_the_purifier_is_sure(blobs):
    from noisy_labels.purify import hard_labels

    x, noisy, xv, yv, clean = blobs
    res = DMLPPurifier(**FAST).fit(x, noisy, xv, yv)
    argmax = hard_labels(res.soft_labels, noisy, 0.0)
    kept = hard_labels(res.soft_labels, noisy, 0.1)
    np.testing.assert_array_equal(argmax, res.hard_labels)
    changed_argmax, changed_kept = (argmax != noisy).sum(), (kept != noisy).sum()
    assert 0 < changed_kept < changed_argmax  # fewer changes, and only to the argmax class
    assert np.all((kept == noisy) | (kept == argmax))
    assert np.all(hard_labels(res.soft_labels, noisy, 1.0) == argmax)  # kept only when it is the argmax


def test_dmlp_trains_on_the_purifiers_hard_labels_with_keep_given(tmp_path, feature_file):
    """``dmlp.keep_given`` reaches the labels the inner method trains on, not only the purifier's output."""
    out, summary = _run(tmp_path, feature_file, "--set", "dmlp.keep_given=1.0")
    soft = np.load(out / "soft_labels.npy")
    corrected = np.load(out / "corrected_labels.npy")
    np.testing.assert_array_equal(
        corrected, soft.argmax(1)
    )  # keep_given=1 keeps a label only if it is the argmax
    out2, _ = _run(tmp_path / "b", feature_file, "--set", "dmlp.keep_given=0.001")
    given = np.load(out2 / "split.npz")["noisy_labels"]
    assert (np.load(out2 / "corrected_labels.npy") != given).mean() < (corrected != given).mean()


def test_dmlp_x_assumes_the_noise_rate_estimated_for_the_purified_labels(feature_file):
    """DMLP-Co-teaching forgets the estimated share of wrong purified labels, not the given labels' 60%."""
    from noisy_labels.engine import build_experiment, load_config

    sets = {**FAST_RUN, "dataset": feature_file, "noise.rate": 0.6, "meta.size": 300}
    sets["dmlp.then"] = "coteaching"
    run = build_experiment(load_config(None, [f"{key}={value}" for key, value in sets.items()]))
    dmlp, ctx = run.method, run.ctx
    purified_error = (dmlp.purified != ctx.true_labels.to(dmlp.purified.device)).float().mean().item()
    nominal = ctx.assumed_noise_rate()
    assert nominal > 0.4  # the given labels: 60% redrawn among the 4 classes
    assert dmlp.inner.forget_rate == pytest.approx(dmlp.purified_noise_rate)
    assert abs(dmlp.inner.forget_rate - purified_error) < 0.06
    assert abs(dmlp.inner.forget_rate - nominal) > 0.25
    assert dmlp.inner.ctx.assumed_noise() == (ctx.assumed_noise()[0], dmlp.purified_noise_rate)


def test_with_train_subset_positions_and_the_features_file_are_of_the_whole_set(tmp_path, feature_file):
    """split.npz's positions index the data set's whole training set; DMLP's file has a row per sample."""
    whole = np.load(feature_file)
    np.save(tmp_path / "whole.npy", whole["x"])
    subset = ["--set", "train_subset=600", "--set", f"dmlp.features={tmp_path / 'whole.npy'}"]
    out, summary = _run(tmp_path, feature_file, *subset, "--set", "noise.rate=0.0")
    split = np.load(out / "split.npz")
    assert abs(len(split["train_index"]) + len(split["meta_index"]) - 600) <= 4  # per-class rounding
    assert split["train_index"].max() >= 600  # positions in the whole set, not in the subset
    np.testing.assert_array_equal(split["noisy_labels"], whole["y"][split["train_index"]])  # no noise
    np.save(tmp_path / "subset.npy", whole["x"][:600])
    bad = ["--set", "train_subset=600", "--set", f"dmlp.features={tmp_path / 'subset.npy'}"]
    assert main(_run_args(tmp_path / "b", feature_file, *bad)) == 2
