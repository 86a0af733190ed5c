"""Tests for normalization as a property of the dataset, and its batches."""

import math

import numpy as np
import pytest

from keras_lottery import data
from keras_lottery.errors import LotteryError


@pytest.mark.parametrize(
    "given, stored",
    [
        ("per_image", "per_image"),
        (None, None),
        ((0.5, 0.25), data.MeanStd((0.5,), (0.25,))),
        ((np.float32(0.5), 1), data.MeanStd((0.5,), (1.0,))),
        (([0.1, 0.2, 0.3], (1, 2, 3)), data.MeanStd((0.1, 0.2, 0.3), (1.0, 2.0, 3.0))),
        (data.MeanStd((0.1307,), (0.3081,)), data.MeanStd((0.1307,), (0.3081,))),
    ],
)
def test_dataset_stores_normalization_resolved(given, stored):
    x = np.zeros((2, 4, 4, 3), np.uint8)
    ds = data.Dataset("d", x, [0, 1], x, [1, 0], normalize=given)
    assert ds.normalize == stored
    if stored not in (None, "per_image"):
        assert all(type(v) is float for v in ds.normalize.mean + ds.normalize.std)


@pytest.mark.parametrize(
    "bad",
    ["standard", "PER_IMAGE", (0.5,), (0.5, 0.0), (0.5, -1), (math.nan, 1),
     (0.5, math.inf), ([0.1, 0.2], [1.0]), ("a", "b"), (True, 1), ([], []), 3.0],
)
def test_bad_normalization(bad):
    x = np.zeros((2, 4), np.float32)
    with pytest.raises(LotteryError) as error:
        data.TrainBatches(x, [0, 1], 2, seed=0, num_steps=1, augment=False, normalize=bad)
    assert error.value.param == "normalize" and "\n" not in str(error.value)


def test_mean_std_is_exact_per_channel():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (50, 7, 5, 3), dtype=np.uint8)
    images[..., 2] //= 4  # channels differ
    stats = data.mean_std(images)
    scaled = images.astype(np.float64) / 255
    np.testing.assert_allclose(stats.mean, scaled.mean(axis=(0, 1, 2)), rtol=1e-13)
    np.testing.assert_allclose(stats.std, scaled.std(axis=(0, 1, 2)), rtol=1e-12)
    one = data.mean_std(images[..., :1])
    assert len(one.mean) == 1 and one.mean[0] == stats.mean[0]


def test_mean_std_needs_uint8():
    with pytest.raises(LotteryError, match="uint8"):
        data.mean_std(np.zeros((2, 3, 3, 1), np.float32))


def test_mean_std_batches():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (20, 6, 6, 3), dtype=np.uint8)
    stats = ((0.2, 0.4, 0.6), (0.1, 0.2, 0.3))
    train = data.TrainBatches(x, np.arange(20) % 4, 8, seed=3, num_steps=4,
                              augment=False, normalize=stats)
    for step in (0, 2, 3):  # 2 straddles the epoch boundary
        images, labels = train.batch(step)
        indices = data.batch_indices(20, 8, step, seed=3)
        expected = (x[indices] / 255.0 - np.array(stats[0])) / np.array(stats[1])
        assert images.dtype == np.float32
        np.testing.assert_allclose(images, expected, atol=1e-5)
        np.testing.assert_array_equal(labels, (np.arange(20) % 4)[indices])
    evals = data.EvalBatches(x, np.zeros(20), 8, normalize=stats)
    np.testing.assert_allclose(
        evals[2][0], (x[16:] / 255.0 - np.array(stats[0])) / np.array(stats[1]),
        atol=1e-5,
    )


def test_mean_std_channel_count_must_match():
    x = np.zeros((4, 6, 6, 3), np.uint8)
    batches = data.EvalBatches(x, np.zeros(4), 2, normalize=((0.1, 0.2), (1, 1)))
    with pytest.raises(LotteryError, match="2 channel statistics"):
        batches[0]


def test_none_is_float32_as_given_and_a_copy():
    x = np.linspace(-3, 3, 40, dtype=np.float64).reshape(10, 4)
    evals = data.EvalBatches(x, np.zeros(10), 4, normalize=None)
    images, _ = evals[0]
    assert images.dtype == np.float32
    np.testing.assert_array_equal(images, x[:4].astype(np.float32))
    images[:] = 0  # editing a batch leaves the data alone
    assert x[0, 0] == -3
    same = x[:4].astype(np.float32)
    first, _ = data.EvalBatches(same, np.zeros(4), 4, normalize=None)[0]
    first[:] = 1
    assert same[0, 0] == -3


def test_per_image_is_the_default_and_standardize():
    x = np.random.default_rng(2).integers(0, 256, (6, 8, 8, 1), dtype=np.uint8)
    default = data.EvalBatches(x, np.zeros(6), 6)[0][0]
    explicit = data.EvalBatches(x, np.zeros(6), 6, normalize="per_image")[0][0]
    np.testing.assert_array_equal(default, explicit)
    np.testing.assert_array_equal(default, data.standardize(x))


def test_every_named_dataset_says_how_it_is_normalized():
    assert data.load("digits").normalize == data.PER_IMAGE
    assert data.load("synthetic").normalize == data.PER_IMAGE
    x = np.zeros((3, 2), np.float32)
    assert data.arrays(x, [0, 1, 2], x, [0, 1, 2]).normalize is None


def test_flat_examples_train_without_augmentation():
    x = np.random.default_rng(3).normal(size=(12, 5)).astype(np.float32)
    train = data.TrainBatches(x, np.arange(12) % 3, 4, seed=0, num_steps=3,
                              augment=False, normalize=None)
    images, labels = train[1]
    indices = data.batch_indices(12, 4, 1, seed=0)
    np.testing.assert_array_equal(images, x[indices])
    with pytest.raises(LotteryError) as error:
        data.TrainBatches(x, np.arange(12) % 3, 4, seed=0, num_steps=3)
    assert error.value.param == "augment" and "augment=False" in str(error.value)
