"""LNL-flywheel: E/M-step formulas against hand-computed values, T recovery with f given, the whole loop
against CE and against a broken cycle, the Table 6 ablation switches, resume and the T_c plot."""

import json
from unittest import mock

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from noisy_labels import cli
from noisy_labels.config import ConfigError
from noisy_labels.engine import Engine, build_experiment, load_config, run_experiment
from noisy_labels.losses import mean_soft_cross_entropy
from noisy_labels.methods import flywheel as fw
from noisy_labels.methods._selection import mix_pairs
from noisy_labels.methods.flywheel_em import (
    clean_posterior,
    confidence_regularizer,
    corruption_matrix,
    corruption_transition,
    estimate_transition,
    main_loss,
    per_sample_epsilon,
    refurbished_targets,
    update_gamma,
)
from noisy_labels.metrics import transition_error
from noisy_labels.ssl.simclr import nt_xent_loss

D = torch.float64


def t(values):
    return torch.tensor(values, dtype=D)


# ============================================================================ main EM (eq. 4, 6, 8, 9)
def test_clean_posterior_eq4_by_hand():
    q = clean_posterior(0.3, t([0.8, 0.05, 0.5]), t([0.1, 0.1, 0.4]))
    expected = [0.24 / (0.24 + 0.07), 0.015 / (0.015 + 0.07), 0.15 / (0.15 + 0.28)]
    assert q.tolist() == pytest.approx(expected, rel=1e-12)
    # a constant eps (1/K, before the auxiliary cycle provides eps_i) broadcasts
    assert clean_posterior(0.5, t([0.2]), 0.1).item() == pytest.approx(0.1 / 0.15)
    assert update_gamma(q).item() == pytest.approx(sum(expected) / 3)  # eq. 6


def test_confidence_regularizer_and_main_loss_by_hand():
    logits = t([[1.0, 0.0, -1.0], [0.0, 2.0, 0.5]])
    labels, prior = torch.tensor([0, 2]), t([0.5, 0.3, 0.2])
    p = F.softmax(logits, dim=1).tolist()
    eta = sum(sum(prior[k].item() * np.log(p[i][k] + 1e-8) for k in range(3)) for i in range(2)) / 2
    assert confidence_regularizer(logits, prior).item() == pytest.approx(eta, rel=1e-6)
    ce = -(np.log(p[0][0]) + np.log(p[1][2])) / 2
    assert main_loss(logits, labels, prior, 3.0).item() == pytest.approx(ce + 3 * eta, rel=1e-6)  # eq. 8
    assert main_loss(logits, labels, prior, 0.0).item() == pytest.approx(ce, rel=1e-6)  # w/o CR
    w = t([0.25, 1.0])  # eq. 7: the q-reweighted CE of the w/o-Aux. ablation
    weighted = -(0.25 * np.log(p[0][0]) + np.log(p[1][2])) / 2
    assert main_loss(logits, labels, prior, 0.0, weights=w).item() == pytest.approx(weighted, rel=1e-6)


# ======================================================================= auxiliary EM (eq. 11, T, T_c, 14)
def test_refurbished_targets_eq11_by_hand():
    f = t([[0.1, 0.2, 0.7], [0.2, 0.2, 0.6]])
    out = refurbished_targets(t([1.0, 0.25]), torch.tensor([2, 0]), f)
    assert out.tolist()[0] == pytest.approx([0.0, 0.0, 1.0])
    assert out.tolist()[1] == pytest.approx([0.25 + 0.75 * 0.2, 0.75 * 0.2, 0.75 * 0.6])


def test_transition_closed_forms_by_hand():
    noisy = torch.tensor([0, 1, 1])
    T = estimate_transition(t([[1.0, 0.0], [0.5, 0.5], [0.2, 0.8]]), noisy)
    assert T.tolist()[0] == pytest.approx([1.0 / 1.7, 0.7 / 1.7])
    assert T.tolist()[1] == pytest.approx([0.0, 1.0])
    # T_c: only the corrupted part (1 - q) f; here [[.08, .02], [.3, .2], [.3, .7]]
    t_c = corruption_transition(t([0.9, 0.5, 0.0]), t([[0.8, 0.2], [0.6, 0.4], [0.3, 0.7]]), noisy)
    assert t_c.tolist()[0] == pytest.approx([0.08 / 0.68, 0.6 / 0.68])
    assert t_c.tolist()[1] == pytest.approx([0.02 / 0.92, 0.9 / 0.92])


def test_transition_matches_the_papers_sums_on_random_inputs():
    g = torch.Generator().manual_seed(0)
    n, k = 50, 4
    targets = torch.rand(n, k, generator=g, dtype=D).softmax(1)
    noisy = torch.randint(0, k, (n,), generator=g)
    naive = torch.zeros(k, k, dtype=D)
    for y in range(k):
        for y2 in range(k):
            naive[y, y2] = sum(targets[i, y] for i in range(n) if noisy[i] == y2) / targets[:, y].sum()
    assert torch.allclose(estimate_transition(targets, noisy), naive)


def test_empty_transition_row_is_uniform():
    T = corruption_transition(t([1.0, 1.0]), t([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 1]))
    assert T.tolist() == [[0.5, 0.5], [0.5, 0.5]]


def test_per_sample_epsilon_eq14_by_hand():
    eps = per_sample_epsilon(t([[0.8, 0.2], [0.6, 0.4]]), t([[0.1, 0.9], [0.7, 0.3]]), torch.tensor([1, 0]))
    assert eps.tolist() == pytest.approx([0.8 * 0.9 + 0.2 * 0.3, 0.6 * 0.1 + 0.4 * 0.7])


def test_corruption_matrix_is_the_renormalised_off_diagonal():
    T = np.array([[0.6, 0.3, 0.1], [0.0, 1.0, 0.0], [0.2, 0.2, 0.6]])
    out = corruption_matrix(T).numpy()
    np.testing.assert_allclose(out, [[0.0, 0.75, 0.25], [0.0, 0.0, 0.0], [0.5, 0.5, 0.0]])


# ========================================================================================== f's loss
def test_mixup_and_soft_cross_entropy():
    x, targets = t([[0.0], [10.0]]), t([[1.0, 0.0], [0.0, 1.0]])
    xm, tm = mix_pairs(x, targets, 0.75, torch.tensor([1, 0]))
    assert xm.flatten().tolist() == [2.5, 7.5] and tm.tolist() == [[0.75, 0.25], [0.25, 0.75]]
    logits = t([[2.0, 0.0], [0.0, 1.0]])
    expected = -(tm * F.log_softmax(logits, 1)).sum(1).mean()
    assert mean_soft_cross_entropy(logits, tm).item() == pytest.approx(expected.item())


def _naive_contrastive(z1, z2, temperature, labels=None):
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    n, b = len(z), len(z1)
    both = torch.cat([labels, labels]) if labels is not None else None
    total = 0.0
    for i in range(n):
        denom = sum(torch.exp(z[i] @ z[a] / temperature) for a in range(n) if a != i)
        same = [p for p in range(n) if p != i and both is not None and both[p] == both[i]]
        pos = same if both is not None else [(i + b) % n]
        total += -sum(torch.log(torch.exp(z[i] @ z[p] / temperature) / denom) for p in pos) / len(pos)
    return total / n


@pytest.mark.parametrize("supervised", [False, True], ids=["simclr", "supcon"])
def test_contrastive_loss_matches_a_naive_loop(supervised):
    g = torch.Generator().manual_seed(1)
    z1, z2 = torch.randn(5, 3, generator=g, dtype=D), torch.randn(5, 3, generator=g, dtype=D)
    labels = torch.tensor([0, 1, 0, 2, 1]) if supervised else None
    assert nt_xent_loss(z1, z2, 0.5, labels).item() == pytest.approx(
        _naive_contrastive(z1, z2, 0.5, labels).item(), rel=1e-5
    )


# ================================================================ T recovery on a synthetic problem, f given
TRUE_T = t(
    [
        [0.6, 0.4, 0.0, 0.0],
        [0.0, 0.7, 0.3, 0.0],
        [0.1, 0.0, 0.6, 0.3],
        [0.0, 0.0, 0.0, 1.0],
    ]
)


def _synthetic(n=40000, k=4, sharpness=6.0):
    """Clean labels, noisy labels drawn from TRUE_T, and a given auxiliary prediction f (99% accurate)."""
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, k, (n,), generator=g)
    noisy = torch.multinomial(TRUE_T[y], 1, generator=g).squeeze(1)
    f = (sharpness * F.one_hot(y, k).to(D) + torch.randn(n, k, generator=g, dtype=D)).softmax(1)
    return y, noisy, f


def test_transition_recovered_from_the_exact_clean_posterior():
    _, noisy, f = _synthetic(sharpness=4.0)
    # q(s=1) under the generative model, then eq. 11 and the closed forms
    q = (
        f.gather(1, noisy[:, None]).squeeze(1)
        * TRUE_T[noisy, noisy]
        / (f @ TRUE_T).gather(1, noisy[:, None]).squeeze(1)
    )
    T = estimate_transition(refurbished_targets(q, noisy, f), noisy)
    assert transition_error(T, TRUE_T) < 0.12
    t_c = corruption_transition(q, f, noisy)
    flipped = [0, 1, 2]  # class 3 is never corrupted: its true T_c row is empty
    err = (t_c[flipped] - corruption_matrix(TRUE_T)[flipped]).abs().sum() / len(flipped)
    assert err < 0.25


def test_iterated_cycle_with_f_given_recovers_an_asymmetric_transition():
    """Eq. 4 (g = f), eq. 6, eq. 11, T, T_c and eq. 14 iterated from gamma = 0.5, eps = 1/K."""
    y, noisy, f = _synthetic()
    k = f.shape[1]
    gamma, eps, t_c = t(0.5), torch.full((len(noisy),), 1.0 / k, dtype=D), None
    p_noisy = f.gather(1, noisy[:, None]).squeeze(1)
    for _ in range(15):
        if t_c is not None:
            eps = per_sample_epsilon(f, t_c, noisy)
        q = clean_posterior(gamma, p_noisy, eps)
        gamma = update_gamma(q)
        T = estimate_transition(refurbished_targets(q, noisy, f), noisy)
        t_c = corruption_transition(q, f, noisy)
    assert transition_error(T, TRUE_T) < 0.05
    # T_c's off-diagonal part points where the noise goes
    flipped = [0, 1, 2]
    off = corruption_matrix(t_c)[flipped] - corruption_matrix(TRUE_T)[flipped]
    assert off.abs().sum() / len(flipped) < 0.1
    auc_like = q[noisy == y].mean() - q[noisy != y].mean()
    assert auc_like > 0.5


# ======================================================================================== through the engine
DIGITS = ["dataset=digits", "model.name=mlp", "quiet=true", "batch_size=64", "checkpoint_every=1000"]


def _method(*settings):
    cfg = load_config(None, [*DIGITS, "method=flywheel", *settings])
    run = build_experiment(cfg)
    return run.engine, run.method


def test_registered_configurable_and_listed(capsys):
    cfg = load_config(None, ["method=flywheel", "flywheel.cr_lambda=1.5", "flywheel.contrastive=supcon"])
    assert cfg.method_params["flywheel"] == {"cr_lambda": 1.5, "contrastive": "supcon"}
    with pytest.raises(ConfigError, match="flywheel.lamda"):
        load_config(None, ["method=flywheel", "flywheel.lamda=3"])
    assert cli.main(["methods"]) == 0
    assert "flywheel" in capsys.readouterr().out.split()


def _agreeing_predictions(labels: torch.Tensor, k: int, share: float) -> torch.Tensor:
    """One-hot "predictions" that agree with ``labels`` on the first ``share`` of the samples."""
    n_agree = round(share * len(labels))
    pred = torch.cat([labels[:n_agree], (labels[n_agree:] + 1) % k])
    return F.one_hot(pred, k).float()


@pytest.mark.parametrize(
    ("settings", "ends_after"),
    [
        (["epochs=20"], 4),  # adaptive: the 4th epoch gained less than a point
        (["epochs=300"], 10),  # ... but never shorter than the paper's 10 of 300 epochs
        (["epochs=6"], 3),  # ... nor longer than half the run
        (["epochs=20", "flywheel.warmup_epochs=1"], 1),  # a fixed length (the paper configs)
    ],
)
def test_warmup_lasts_until_the_fit_of_the_given_labels_stops_improving(settings, ends_after):
    engine, m = _method(*settings)
    labels, k = engine.data.train_y, engine.ctx.num_classes
    agreement = [0.3, 0.4, 0.45, 0.455, 0.46, 0.462, 0.47, 0.48, 0.485, 0.487, 0.488, 0.49]
    for epoch, share in enumerate(agreement):
        with mock.patch.object(m, "aux_prediction", return_value=_agreeing_predictions(labels, k, share)):
            m.on_epoch_end(epoch)
        if not m.in_warmup():
            break
    assert int(m.warmup_done) == ends_after
    assert float(m.agreement) == pytest.approx(agreement[ends_after - 1], abs=1e-3)


@pytest.mark.parametrize(
    "setting", ["flywheel.warmup_epochs=0", "flywheel.contrastive=moco", "flywheel.cr_prior=x"]
)
def test_bad_parameters_are_rejected(setting):
    with pytest.raises(ValueError, match=setting.split("=")[0]):
        _method(setting)


def test_initialisation_and_cycle_state():
    engine, m = _method("epochs=3", "flywheel.warmup_epochs=2", "noise.rate=0.5")
    engine.fit(m, None)
    k, n = engine.ctx.num_classes, engine.ctx.num_train
    assert int(m.cycles) == 3 and m.q.shape == (n,) and m.targets.shape == (n, k)
    assert 0.0 < float(m.gamma) < 1.0 and torch.allclose(m.gamma, m.q.mean())  # eq. 6
    assert torch.allclose(m.targets.sum(1), torch.ones(n)) and torch.allclose(
        m.transition.sum(1), torch.ones(k)
    )
    # the third boundary is the first with eq. 14's per-sample eps
    assert m.eps.std() > 0 and not torch.allclose(m.eps, torch.full_like(m.eps, 1 / k))
    assert all(mod.training for mod in (m.f, m.g, m.proj))  # the E-step passes restore train mode
    assert m.estimated_transition().shape == (k, k)
    assert np.array_equal(m.corrected_labels(), m.yhat.numpy()) and m.cleanness().shape == (n,)


def test_warmup_boundary_is_the_papers_initialisation():
    engine, m = _method("epochs=1", "flywheel.warmup_epochs=1")
    engine.fit(m, None)
    m.g.eval()
    m.f.eval()
    with torch.no_grad():
        f_prob = m.aux_prediction()  # features: the weak view is the identity, so this is deterministic
        g_prob = F.softmax(engine.ctx.predict(m.g, engine.data.train_x), 1)
    f_acc = (f_prob.argmax(1) == engine.data.train_y).float().mean()  # gamma's initial value
    p_noisy = g_prob.gather(1, engine.data.train_y[:, None])
    expected_q = clean_posterior(f_acc, p_noisy.squeeze(1), 1.0 / engine.ctx.num_classes)
    assert torch.allclose(m.q, expected_q, atol=1e-6) and torch.all(m.eps == 1.0 / engine.ctx.num_classes)


@pytest.mark.parametrize(
    "setting",
    [
        "flywheel.cr_lambda=0",
        "flywheel.auxiliary=false",
        "flywheel.fixed_epsilon=true",
        "flywheel.contrastive=none",
        "flywheel.contrastive=supcon",
        "flywheel.cr_ramp_epochs=2",
    ],
)
def test_ablation_switches(setting):
    engine, m = _method("epochs=3", "flywheel.warmup_epochs=1", setting)
    summary = engine.fit(m, None)
    assert summary["cleanness_auc"] > 0.6
    if setting == "flywheel.auxiliary=false":
        assert not hasattr(m, "f") and m.corrected_labels() is None and m.estimated_transition() is None
        assert "label_acc" not in summary
    else:
        assert summary["label_acc"] > 0.5
    if setting == "flywheel.fixed_epsilon=true":
        assert torch.all(m.eps == 1.0 / engine.ctx.num_classes)
    if setting == "flywheel.contrastive=none":
        assert not hasattr(m, "proj")


def test_contrastive_term_only_with_a_backbone_to_shape(tmp_path):
    """A linear f has no backbone: L_con would train only the projection head, so it is skipped."""
    for model, expected in (("mlp", True), ("linear", False)):
        engine, m = _method("epochs=2", "flywheel.warmup_epochs=1", f"model.name={model}")
        assert m.uses_contrastive() == expected and hasattr(m, "proj") == expected
        (tmp_path / model).mkdir()
        engine.fit(m, tmp_path / model)
        last = json.loads((tmp_path / model / "metrics.jsonl").read_text().splitlines()[-1])
        assert ("train_loss_con" in last) == expected and last["label_acc"] > 0.5


def test_beats_ce_and_a_broken_cycle(tmp_path):
    """Same data, noise, model and budget. A broken cycle (q = 1: no label is ever rejected, so f trains
    on the given labels with MixUp and g on f's labels) keeps MixUp's robustness but misses the margin."""
    # lr 0.1 (effective step 1.0): the regime where CE memorises the noise within 20 epochs
    settings = [*DIGITS, "epochs=20", "noise.rate=0.6", "flywheel.warmup_epochs=3", "optim.lr=0.1"]

    def last(name, *extra):
        cfg = load_config(None, [*settings, *extra, f"out={tmp_path / name}"])
        return run_experiment(cfg)

    ce = last("ce", "method=ce")
    full = last("flywheel", "method=flywheel")
    with mock.patch.object(fw, "clean_posterior", lambda gamma, p, eps: torch.ones_like(p)):
        broken = last("broken", "method=flywheel")
    # seeds 0-2: flywheel - CE = 0.34-0.38, broken - CE = 0.19-0.21, flywheel - broken = 0.14-0.20
    assert full["last_test_acc"] >= ce["last_test_acc"] + 0.25, (full, ce)
    assert full["last_test_acc"] >= broken["last_test_acc"] + 0.08, (full, broken)
    assert full["cleanness_auc"] > 0.9 and full["label_acc"] > 0.85
    history = [json.loads(x) for x in (tmp_path / "flywheel" / "metrics.jsonl").read_text().splitlines()]
    assert all("cleanness_auc" in r and "label_acc" in r for r in history)  # reported every epoch
    assert all(0 < r["train_g_acc"] <= 1 and 0.1 <= r["train_g_top_class"] <= 1 for r in history)  # g's state


def test_resume_matches_an_uninterrupted_run(tmp_path):
    settings = [*DIGITS, "method=flywheel", "epochs=4", "flywheel.warmup_epochs=1", "checkpoint_every=1"]
    full = run_experiment(load_config(None, [*settings, f"out={tmp_path / 'full'}"]))
    original = Engine.train_epoch

    def crash_in_third_epoch(self, method, epoch):
        if epoch == 2:
            raise KeyboardInterrupt
        return original(self, method, epoch)

    with mock.patch.object(Engine, "train_epoch", crash_in_third_epoch), pytest.raises(KeyboardInterrupt):
        run_experiment(load_config(None, [*settings, f"out={tmp_path / 'cut'}"]))
    resumed = run_experiment(load_config(None, [f"out={tmp_path / 'cut'}"]), resume=True)
    for key in ("last_test_acc", "label_acc", "cleanness_auc"):
        assert resumed[key] == full[key], key


def test_plot_transition_writes_a_png(tmp_path):
    out = fw.plot_transition(np.full((3, 3), 1 / 3), np.eye(3), tmp_path / "tc.png", title="T_c")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(("cr_lambda", "wrong_beats_uniform"), [(1.0, False), (3.0, True)])
def test_the_papers_cr_weight_is_ramped_in_as_it_rewards_confidence_in_a_wrong_class(
    cr_lambda, wrong_beats_uniform
):
    """Issues 18 and 21: eq. 8 with the paper's lambda = 3 scores a confidently wrong prediction far below
    the uniform guess (the basin a fresh small CNN fell into at once); lambda = 1 never does. The default
    reaches 3 through a ramp, so g is past the warm-up's state when the basin deepens."""
    k = 10
    prior = torch.full((k,), 1.0 / k, dtype=torch.float64)
    label = torch.tensor([0])
    uniform = torch.zeros(1, k, dtype=torch.float64)
    confident_wrong = torch.zeros(1, k, dtype=torch.float64)
    confident_wrong[0, 3] = 20.0  # every other class near the 1e-8 floor of the regulariser
    loss_wrong = main_loss(confident_wrong, label, prior, cr_lambda)
    loss_uniform = main_loss(uniform, label, prior, cr_lambda)
    assert bool(loss_wrong < loss_uniform) is wrong_beats_uniform
    assert fw.FlywheelParams().cr_lambda == 3.0 and fw.FlywheelParams().cr_ramp_epochs > 0
