"""Tests of the clean meta split and the noisy train/meta split (noisy_labels.data.split)."""

from __future__ import annotations

import numpy as np
import pytest

from noisy_labels.data.base import ArrayDataset
from noisy_labels.data.split import MetaSplit, NoisySplit, clean_meta_split, make_noisy_split

C = 10


def make_dataset(n_per_class: int = 1000, *, images: bool = False) -> ArrayDataset:
    rng = np.random.default_rng(7)
    y = np.repeat(np.arange(C), n_per_class)
    rng.shuffle(y)
    shape = (len(y), 4, 4, 3) if images else (len(y), 8)
    x = rng.integers(0, 256, size=shape, dtype=np.uint8) if images else rng.normal(size=shape)
    return ArrayDataset(x, y, classes=tuple(f"c{i}" for i in range(C)), name="toy")


# ---------------------------------------------------------------------------------------------------
# clean_meta_split
# ---------------------------------------------------------------------------------------------------


def test_meta_split_is_balanced_with_random_remainder():
    labels = make_dataset().y
    meta, _ = clean_meta_split(labels, size=103, seed=0)
    per_class = np.bincount(labels[meta], minlength=C)
    assert per_class.sum() == 103
    assert sorted(per_class.tolist()) == [10] * 7 + [11] * 3

    # The classes that get the remainder depend on the seed, not always the first ones.
    def classes_with_extra(seed):
        meta, _ = clean_meta_split(labels, size=103, seed=seed)
        return tuple(np.flatnonzero(np.bincount(labels[meta]) == 11))

    assert len({classes_with_extra(seed) for seed in range(5)}) > 1


def test_meta_split_is_disjoint_complete_sorted():
    labels = make_dataset().y
    split = clean_meta_split(labels, size=100, num_classes=C, seed=1)
    assert isinstance(split, MetaSplit)
    meta, train = split
    assert meta.dtype == train.dtype == np.int64
    assert np.all(np.diff(meta) > 0) and np.all(np.diff(train) > 0)
    assert np.intersect1d(meta, train).size == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([meta, train])), np.arange(len(labels)))


def test_meta_split_reproducible_by_seed():
    labels = make_dataset().y
    a = clean_meta_split(labels, size=50, seed=3)
    b = clean_meta_split(labels, size=50, seed=3)
    c = clean_meta_split(labels, size=50, seed=4)
    np.testing.assert_array_equal(a.meta_index, b.meta_index)
    assert not np.array_equal(a.meta_index, c.meta_index)


def test_meta_split_size_zero_gives_everything_to_train():
    meta, train = clean_meta_split([0, 1, 1, 0], size=0)
    assert meta.size == 0 and train.tolist() == [0, 1, 2, 3]


def test_too_few_samples_names_the_class():
    labels = np.array([0] * 10 + [1] * 10 + [2] * 2)
    with pytest.raises(ValueError, match="class 2 has 2 samples but the meta set needs 3"):
        clean_meta_split(labels, size=9)


@pytest.mark.parametrize(
    ("size", "match"),
    [
        (5, "every class needs a meta sample"),
        (-1, "size must be"),
        (10**6, "size must be"),
        (2.5, "size must be"),
    ],
)
def test_bad_sizes(size, match):
    with pytest.raises(ValueError, match=match):
        clean_meta_split(make_dataset(10).y, size=size, num_classes=C)


# ---------------------------------------------------------------------------------------------------
# make_noisy_split
# ---------------------------------------------------------------------------------------------------


def test_noisy_split_fields_are_consistent():
    data = make_dataset()
    split = make_noisy_split(data, meta_size=1000, protocol="symmetric", rate=0.4, seed=0)
    assert isinstance(split, NoisySplit)
    np.testing.assert_array_equal(split.train.y, split.noise.noisy_labels)
    np.testing.assert_array_equal(split.train_clean_labels, data.y[split.train_index])
    np.testing.assert_array_equal(split.train.x, data.x[split.train_index])
    np.testing.assert_array_equal(split.meta.y, data.y[split.meta_index])  # meta stays clean
    np.testing.assert_array_equal(split.meta_clean_labels, split.meta.y)
    np.testing.assert_array_equal(np.bincount(split.meta.y), [100] * C)
    assert len(split.train) + len(split.meta) == len(data)
    # Binomial std at n = 9000, r = 0.4 is 0.005.
    assert np.mean(split.train.y != split.train_clean_labels) == pytest.approx(0.4, abs=0.025)
    assert split.meta_noise is None


def test_noisy_split_reproducible():
    data = make_dataset(200)
    a = make_noisy_split(data, meta_size=100, protocol="flip", rate=0.3, seed=5)
    b = make_noisy_split(data, meta_size=100, protocol="flip", rate=0.3, seed=5)
    np.testing.assert_array_equal(a.meta_index, b.meta_index)
    np.testing.assert_array_equal(a.train.y, b.train.y)


def test_no_meta_set():
    data = make_dataset(100)
    split = make_noisy_split(data, meta_size=0, protocol="pairflip", rate=0.2)
    assert split.meta is None and split.meta_clean_labels is None and split.meta_index.size == 0
    np.testing.assert_array_equal(split.train_index, np.arange(len(data)))


@pytest.mark.parametrize("protocol", ["flip", "flip2"])
def test_corrupt_meta_uses_the_same_random_mapping(protocol):
    data = make_dataset()
    split = make_noisy_split(data, meta_size=5000, protocol=protocol, rate=0.4, seed=2, corrupt_meta=True)
    assert split.meta_noise.params["mapping"] == split.noise.params["mapping"]
    np.testing.assert_array_equal(split.meta_noise.transition, split.noise.transition)
    changed = split.meta.y != split.meta_clean_labels
    assert changed.mean() == pytest.approx(0.4, abs=0.035)  # binomial std 0.007 at n = 5000
    allowed = np.zeros((C, C), dtype=bool)
    allowed[split.noise.transition > 0] = True
    assert allowed[split.meta_clean_labels, split.meta.y].all()  # meta flips only along the train mapping
    # Independent per-sample draws: the meta set is not flipped in lockstep with the first train samples.
    n_meta = len(split.meta)
    assert not np.array_equal(changed, (split.train.y != split.train_clean_labels)[:n_meta])


def test_corrupt_meta_with_human_labels_takes_their_rows():
    data = make_dataset(100)
    human = np.where(np.arange(len(data)) % 3 == 0, (data.y + 1) % C, data.y)
    split = make_noisy_split(data, meta_size=50, protocol="human", human_labels=human, corrupt_meta=True)
    np.testing.assert_array_equal(split.train.y, human[split.train_index])
    np.testing.assert_array_equal(split.meta.y, human[split.meta_index])
    np.testing.assert_array_equal(split.meta_clean_labels, data.y[split.meta_index])


def test_instance_noise_uses_flattened_images_by_default():
    data = make_dataset(100, images=True)
    split = make_noisy_split(data, meta_size=20, protocol="instance", rate=0.3, seed=0, corrupt_meta=True)
    assert split.noise.params["num_features"] == 48 == split.meta_noise.params["num_features"]
    assert np.mean(split.train.y != split.train_clean_labels) == pytest.approx(0.3, abs=0.07)


def test_per_sample_option_of_the_wrong_length():
    data = make_dataset(10)
    with pytest.raises(ValueError, match="human_labels has 5 rows but the data set has 100"):
        make_noisy_split(data, meta_size=10, protocol="human", human_labels=np.zeros(5, dtype=int))
