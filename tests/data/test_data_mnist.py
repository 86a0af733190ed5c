"""Tests for MNIST and Fashion-MNIST: the IDX reader, the layouts, the errors."""

import gzip
import os
import re
import shutil
import struct
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import idx_fixtures as ix  # noqa: E402
from error_messages import single_line  # noqa: E402

from keras_lottery import data  # noqa: E402
from keras_lottery.errors import LotteryError  # noqa: E402


@pytest.fixture(scope="module")
def arrays():
    return ix.make_mnist(train=40, test=16, seed=2)


def _assert_matches(ds, arrays, name="mnist"):
    x_train, y_train, x_test, y_test = arrays
    assert ds.name == name and ds.source == name
    assert ds.num_classes == 10 and ds.augment is False
    assert ds.image_shape == (28, 28, 1) == ds.input_shape
    assert ds.x_train.dtype == np.uint8 and ds.y_train.dtype == np.int32
    np.testing.assert_array_equal(ds.x_train[..., 0], x_train)
    np.testing.assert_array_equal(ds.x_test[..., 0], x_test)
    np.testing.assert_array_equal(ds.y_train, y_train)
    np.testing.assert_array_equal(ds.y_test, y_test)


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("sub", ["", "raw"])
def test_reader_layouts(tmp_path, arrays, gz, sub):
    ix.write_mnist(tmp_path / sub if sub else tmp_path, arrays, gz=gz)
    _assert_matches(data.load("mnist", tmp_path), arrays)


def test_fashion_mnist_reads_the_same_files(tmp_path, arrays):
    ix.write_mnist(tmp_path, arrays, gz=True)
    ds = data.load("fashion_mnist", tmp_path)
    _assert_matches(ds, arrays, name="fashion_mnist")
    _assert_matches(data.read_fashion_mnist(tmp_path), arrays, name="fashion_mnist")


def test_mixed_raw_and_gz(tmp_path, arrays):
    paths = ix.write_mnist(tmp_path, arrays, gz=True)
    with gzip.open(paths[2]) as f:  # the test images, uncompressed
        (tmp_path / ix.NAMES[2]).write_bytes(f.read())
    os.remove(paths[2])
    _assert_matches(data.read_mnist(tmp_path), arrays)


def test_uncompressed_and_top_folder_win(tmp_path, arrays):
    other = ix.make_mnist(train=40, test=16, seed=99)
    ix.write_mnist(tmp_path, arrays)
    ix.write_mnist(tmp_path, other, gz=True)
    ix.write_mnist(tmp_path / "raw", other)
    _assert_matches(data.read_mnist(tmp_path), arrays)


def test_known_bytes_row_major(tmp_path):
    # Raw bytes by hand: pixel (r, c) of image i is byte 16 + i*784 + r*28 + c.
    pixels = bytearray(2 * 784)
    pixels[784 + 3 * 28 + 5] = 200  # image 1, row 3, column 5
    pixels[27] = 7  # image 0, row 0, last column
    images = struct.pack(">4I", 2051, 2, 28, 28) + bytes(pixels)
    labels = struct.pack(">2I", 2049, 2) + bytes([4, 9])
    for name, raw in zip(ix.NAMES, (images, labels, images, labels)):
        (tmp_path / name).write_bytes(raw)
    ds = data.read_mnist(tmp_path)
    assert ds.x_test[1, 3, 5, 0] == 200 and ds.x_test[0, 0, 27, 0] == 7
    assert int(ds.x_test.sum()) == 207
    assert ds.y_train.tolist() == [4, 9]


def test_normalization_is_the_training_sets_mean_and_std(tmp_path, arrays):
    ix.write_mnist(tmp_path, arrays)
    ds = data.read_mnist(tmp_path)
    scaled = arrays[0].astype(np.float64) / 255
    assert isinstance(ds.normalize, data.MeanStd)
    np.testing.assert_allclose(ds.normalize.mean, [scaled.mean()], rtol=1e-12)
    np.testing.assert_allclose(ds.normalize.std, [scaled.std()], rtol=1e-12)
    # What the batches then hold: (x / 255 - mean) / std, test set included.
    images, _ = data.EvalBatches(ds.x_test, ds.y_test, 16, normalize=ds.normalize)[0]
    expected = (arrays[2].astype(np.float64) / 255 - scaled.mean()) / scaled.std()
    np.testing.assert_allclose(images[..., 0], expected, atol=1e-5)


def test_readers_and_keras_path_agree(monkeypatch, tmp_path, arrays):
    import keras

    ix.write_mnist(tmp_path, arrays, gz=True)
    offline = data.read_mnist(tmp_path, name="fashion_mnist")
    x_train, y_train, x_test, y_test = arrays
    fake = lambda: ((x_train, y_train), (x_test, y_test))  # noqa: E731
    monkeypatch.setattr(keras.datasets.fashion_mnist, "load_data", fake)
    online = data.load("fashion_mnist")
    assert online.fingerprint == offline.fingerprint
    assert online.normalize == offline.normalize and online.source == "fashion_mnist"


def test_keras_download_failure(monkeypatch):
    import keras

    def fail():
        raise OSError("URL fetch failure on https://example/mnist.npz")

    monkeypatch.setattr(keras.datasets.mnist, "load_data", fail)
    with pytest.raises(LotteryError) as error:
        data.load("mnist")
    message = single_line(error)
    assert "MNIST" in message and "URL fetch failure" in message
    assert message.startswith("dataset=") and "pass its folder as data_dir" in message


# -- Errors -------------------------------------------------------------------------


@pytest.fixture
def folder(tmp_path, arrays):
    ix.write_mnist(tmp_path, arrays)
    return tmp_path


def _fails(folder, match, name=None):
    with pytest.raises(LotteryError) as error:
        data.read_mnist(folder)
    message = single_line(error)
    if name is not None:
        assert name in message
    assert "re-download" in message or "download" in message
    assert re.search(match, message), message
    return message


@pytest.mark.parametrize("index, magic", [(0, 2049), (1, 2051), (2, 1234)])
def test_wrong_magic_number(folder, index, magic):
    path = folder / ix.NAMES[index]
    raw = bytearray(path.read_bytes())
    raw[:4] = struct.pack(">I", magic)
    path.write_bytes(bytes(raw))
    _fails(folder, f"magic number {magic}, expected", name=ix.NAMES[index])


@pytest.mark.parametrize("index", [0, 3])
def test_truncated_raw_file(folder, index):
    path = folder / ix.NAMES[index]
    path.write_bytes(path.read_bytes()[:-3])
    _fails(folder, r"truncated \(", name=ix.NAMES[index])


def test_truncated_header(folder):
    path = folder / ix.NAMES[2]
    path.write_bytes(path.read_bytes()[:10])
    _fails(folder, "truncated in its header", name=ix.NAMES[2])


def test_empty_file(folder):
    (folder / ix.NAMES[1]).write_bytes(b"")
    _fails(folder, "magic number missing", name=ix.NAMES[1])


def test_trailing_bytes(folder):
    path = folder / ix.NAMES[1]
    path.write_bytes(path.read_bytes() + b"\x00")
    _fails(folder, "longer than its header says", name=ix.NAMES[1])


def test_truncated_gz(tmp_path, arrays):
    paths = ix.write_mnist(tmp_path, arrays, gz=True)
    raw = open(paths[0], "rb").read()
    with open(paths[0], "wb") as f:
        f.write(raw[: len(raw) // 2])
    _fails(tmp_path, "truncated or corrupt gzip", name=ix.NAMES[0])


def test_not_gzip(tmp_path, arrays):
    paths = ix.write_mnist(tmp_path, arrays, gz=True)
    with open(paths[3], "wb") as f:
        f.write(b"this is not gzip at all")
    _fails(tmp_path, "truncated or corrupt gzip", name=ix.NAMES[3])


def test_counts_disagree(tmp_path, arrays):
    x_train, y_train, x_test, y_test = arrays
    ix.write_mnist(tmp_path, (x_train, y_train[:-1], x_test, y_test))
    _fails(tmp_path, r"holds 40 images but .*train-labels-idx1-ubyte 39 labels")


def test_label_out_of_range(tmp_path, arrays):
    x_train, y_train, x_test, y_test = arrays
    y_test = y_test.copy()
    y_test[5] = 10
    ix.write_mnist(tmp_path, (x_train, y_train, x_test, y_test))
    _fails(tmp_path, "label 10 at index 5, but labels are 0-9", name=ix.NAMES[3])


def test_wrong_image_size(tmp_path):
    ix.write_mnist(tmp_path, ix.make_mnist(size=32))
    _fails(tmp_path, "images of 32x32 pixels, expected 28x28", name=ix.NAMES[0])


def test_missing_files(folder):
    os.remove(folder / ix.NAMES[1])
    os.remove(folder / ix.NAMES[2])
    with pytest.raises(LotteryError) as error:
        data.load("mnist", folder)
    message = single_line(error)
    assert "train-labels-idx1-ubyte[.gz], t10k-images-idx3-ubyte[.gz]" in message
    assert "download('mnist'" in message and error.value.param == "data_dir"


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_bad_data_dir(tmp_path, kind):
    path = tmp_path / "x"
    if kind == "file":
        path.write_bytes(b"")
    with pytest.raises(LotteryError) as error:
        data.load("fashion_mnist", path)
    message = single_line(error)
    assert ("no such directory" if kind == "missing" else "not a directory") in message
    assert error.value.param == "data_dir"


def test_unknown_idx_dataset(folder):
    with pytest.raises(LotteryError, match="not an IDX dataset"):
        data.read_mnist(folder, name="kmnist")


def test_a_raw_folder_copy_is_read(tmp_path, arrays):
    # torchvision's layout: the .gz files under <root>/raw.
    ix.write_mnist(tmp_path / "src", arrays, gz=True)
    shutil.copytree(tmp_path / "src", tmp_path / "MNIST" / "raw")
    _assert_matches(data.load("mnist", tmp_path / "MNIST"), arrays)
