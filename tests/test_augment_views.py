"""The engine's augmentation views (noisy_labels.engine.augment): shapes, dtypes and value ranges,
determinism under the explicit generator, the global RNG left alone, images changed and labels not, and
kornia's views as an optional dependency."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from noisy_labels.config import VIEWS
from noisy_labels.engine import augment, build_experiment, load_config
from noisy_labels.engine.augment import POLICY_VIEWS, BatchPreparer, apply_per_image
from noisy_labels.engine.data import prepare_arrays

pytestmark = [
    pytest.mark.usefixtures("one_thread"),
    pytest.mark.skipif(not augment.HAS_KORNIA, reason="kornia (the augment extra) is not installed"),
]

RANDOM_VIEWS = [v for v in VIEWS if v != "test"]
STRONG_VIEWS = [v for v in VIEWS if v not in ("test", "weak")]
MEAN, STD = 0.5, 0.25


def preparer(channels: int = 3, *, crop_padding: int = 4, flip: bool = True) -> BatchPreparer:
    return BatchPreparer(
        is_image=True,
        mean=torch.full((channels,), MEAN),
        std=torch.full((channels,), STD),
        crop_padding=crop_padding,
        flip=flip,
    )


def images(n: int = 16, side: int = 32, channels: int = 3, seed: int = 0) -> torch.Tensor:
    """uint8 NHWC images away from 0 and 255, so that auto-contrast and equalize change them too."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(40, 216, (n, side, side, channels), dtype=torch.uint8, generator=g)


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def image_experiment(*sets: str):
    """A built run on 16x16 RGB images in memory (a small CNN, 200 training and 50 trusted images)."""
    cfg = load_config(None, ["model.name=small_cnn", "quiet=true", *sets])
    labels = torch.arange(250) % 5
    x = images(250, side=16).numpy()
    data = prepare_arrays(
        cfg, torch.device("cpu"), x[:200], labels[:200].numpy(), x_clean=x[200:], y_clean=labels[200:].numpy()
    )
    return build_experiment(cfg, data=data, device=torch.device("cpu"))


@pytest.mark.parametrize("channels", [3, 1])
@pytest.mark.parametrize("view", VIEWS)
def test_every_view_keeps_shape_dtype_and_pixel_range(view, channels):
    raw = images(channels=channels)
    x = preparer(channels)(raw, view, generator())
    assert x.shape == (16, channels, 32, 32) and x.dtype == torch.float32
    low, high = (0 - MEAN) / STD, (1 - MEAN) / STD  # pixels in [0, 1] before normalisation
    assert x.min() >= low - 1e-5 and x.max() <= high + 1e-5
    assert torch.isfinite(x).all()


@settings(max_examples=15, deadline=None)
@given(
    view=st.sampled_from(POLICY_VIEWS),
    n=st.integers(1, 6),
    side=st.integers(8, 24),
    channels=st.sampled_from([1, 3]),
    seed=st.integers(0, 2**31),
)
def test_policy_views_on_any_batch_shape(view, n, side, channels, seed):
    raw = images(n, side, channels, seed)
    prep = preparer(channels, crop_padding=2)
    x = prep(raw, view, generator(seed))
    assert x.shape == (n, channels, side, side) and x.dtype == torch.float32
    assert (x * STD + MEAN).min() >= -1e-5 and (x * STD + MEAN).max() <= 1 + 1e-5
    assert torch.equal(x, prep(raw, view, generator(seed)))


@pytest.mark.parametrize("view", RANDOM_VIEWS)
def test_same_generator_state_same_batch_another_state_another(view):
    raw, prep = images(), preparer()
    first, again = prep(raw, view, generator(1)), prep(raw, view, generator(1))
    assert torch.equal(first, again)
    assert not torch.equal(first, prep(raw, view, generator(2)))


@pytest.mark.parametrize("view", POLICY_VIEWS)
def test_a_resumed_generator_continues_the_same_sequence(view):
    raw, prep, g = images(), preparer(), generator(3)
    prep(raw, view, g)
    saved = g.get_state()  # what a checkpoint stores
    later = [prep(raw, view, g) for _ in range(2)]
    resumed = torch.Generator()
    resumed.set_state(saved)
    assert all(torch.equal(a, prep(raw, view, resumed)) for a in later)


@pytest.mark.parametrize("view", POLICY_VIEWS)
def test_kornia_views_neither_read_nor_move_the_global_rng(view):
    raw, prep = images(), preparer()
    torch.manual_seed(123)
    before = torch.get_rng_state()
    first = prep(raw, view, generator())
    assert torch.equal(torch.get_rng_state(), before)  # left as it was
    torch.manual_seed(456)  # another global state: the same batch
    assert torch.equal(prep(raw, view, generator()), first)


@pytest.mark.parametrize("view", STRONG_VIEWS)
def test_strong_views_change_most_images(view):
    raw = images(64)
    prep = preparer(crop_padding=0, flip=False)  # weak is then the identity: what changes is the view's own
    plain, x = prep(raw, "test"), prep(raw, view, generator())
    changed = (x - plain).abs().flatten(1).amax(1) > 1e-4
    # AutoAugment skips each operation with its probability (some sub-policies leave ~70% unchanged)
    assert changed.float().mean() > 0.5


@pytest.mark.parametrize("view", STRONG_VIEWS)
def test_the_view_does_not_touch_the_labels_of_a_trusted_batch(view):
    ctx = image_experiment("method=mwnet").engine.ctx
    state = ctx.generator.get_state()
    x_weak, y_weak = ctx.meta_batch(32, view="weak")
    ctx.generator.set_state(state)
    x, y = ctx.meta_batch(32, view=view)
    assert torch.equal(y, y_weak) and x.shape == x_weak.shape and not torch.equal(x, x_weak)


def test_features_get_dropout_and_noise_in_every_strong_view():
    feats = torch.randn(32, 20)
    prep = BatchPreparer(is_image=False)
    assert all(prep(feats, v, generator()) is feats for v in ("test", "weak"))
    outs = [prep(feats, v, generator(5)) for v in STRONG_VIEWS]
    assert all(torch.equal(outs[0], o) for o in outs[1:])  # the same documented choice for each name
    dropped = (outs[0].abs() < 0.5) & (feats.abs() > 2)  # dropout zeroes a feature, noise adds ~0.1
    assert dropped.any() and not torch.equal(outs[0], feats)


def test_randaugment_has_the_papers_14_transformations():
    ops = preparer()._randaugment
    names = [type(op[0][0]).__name__ for op in ops[1:]]  # RandAugment -> its sub-policy -> the operation
    assert ops[0] is None and len(ops) == 14  # identity + 13
    assert "Invert" not in names and "SolarizeAdd" not in names and len(set(names)) == 13
    assert len(preparer()._autoaugment) == 25  # CIFAR-10 policy's sub-policies


@settings(max_examples=30, deadline=None)
@given(choice=st.lists(st.integers(0, 2), min_size=1, max_size=12))
def test_apply_per_image_sends_each_image_through_its_own_draw(choice):
    x = torch.arange(len(choice), dtype=torch.float32).view(-1, 1, 1, 1).expand(-1, 3, 2, 2).clone()
    transforms = [None, lambda t: t + 100, lambda t: -t]
    out = apply_per_image(x, torch.tensor(choice), transforms)
    for i, k in enumerate(choice):
        expected = x[i] if transforms[k] is None else transforms[k](x[i])
        assert torch.equal(out[i], expected)


def test_unknown_view_is_one_line():
    with pytest.raises(ValueError, match="view must be one of"):
        preparer()(images(2), "strong", generator())  # type: ignore[arg-type]


def test_missing_kornia_is_one_line_naming_the_install(monkeypatch):
    monkeypatch.setattr(augment, "HAS_KORNIA", False)
    for view in POLICY_VIEWS:
        with pytest.raises(ValueError, match="pip install kornia"):
            preparer()(images(2), view, generator())
        BatchPreparer(is_image=False)(torch.zeros(2, 3), view, generator())  # features need no kornia
    with pytest.raises(ValueError, match="pip install kornia"):  # at set-up, not after the warm-up
        image_experiment("method=flywheel", "flywheel.contrastive_view=randaugment")


@pytest.mark.parametrize(
    "sets",
    [
        ["method=emlc", "emlc.clean_view=autoaugment"],
        ["method=flywheel", "flywheel.contrastive_view=randaugment", "flywheel.warmup_epochs=1"],
    ],
)
def test_the_paper_views_train_and_a_rerun_reproduces_them(sets):
    def trained_logits():
        run = image_experiment(*sets, "epochs=2", "batch_size=50")
        run.engine.fit(run.method, None)
        return run.ctx.predict(run.method.predict, run.ctx.train_x)

    first = trained_logits()
    assert torch.isfinite(first).all()
    assert torch.equal(first, trained_logits())
