"""Tests for CIFAR-100: both official versions, the layouts, the errors, Keras."""

import os
import pickle
import pickletools
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import cifar_fixtures as cf  # noqa: E402
from error_messages import single_line  # noqa: E402

from keras_lottery import data  # noqa: E402
from keras_lottery.errors import LotteryError  # noqa: E402


@pytest.fixture(scope="module")
def parts():
    return cf.make_cifar100(train_records=30, test_records=12, seed=3)


def _assert_matches(ds, parts):
    (x_train, fine_train, coarse_train) = parts["train"]
    (x_test, fine_test, _) = parts["test"]
    assert ds.name == "cifar100" and ds.source == "cifar100"
    assert ds.num_classes == 100
    assert ds.augment is True and ds.normalize == data.PER_IMAGE
    assert ds.image_shape == (32, 32, 3)
    assert ds.x_train.dtype == np.uint8 and ds.y_train.dtype == np.int32
    np.testing.assert_array_equal(ds.x_train, x_train)
    np.testing.assert_array_equal(ds.x_test, x_test)
    np.testing.assert_array_equal(ds.y_train, fine_train)  # fine, not coarse
    np.testing.assert_array_equal(ds.y_test, fine_test)
    assert not np.array_equal(ds.y_train, coarse_train)


def test_binary_reader_round_trip(tmp_path, parts):
    folder = cf.write_cifar100_binary(tmp_path / "cifar-100-binary", parts)
    _assert_matches(data.read_cifar100_binary(folder), parts)


def test_python_reader_round_trip(tmp_path, parts):
    folder = cf.write_cifar100_python(tmp_path / "cifar-100-python", parts)
    _assert_matches(data.read_cifar100_python(folder), parts)


def test_python_fixture_is_what_numpy_itself_unpickles(parts):
    # The hand-written Python 2 pickle (our own trusted bytes), read by real
    # numpy: keys, the fine and coarse lists, the pixel rows.
    images, fine, coarse = parts["train"]
    raw = cf.python2_cifar100_bytes(images, fine, coarse, "training batch 1 of 1")
    loaded = pickle.loads(raw, encoding="bytes")
    assert list(loaded) == [
        b"filenames", b"batch_label", b"fine_labels", b"coarse_labels", b"data",
    ]
    assert loaded[b"fine_labels"] == fine and loaded[b"coarse_labels"] == coarse
    np.testing.assert_array_equal(
        loaded[b"data"], images.transpose(0, 3, 1, 2).reshape(len(images), -1)
    )


def test_long_label_lists_are_batched_like_cpickle(tmp_path):
    # 2,001 labels: two MARK...APPENDS groups of 1,000 and a lone APPEND per
    # list, as cPickle wrote the real 50,000-label file; the reader takes it.
    parts = cf.make_cifar100(train_records=2001, test_records=3, seed=1)
    images, fine, coarse = parts["train"]
    raw = cf.python2_cifar100_bytes(images, fine, coarse, "b")
    ops = [op.name for op, _, _ in pickletools.genops(raw)]
    assert ops.count("APPENDS") == 2 * 3  # filenames, fine and coarse labels
    assert ops.count("APPEND") == 3
    folder = cf.write_cifar100_python(tmp_path / "p", parts)
    assert data.read_cifar100_python(folder).y_train.tolist() == fine


def test_both_readers_agree(tmp_path, parts):
    a = data.read_cifar100_binary(cf.write_cifar100_binary(tmp_path / "b", parts))
    b = data.read_cifar100_python(cf.write_cifar100_python(tmp_path / "p", parts))
    for field in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert a.fingerprint == b.fingerprint


@pytest.mark.parametrize("version", ["binary", "python"])
@pytest.mark.parametrize("form", ["parent", "direct", "other-name"])
def test_load_data_dir_forms(tmp_path, parts, version, form):
    write = cf.write_cifar100_binary if version == "binary" else cf.write_cifar100_python
    name = "mine" if form == "other-name" else f"cifar-100-{version}"
    folder = write(tmp_path / name, parts)
    ds = data.load("cifar100", tmp_path if form == "parent" else folder)
    _assert_matches(ds, parts)


def test_parent_prefers_binary(tmp_path, parts):
    cf.write_cifar100_binary(tmp_path / "cifar-100-binary", parts)
    cf.write_cifar100_python(tmp_path / "cifar-100-python", cf.make_cifar100(seed=9))
    _assert_matches(data.load("cifar100", tmp_path), parts)


def test_cifar10_folder_is_not_cifar100(tmp_path):
    cf.write_python(tmp_path / "cifar-10-batches-py", cf.make_batches(2))
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"\x1f\x8b")
    with pytest.raises(LotteryError) as error:
        data.load("cifar100", tmp_path)
    message = single_line(error)
    assert "no CIFAR-100 files found" in message and "cifar-100-python/" in message
    assert "extract cifar-10" not in message  # CIFAR-10's archive is no hint here
    assert error.value.param == "data_dir"


def test_unextracted_archive_hint(tmp_path):
    (tmp_path / "cifar-100-python.tar.gz").write_bytes(b"\x1f\x8b")
    with pytest.raises(LotteryError, match="extract cifar-100-python.tar.gz"):
        data.load("cifar100", tmp_path)


@pytest.mark.parametrize("version", ["binary", "python"])
def test_missing_file(tmp_path, parts, version):
    write = cf.write_cifar100_binary if version == "binary" else cf.write_cifar100_python
    folder = write(tmp_path / f"cifar-100-{version}", parts)
    name = "test.bin" if version == "binary" else "test"
    os.remove(folder / name)
    with pytest.raises(LotteryError) as error:
        data.load("cifar100", tmp_path)
    message = single_line(error)
    assert f"missing {name}" in message and f"cifar-100-{version}.tar.gz" in message


def test_truncated_binary(tmp_path, parts):
    folder = cf.write_cifar100_binary(tmp_path / "b", parts)
    path = folder / "train.bin"
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(LotteryError) as error:
        data.read_cifar100_binary(folder)
    message = single_line(error)
    assert "train.bin" in message and "3074-byte record" in message


@pytest.mark.parametrize(
    "column, value, match",
    [(1, 100, "record 4 has fine label 100 .* 0-99"),
     (0, 20, "record 4 has coarse label 20 .* 0-19")],
)
def test_binary_bad_label(tmp_path, parts, column, value, match):
    folder = cf.write_cifar100_binary(tmp_path / "b", parts)
    path = folder / "test.bin"
    raw = bytearray(path.read_bytes())
    raw[4 * 3074 + column] = value
    path.write_bytes(bytes(raw))
    with pytest.raises(LotteryError, match=match):
        data.read_cifar100_binary(folder)


def test_python_bad_fine_label(tmp_path, parts):
    folder = cf.write_cifar100_python(tmp_path / "p", parts)
    images, fine, coarse = parts["test"]
    raw = cf.python2_cifar100_bytes(images, [100] + fine[1:], coarse, "t")
    (folder / "test").write_bytes(raw)
    with pytest.raises(LotteryError, match=r"b'fine_labels' is not a list of 12 "
                       r"integers 0-99"):
        data.read_cifar100_python(folder)


def test_python_cifar10_batch_is_not_cifar100(tmp_path, parts):
    # A CIFAR-10 batch has b"labels", not b"fine_labels".
    folder = cf.write_cifar100_python(tmp_path / "p", parts)
    images, fine, _ = parts["test"]
    (folder / "test").write_bytes(cf.python2_batch_bytes(images, [v % 10 for v in fine]))
    with pytest.raises(LotteryError, match="b'fine_labels'"):
        data.read_cifar100_python(folder)


def test_truncated_pickle(tmp_path, parts):
    folder = cf.write_cifar100_python(tmp_path / "p", parts)
    path = folder / "train"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(LotteryError) as error:
        data.read_cifar100_python(folder)
    message = single_line(error)
    assert "train" in message and "truncated or corrupt" in message


def test_malicious_pickle_refused(tmp_path, parts):
    target = tmp_path / "pwned"
    payload = b"cos\nsystem\n(S'touch " + str(target).encode() + b"'\ntR."
    folder = cf.write_cifar100_python(tmp_path / "cifar-100-python", parts)
    (folder / "train").write_bytes(payload)
    with pytest.raises(LotteryError) as error:
        data.load("cifar100", tmp_path)
    message = single_line(error)
    assert "refused to unpickle os.system" in message and "CIFAR-100" in message
    assert not target.exists()


# -- Keras download path (stubbed) ------------------------------------------------


def test_keras_path_asks_for_fine_labels(monkeypatch, parts):
    import keras

    images, fine, _ = parts["train"]
    asked = []

    def fake(label_mode="fine"):
        asked.append(label_mode)
        nchw = images.transpose(0, 3, 1, 2)  # as under channels_first
        labels = np.asarray(fine, np.int64)[:, None]
        return (nchw, labels), (nchw[:5], labels[:5])

    monkeypatch.setattr(keras.datasets.cifar100, "load_data", fake)
    ds = data.load("cifar100")
    assert asked == ["fine"]
    assert ds.num_classes == 100 and ds.source == "cifar100" and ds.augment
    np.testing.assert_array_equal(ds.x_train, images)
    assert ds.y_train.dtype == np.int32 and ds.y_train.tolist() == fine


def test_keras_download_failure(monkeypatch):
    import keras

    def fail(label_mode="fine"):
        raise OSError("URL fetch failure\non https://example/cifar-100.tar.gz")

    monkeypatch.setattr(keras.datasets.cifar100, "load_data", fail)
    with pytest.raises(LotteryError) as error:
        data.load("cifar100")
    message = single_line(error)
    assert "CIFAR-100" in message and "URL fetch failure" in message
    assert message.startswith("dataset=") and "pass its folder as data_dir" in message
