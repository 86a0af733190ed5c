"""Tests for `keras_lottery.data`: `load`, the synthetic set, the bundled digits."""

import hashlib
import os
import pathlib
import re
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from error_messages import single_line  # noqa: E402

import keras_lottery  # noqa: E402
from keras_lottery import data  # noqa: E402
from keras_lottery.data import bundled  # noqa: E402
from keras_lottery.errors import LotteryError  # noqa: E402


# -- load and synthetic ---------------------------------------------------------


def test_unknown_dataset():
    with pytest.raises(LotteryError) as error:
        data.load("imagenet")
    message = single_line(error)
    assert error.value.param == "dataset" and "'imagenet'" in message
    for name in data.DATASETS:
        assert name in message


def test_synthetic_shapes_and_determinism():
    ds = data.load("synthetic", seed=3)
    assert ds.name == "synthetic" and ds.num_classes == 10
    assert ds.augment is True
    assert ds.x_train.shape == (512, 32, 32, 3) and ds.x_test.shape == (256, 32, 32, 3)
    assert ds.x_train.dtype == np.uint8 and ds.y_train.dtype == np.int32
    assert ds.y_train.shape == (512,) and ds.y_test.shape == (256,)
    assert set(np.unique(ds.y_train)) == set(range(10))
    again = data.synthetic(seed=3)
    np.testing.assert_array_equal(ds.x_train, again.x_train)
    np.testing.assert_array_equal(ds.y_test, again.y_test)
    other = data.synthetic(seed=4)
    assert not np.array_equal(ds.x_train, other.x_train)
    small = data.synthetic(num_train=7, num_test=5, seed=0)
    assert small.x_train.shape[0] == 7 and small.y_test.shape == (5,)


def test_synthetic_labels_are_learnable():
    # Nearest class mean on standardized images, as the model will see them.
    ds = data.synthetic(num_train=512, num_test=256, seed=0)
    x_train = data.standardize(ds.x_train).reshape(512, -1)
    x_test = data.standardize(ds.x_test).reshape(256, -1)
    means = np.stack([x_train[ds.y_train == c].mean(0) for c in range(10)])
    distances = ((x_test[:, None, :] - means[None]) ** 2).sum(-1)
    accuracy = (distances.argmin(1) == ds.y_test).mean()
    assert accuracy > 0.5


def test_load_looks_synthetic_up_at_call_time(monkeypatch):
    # benchmarks/throughput.py swaps in CIFAR-sized data this way.
    made = data.synthetic(num_train=3, num_test=2)
    monkeypatch.setattr(bundled, "synthetic", lambda seed=0, **_: made)
    assert data.load("synthetic", seed=4) is made


def test_synthetic_rejects_data_dir(tmp_path):
    with pytest.raises(LotteryError, match="drop it for synthetic"):
        data.load("synthetic", tmp_path)


# -- Bundled digits ---------------------------------------------------------------

DATASETS_DIR = pathlib.Path(keras_lottery.__file__).parent / "datasets"
# Images per digit 0..9 in the UCI test set (the file's 1,797 rows).
DIGIT_CLASS_SIZES = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]


@pytest.fixture(scope="module")
def digits():
    return data.load("digits")


@pytest.fixture(scope="module")
def raw_digits():
    with np.load(DATASETS_DIR / "digits.npz") as npz:
        return {k: npz[k] for k in npz.files}


def test_digits_shapes_dtypes_and_balance(digits):
    assert digits.name == "digits" and digits.num_classes == 10
    assert digits.augment is False
    assert digits.image_shape == (8, 8, 1)
    assert digits.x_train.shape == (1437, 8, 8, 1)
    assert digits.x_test.shape == (360, 8, 8, 1)
    assert digits.x_train.dtype == np.uint8 and digits.x_test.dtype == np.uint8
    assert digits.y_train.dtype == np.int32 and digits.y_test.dtype == np.int32
    assert digits.y_train.shape == (1437,) and digits.y_test.shape == (360,)
    # Stratified: 36 test images per class, the rest for training.
    assert np.bincount(digits.y_test, minlength=10).tolist() == [36] * 10
    train_sizes = np.bincount(digits.y_train, minlength=10).tolist()
    assert train_sizes == [n - 36 for n in DIGIT_CLASS_SIZES]
    assert digits.x_train.min() == 0 and digits.x_train.max() == 255


def test_digits_are_the_bundled_rows_scaled(digits, raw_digits):
    images, labels, test = (raw_digits[k] for k in ("images", "labels", "test_index"))
    assert images.shape == (1797, 8, 8) and images.max() == 16
    is_test = np.zeros(1797, bool)
    is_test[test.astype(int)] = True
    assert is_test.sum() == 360  # no repeats
    expected = np.rint(images.astype(np.float64) * 255 / 16).astype(np.uint8)
    np.testing.assert_array_equal(digits.x_train[..., 0], expected[~is_test])
    np.testing.assert_array_equal(digits.x_test[..., 0], expected[is_test])
    np.testing.assert_array_equal(digits.y_train, labels[~is_test])
    np.testing.assert_array_equal(digits.y_test, labels[is_test])
    # The 17 levels, spot-checked: 8 -> 127.5 -> 128, 1 -> 15.9 -> 16.
    levels = sorted(set(np.unique(digits.x_train)) | set(np.unique(digits.x_test)))
    assert len(levels) == 17
    assert levels[:3] == [0, 16, 32] and levels[8] == 128 and levels[-1] == 255


def test_digits_split_is_the_same_for_every_seed(digits):
    for seed in (0, 1, 12345):
        other = data.load("digits", seed=seed)
        for field in ("x_train", "y_train", "x_test", "y_test"):
            np.testing.assert_array_equal(getattr(other, field), getattr(digits, field))
    # Returned arrays are the caller's own: editing one load leaves the next.
    other.x_test[:] = 0
    assert data.digits().x_test.max() == 255


def test_digits_batches_are_not_augmented(digits):
    # Exactly the standardized images at `batch_indices`, in that order.
    batches = data.TrainBatches(
        digits.x_train, digits.y_train, 64, seed=3, num_steps=30,
        augment=digits.augment,
    )
    for step in (0, 22, 29):  # 22 straddles the first epoch boundary
        images, labels = batches.batch(step)
        indices = data.batch_indices(1437, 64, step, seed=3)
        assert images.shape == (64, 8, 8, 1)
        np.testing.assert_array_equal(labels, digits.y_train[indices])
        np.testing.assert_array_equal(images, data.standardize(digits.x_train[indices]))
    # The default would crop and flip: the flag is what keeps digits intact.
    cropped = data.TrainBatches(digits.x_train, digits.y_train, 64, seed=3, num_steps=1)
    assert not np.array_equal(cropped[0][0], batches[0][0])


def test_digits_are_learnable(digits):
    # Nearest class mean on standardized images: real digits, not noise.
    x_train = data.standardize(digits.x_train).reshape(1437, -1)
    x_test = data.standardize(digits.x_test).reshape(360, -1)
    means = np.stack([x_train[digits.y_train == c].mean(0) for c in range(10)])
    distances = ((x_test[:, None, :] - means[None]) ** 2).sum(-1)
    assert (distances.argmin(1) == digits.y_test).mean() > 0.85


def test_digits_rejects_data_dir(tmp_path):
    with pytest.raises(LotteryError) as error:
        data.load("digits", tmp_path)
    message = single_line(error)
    assert message.startswith("data_dir=") and "drop it for digits" in message


def test_digits_missing_file_is_a_lottery_error(monkeypatch):
    monkeypatch.setattr(bundled, "DIGITS_FILE", "nope.npz")
    with pytest.raises(LotteryError) as error:
        data.load("digits")
    message = single_line(error)
    assert "nope.npz" in message and "reinstall" in message


@pytest.mark.parametrize(
    "doctor, match",
    [
        (lambda a: a["images"].__setitem__((5, 2, 3), 17), "out of range"),
        (lambda a: a.__setitem__("labels", a["labels"][:-1]), "unexpected arrays"),
        (lambda a: a["test_index"].__setitem__(1, a["test_index"][0]), "repeated"),
        (lambda a: a["test_index"].__setitem__(-1, 1797), "out of range"),
    ],
)
def test_digits_doctored_file_is_a_lottery_error(monkeypatch, tmp_path, raw_digits,
                                             doctor, match):
    arrays = {k: v.copy() for k, v in raw_digits.items()}
    doctor(arrays)
    (tmp_path / "datasets").mkdir()
    np.savez_compressed(tmp_path / "datasets" / "digits.npz", **arrays)
    monkeypatch.setattr(bundled.importlib.resources, "files", lambda _: tmp_path)
    with pytest.raises(LotteryError, match=match):
        data.digits()
    (tmp_path / "datasets" / "digits.npz").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(LotteryError, match="corrupt"):
        data.digits()


def test_digits_file_hash_matches_readme():
    readme = (DATASETS_DIR / "README.md").read_text(encoding="utf-8")
    (documented,) = re.findall(r"sha256 of digits\.npz: ([0-9a-f]{64})", readme)
    actual = hashlib.sha256((DATASETS_DIR / "digits.npz").read_bytes()).hexdigest()
    assert actual == documented
    for needed in ("10.24432/C50P49", "CC BY 4.0", "Alpaydin"):
        assert needed in readme
