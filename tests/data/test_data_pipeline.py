"""Tests for `keras_lottery.data`'s pipeline: augmentation, standardization,
the training stream and evaluation batches."""

import math

import numpy as np
import pytest

from keras_lottery import data
from keras_lottery.errors import LotteryError


# -- Augmentation and standardization -------------------------------------------


def _find_window(padded, image):
    """All (offset_y, offset_x, flipped) whose window of `padded` equals `image`."""
    found = []
    for oy in range(9):
        for ox in range(9):
            window = padded[oy : oy + 32, ox : ox + 32]
            for flipped, candidate in ((False, window), (True, window[:, ::-1])):
                if np.array_equal(candidate, image):
                    found.append((oy, ox, flipped))
    return found


def test_augment_is_a_window_of_the_padded_image():
    images = np.random.default_rng(0).integers(1, 256, (300, 32, 32, 3), dtype=np.uint8)
    out = data.augment(images, np.random.default_rng(1))
    assert out.shape == images.shape and out.dtype == np.uint8
    padded = np.pad(images, ((0, 0), (4, 4), (4, 4), (0, 0)))
    matches = [_find_window(p, o) for p, o in zip(padded, out)]
    assert all(len(m) == 1 for m in matches)  # unique: images are random
    offsets_y = {m[0][0] for m in matches}
    offsets_x = {m[0][1] for m in matches}
    assert offsets_y == set(range(9)) and offsets_x == set(range(9))
    flipped = np.mean([m[0][2] for m in matches])
    assert 0.35 < flipped < 0.65
    # Some crops must show the zero border, so padding really happened.
    assert any((o == 0).all(axis=-1).any() for o in out)


def test_standardize_formula():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    out = data.standardize(images)
    assert out.dtype == np.float32 and out.shape == images.shape
    x = images.astype(np.float64).reshape(6, -1)
    expected = (x - x.mean(1, keepdims=True)) / x.std(1, keepdims=True)
    np.testing.assert_allclose(out.reshape(6, -1), expected, atol=1e-5)
    np.testing.assert_allclose(out.mean(axis=(1, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=(1, 2, 3)), 1, atol=1e-5)
    assert images.dtype == np.uint8 and images.max() > 1  # input untouched


def test_standardize_floor_for_flat_image():
    image = np.full((1, 32, 32, 3), 100, np.uint8)
    np.testing.assert_array_equal(data.standardize(image), 0)
    # std ~ 1.8e-4 < 1/sqrt(3072): the floor divides instead (x55, not x5500).
    image = np.zeros((1, 32, 32, 3), np.float32)
    image[0, 3, 4, 1] = 0.01
    x = image.astype(np.float64).ravel()
    assert x.std() < 1 / math.sqrt(3072)
    expected = (x - x.mean()) * math.sqrt(3072)
    np.testing.assert_allclose(data.standardize(image).ravel(), expected, rtol=1e-4)


def test_standardize_matches_tensorflow():
    tf = pytest.importorskip("tensorflow")
    rng = np.random.default_rng(5)
    images = rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    images[1] = 7
    images[2, :16] = 0
    expected = tf.image.per_image_standardization(images).numpy()
    np.testing.assert_allclose(data.standardize(images), expected, atol=2e-5)


# -- Batching -------------------------------------------------------------------


def _train(x, y, batch_size, seed=0, start_step=0, num_steps=10, augment=True):
    return data.TrainBatches(
        x, y, batch_size, seed=seed, start_step=start_step, num_steps=num_steps,
        augment=augment,
    )


@pytest.fixture(scope="module")
def small():
    return data.synthetic(num_train=100, num_test=10, seed=0)


def test_train_batch_shapes(small):
    batches = _train(small.x_train, small.y_train, 16, num_steps=3)
    assert len(batches) == 3
    images, labels = batches[0]
    assert images.shape == (16, 32, 32, 3) and images.dtype == np.float32
    assert labels.shape == (16,) and labels.dtype == np.int32
    with pytest.raises(IndexError):
        batches[3]


def test_train_determinism_across_start_steps(small):
    a = _train(small.x_train, small.y_train, 16, seed=7, start_step=0, num_steps=20)
    b = _train(small.x_train, small.y_train, 16, seed=7, start_step=13, num_steps=5)
    for i in range(5):
        xa, ya = a[13 + i]
        xb, yb = b[i]
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
        np.testing.assert_array_equal(b.batch(13 + i)[0], xa)


def test_different_seeds_differ(small):
    a = _train(small.x_train, small.y_train, 16, seed=0)
    b = _train(small.x_train, small.y_train, 16, seed=1)
    assert not np.array_equal(a[0][1], b[0][1])
    assert not np.array_equal(a[0][0], b[0][0])


def test_augmentation_depends_on_step():
    # Eight copies of one image: the shuffle cannot change the batch, so any
    # difference between steps comes from the augmentation draws.
    image = np.random.default_rng(0).integers(0, 256, (1, 32, 32, 3), dtype=np.uint8)
    batches = _train(np.repeat(image, 8, axis=0), np.zeros(8), 8, augment=True)
    assert not np.array_equal(batches[0][0], batches[1][0])
    plain = _train(np.repeat(image, 8, axis=0), np.zeros(8), 8, augment=False)
    np.testing.assert_array_equal(plain[0][0], plain[1][0])


def test_no_augment_is_standardized_gather(small):
    batches = _train(small.x_train, small.y_train, 16, seed=2, augment=False)
    for step in (0, 6, 7):
        images, labels = batches.batch(step)
        indices = data.batch_indices(100, 16, step, seed=2)
        np.testing.assert_array_equal(labels, small.y_train[indices])
        np.testing.assert_array_equal(images, data.standardize(small.x_train[indices]))


def test_augmented_batch_is_standardized(small):
    images, _ = _train(small.x_train, small.y_train, 16)[4]
    np.testing.assert_allclose(images.mean(axis=(1, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(images.std(axis=(1, 2, 3)), 1, atol=1e-4)


def test_epoch_boundary():
    # N=10, B=4: steps 0..4 are 20 stream positions = exactly two epochs.
    n, seed = 10, 3
    x = np.zeros((n, 32, 32, 3), np.uint8)
    batches = _train(x, np.arange(n), 4, seed=seed, num_steps=5, augment=False)
    stream = np.concatenate([batches[i][1] for i in range(5)])
    assert stream.shape == (20,)
    first, second = stream[:10], stream[10:]
    assert sorted(first) == list(range(n)) and sorted(second) == list(range(n))
    assert not np.array_equal(first, second)
    for epoch, part in enumerate((first, second)):
        expected = np.random.default_rng([seed, epoch]).permutation(n)
        np.testing.assert_array_equal(part, expected)
    # Step 2 straddles the boundary: positions 8, 9 | 10, 11.
    straddle = np.concatenate([first[8:], second[:2]])
    np.testing.assert_array_equal(batches[2][1], straddle)


def test_batch_larger_than_dataset():
    # N=3, B=8, step 1: positions 8..15 span epochs 2..5.
    indices = data.batch_indices(3, 8, 1, seed=0)
    expected = [
        np.random.default_rng([0, p // 3]).permutation(3)[p % 3] for p in range(8, 16)
    ]
    np.testing.assert_array_equal(indices, expected)


def test_eval_batches_keep_order_and_last_partial(small):
    x, y = small.x_test, small.y_test
    batches = data.EvalBatches(x, y, 4)
    assert len(batches) == 3
    sizes = [len(batches[i][1]) for i in range(3)]
    assert sizes == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate([batches[i][1] for i in range(3)]), y)
    images, labels = batches[2]
    assert images.dtype == np.float32 and labels.dtype == np.int32
    np.testing.assert_array_equal(images, data.standardize(x[8:]))
    with pytest.raises(IndexError):
        batches[3]


def test_pydataset_kwargs_pass_through(small):
    batches = data.TrainBatches(
        small.x_train, small.y_train, 8, seed=0, num_steps=2, workers=2,
        max_queue_size=3,
    )
    assert batches.workers == 2 and batches.max_queue_size == 3
    assert data.EvalBatches(small.x_test, small.y_test, 8, workers=3).workers == 3


@pytest.mark.parametrize(
    "kwargs",
    [{"seed": -1}, {"batch_size": 0}, {"num_steps": -1}, {"start_step": 1.5}],
)
def test_bad_train_arguments(small, kwargs):
    args = {"seed": 0, "batch_size": 8, "num_steps": 2, **kwargs}
    with pytest.raises(LotteryError):
        data.TrainBatches(small.x_train, small.y_train, **args)


def test_mismatched_labels(small):
    with pytest.raises(LotteryError, match="labels of shape"):
        data.EvalBatches(small.x_test, small.y_test[:-1], 4)


# -- What model.fit and model.evaluate are given ---------------------------------


@pytest.mark.parametrize("sliced", [True, False])
def test_train_input_holds_the_train_batches_with_kerass_shapes(small, monkeypatch, sliced):
    from keras_lottery.data import pipeline

    if not sliced:  # every segment made batch by batch, as long ones are
        monkeypatch.setattr(pipeline, "SLICED_BYTES", 0)
    made = data.train_input(small, 8, seed=3, start_step=5, num_steps=4)
    batches = data.TrainBatches(small.x_train, small.y_train, 8, seed=3, start_step=5,
                                num_steps=4, augment=small.augment)
    # The batch size left unknown, as Keras makes it from a PyDataset.
    assert [tuple(s.shape) for s in made.element_spec] == [(None, 32, 32, 3), (None,)]
    found = [(x.numpy(), y.numpy()) for x, y in made]
    assert len(found) == 4
    for (x, y), (bx, by) in zip(found, (batches[i] for i in range(4))):
        np.testing.assert_array_equal(x, bx)
        np.testing.assert_array_equal(y, by)


def test_eval_input_holds_the_eval_batches_with_an_unknown_batch_size(small):
    made = data.eval_input(small.x_test, small.y_test, 6, small.normalize)
    batches = data.EvalBatches(small.x_test, small.y_test, 6, normalize=small.normalize)
    assert [tuple(s.shape) for s in made.element_spec] == [(None, 32, 32, 3), (None,)]
    found = list(made)
    assert len(found) == len(batches)
    for (x, y), (bx, by) in zip(found, (batches[i] for i in range(len(batches)))):
        np.testing.assert_array_equal(x.numpy(), bx)
        np.testing.assert_array_equal(y.numpy(), by)
