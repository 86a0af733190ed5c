"""Tests for your own data (`arrays`, `npz:PATH`), the Dataset's derived
fields (fingerprint, classes, shapes, source) and sizes without loading."""

import os
import subprocess
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from error_messages import single_line  # noqa: E402

from keras_lottery import data  # noqa: E402
from keras_lottery.errors import LotteryError  # noqa: E402


def _images(n=6, shape=(4, 4, 3), dtype=np.uint8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n,) + shape).astype(dtype)


def test_arrays_as_given():
    x_train, x_test = _images(6), _images(3, seed=1)
    ds = data.arrays(x_train, [0, 4, 1, 1, 2, 0], x_test, [1, 1, 0])
    assert ds.name == "arrays" and ds.source is None
    assert ds.num_classes == 5  # largest label + 1; class 3 never appears
    assert ds.image_shape == ds.input_shape == (4, 4, 3)
    assert ds.augment is False and ds.normalize is None
    assert ds.x_train is x_train  # not copied
    assert ds.y_train.dtype == np.int32 and ds.y_train.tolist() == [0, 4, 1, 1, 2, 0]


def test_arrays_flat_float_and_label_forms():
    x = np.random.default_rng(0).normal(size=(5, 7))
    ds = data.arrays(x, np.array([[0.0], [1.0], [2.0], [1.0], [0.0]]), x[:2],
                     np.array([6, 0], np.uint64), name="mine")
    assert ds.name == "mine" and ds.image_shape == (7,) and ds.num_classes == 7
    assert ds.y_train.tolist() == [0, 1, 2, 1, 0] and ds.y_train.dtype == np.int32


def test_arrays_cifar_augmentation():
    ds = data.arrays(_images(8), np.arange(8) % 2, _images(2), [0, 1], augment="cifar")
    assert ds.augment is True
    batches = data.TrainBatches(ds.x_train, ds.y_train, 4, seed=0, num_steps=2,
                                augment=ds.augment, normalize=ds.normalize)
    images, _ = batches[0]
    assert images.shape == (4, 4, 4, 3) and images.dtype == np.float32


_X = _images(4)
_Y = [0, 1, 2, 3]


@pytest.mark.parametrize(
    "change, match",
    [
        ({"augment": "yes"}, r"augment='yes': expected None or 'cifar'"),
        ({"augment": True}, r"augment=True: expected None or 'cifar'"),
        ({"augment": "cifar", "x_train": np.zeros((4, 9)), "x_test": np.zeros((2, 9))},
         r"augment='cifar': .*not shape \(4, 9\)"),
        ({"y_train": [0, 1, 2]}, r"y_train has shape \(3,\) for 4 images"),
        ({"y_test": [[0, 1], [1, 0]]}, r"y_test has shape \(2, 2\)"),
        ({"y_train": [0, 1, 2.5, 3]}, "y_train holds 2.5 at index 2; pass integer"),
        ({"y_train": [0, 1, np.nan, 3]}, "y_train holds nan at index 2"),
        ({"y_train": np.array([True, False, True, True])}, "y_train has dtype bool"),
        ({"y_test": np.array(["a", "b"])}, "y_test has dtype <U1"),
        ({"y_train": [0, -1, 2, 3]}, "y_train holds -1 at index 1"),
        ({"y_train": [0, 1, 2, 2**40]}, "too large"),
        ({"x_train": _X.astype(float) * np.array([1, np.nan, 1, 1])[:, None, None, None]},
         r"x_train holds NaN or infinite values \(first in example 1\)"),
        ({"x_test": np.full((2, 4, 4, 3), np.inf)}, "x_test holds NaN or infinite"),
        ({"x_train": np.zeros((4, 4, 4))}, r"add a channel axis"),
        ({"x_train": np.zeros(4)}, r"x_train has shape \(4,\); expected"),
        ({"x_train": np.zeros((4, 1, 4, 4, 3))}, r"x_train has shape \(4, 1, 4, 4, 3\)"),
        ({"x_train": np.zeros((0, 4, 4, 3)), "y_train": []}, "x_train is empty"),
        ({"x_test": np.zeros((2, 0))}, "x_test is empty"),
        ({"x_test": np.zeros((2, 4, 4, 1))}, "x_train examples are .* but x_test"),
        ({"x_train": _X.astype(bool)}, "x_train has dtype bool; pass real numbers"),
        ({"x_train": _X.astype(complex)}, "x_train has dtype complex128"),
        ({"x_train": np.array([[1, 2], [3]], dtype=object)}, "x_train has dtype object"),
        ({"name": ""}, "name='': expected a non-empty string"),
    ],
)
def test_arrays_bad_input(change, match):
    args = {"x_train": _X, "y_train": _Y, "x_test": _X[:2], "y_test": [0, 1], **change}
    keywords = {k: args.pop(k) for k in ("augment", "name") if k in args}
    with pytest.raises(LotteryError, match=match) as error:
        data.arrays(**args, **keywords)
    single_line(error)


# -- npz ------------------------------------------------------------------------


def _write_npz(path, **arrays):
    np.savez(path, **arrays)
    return path


@pytest.fixture
def npz(tmp_path):
    return _write_npz(tmp_path / "mine.npz", x_train=_X, y_train=_Y,
                      x_test=_X[:2], y_test=[3, 3])


def test_npz_round_trip(npz, monkeypatch):
    monkeypatch.chdir(npz.parent)
    ds = data.load("npz:mine.npz")  # relative: the source is absolute
    assert ds.source == f"npz:{npz}" and os.path.isabs(ds.source[4:])
    assert ds.name == "mine.npz" and ds.num_classes == 4 and ds.normalize is None
    np.testing.assert_array_equal(ds.x_train, _X)
    again = data.load(ds.source)
    assert again.fingerprint == ds.fingerprint
    assert data.train_size(ds.source) == 4


@pytest.mark.parametrize(
    "keys, match",
    [
        (("x_train", "y_train", "x_test"), r"keys missing y_test; it must hold exactly"),
        (("x_train", "y_train", "x_test", "y_test", "extra", "alpha"),
         r"keys unexpected alpha, extra"),
        (("x_train", "labels", "x_test", "y_test"),
         r"keys missing y_train; unexpected labels"),
    ],
)
def test_npz_keys(tmp_path, keys, match):
    arrays = {"x_train": _X, "x_test": _X[:2], "y_test": [0, 0]}
    path = _write_npz(tmp_path / "d.npz", **{k: arrays.get(k, _Y) for k in keys})
    with pytest.raises(LotteryError, match=match) as error:
        data.load(f"npz:{path}")
    single_line(error)


class _Touch:
    """Pickles as a call to `os.system`: what a plain unpickle would run."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return os.system, (f"touch {self.target}",)


def test_npz_object_arrays_are_not_unpickled(tmp_path):
    target = tmp_path / "pwned"
    path = tmp_path / "d.npz"
    payload = np.array([_Touch(target)], dtype=object)
    np.savez(path, x_train=payload, y_train=_Y, x_test=_X, y_test=_Y)
    with pytest.raises(LotteryError, match="not objects") as error:
        data.load(f"npz:{path}")
    single_line(error)
    assert not target.exists()
    with np.load(path, allow_pickle=True) as npz:  # the payload is live
        npz["x_train"]
    assert target.exists()


@pytest.mark.parametrize("content", [b"hello, not a zip", b"PK\x03\x04 broken", b""])
def test_not_an_npz(tmp_path, content):
    path = tmp_path / "d.npz"
    path.write_bytes(content)
    with pytest.raises(LotteryError, match="not an npz file") as error:
        data.load(f"npz:{path}")
    single_line(error)


def test_npy_is_not_an_npz(tmp_path):
    path = tmp_path / "d.npy"
    np.save(path, _X)
    with pytest.raises(LotteryError, match=r"holds one array \(.npy\)"):
        data.load(f"npz:{path}")


def test_npz_missing_file_and_data_dir(tmp_path, npz):
    with pytest.raises(LotteryError, match="no such file") as error:
        data.load(f"npz:{tmp_path / 'nope.npz'}")
    assert error.value.param == "dataset"
    with pytest.raises(LotteryError, match="drop it for your npz file") as error:
        data.load(f"npz:{npz}", tmp_path)
    assert error.value.param == "data_dir"


def test_npz_contents_are_checked_like_arrays(tmp_path):
    path = _write_npz(tmp_path / "d.npz", x_train=_X, y_train=[0, 1, 2],
                      x_test=_X, y_test=_Y)
    with pytest.raises(LotteryError, match="y_train has shape"):
        data.load(f"npz:{path}")


# -- Fingerprint, sizes ------------------------------------------------------------


def test_fingerprint_covers_bytes_dtype_and_shape():
    x, y = _images(4), np.array(_Y)
    base = data.arrays(x, y, x, y).fingerprint
    assert len(base) == 64 and int(base, 16) >= 0
    assert data.arrays(x.copy(), y.copy(), x.copy(), y).fingerprint == base
    edited = x.copy()
    edited[2, 1, 1, 0] ^= 1
    assert data.arrays(edited, y, x, y).fingerprint != base
    assert data.arrays(x.astype(np.int16), y, x.astype(np.int16), y).fingerprint != base
    # Same bytes, other dtype: uint8 and int8 agree on 0..127.
    half = x // 2
    signed = half.astype(np.int8)
    assert signed.tobytes() == half.tobytes()
    assert (data.arrays(half, y, half, y).fingerprint
            != data.arrays(signed, y, signed, y).fingerprint)
    flat = x.reshape(4, -1)
    assert data.arrays(flat, y, flat, y).fingerprint != base
    assert data.arrays(x, y, x, y[::-1].copy()).fingerprint != base
    # Train and test are told apart: swapping them changes the digest.
    assert data.arrays(x[:2], y[:2], x, y).fingerprint != data.arrays(
        x, y, x[:2], y[:2]).fingerprint


def test_fingerprint_is_computed_once():
    x, y = _images(4), np.array(_Y)
    ds = data.arrays(x, y, x, y)
    first = ds.fingerprint
    x[0] = 0  # documented: do not edit after reading the fingerprint
    assert ds.fingerprint == first
    assert data.arrays(x, y, x, y).fingerprint != first


def test_train_sizes_match_the_datasets():
    assert data.TRAIN_SIZES == {
        "cifar10": 50000, "cifar100": 50000, "mnist": 60000,
        "fashion_mnist": 60000, "digits": 1437, "synthetic": 512,
    }
    assert set(data.TRAIN_SIZES) == set(data.DATASETS)
    for name in ("digits", "synthetic"):
        assert data.train_size(name) == len(data.load(name).x_train)
    with pytest.raises(LotteryError, match="unknown dataset") as error:
        data.train_size("svhn")
    assert error.value.param == "dataset"


def test_importing_data_does_not_import_tensorflow():
    code = ("import sys, keras_lottery.data; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'tensorflow'))")
    env = dict(os.environ, KERAS_BACKEND="numpy")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True, timeout=300)
    assert out.stdout.strip().splitlines()[-1] == "[]"
