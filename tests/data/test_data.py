"""Tests for `keras_lottery.data`'s CIFAR-10 readers and Keras download path."""

import os
import pickle
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import cifar_fixtures as cf  # noqa: E402
from error_messages import single_line  # noqa: E402

from keras_lottery import data  # noqa: E402
from keras_lottery.errors import LotteryError  # noqa: E402
RECORDS = 20


@pytest.fixture(scope="module")
def batches():
    return cf.make_batches(RECORDS, seed=1)


def _expected(batches):
    x_train = np.concatenate([batches[n][0] for n in cf.TRAIN_FILES])
    y_train = np.concatenate([batches[n][1] for n in cf.TRAIN_FILES])
    x_test, y_test = batches[cf.TEST_FILE]
    return x_train, y_train, x_test, np.asarray(y_test)


def _assert_matches(ds, batches):
    x_train, y_train, x_test, y_test = _expected(batches)
    assert ds.name == "cifar10"
    assert ds.num_classes == 10
    assert ds.augment is True
    assert ds.image_shape == (32, 32, 3)
    assert ds.x_train.dtype == np.uint8 and ds.x_test.dtype == np.uint8
    assert ds.y_train.dtype == np.int32 and ds.y_test.dtype == np.int32
    assert ds.x_train.shape == (5 * RECORDS, 32, 32, 3)
    np.testing.assert_array_equal(ds.x_train, x_train)
    np.testing.assert_array_equal(ds.y_train, y_train)
    np.testing.assert_array_equal(ds.x_test, x_test)
    np.testing.assert_array_equal(ds.y_test, y_test)


# -- Readers ------------------------------------------------------------------


def test_binary_reader_round_trip(tmp_path, batches):
    folder = cf.write_binary(tmp_path / "cifar-10-batches-bin", batches)
    _assert_matches(data.read_cifar10_binary(folder), batches)


def test_python_reader_round_trip(tmp_path, batches):
    folder = cf.write_python(tmp_path / "cifar-10-batches-py", batches)
    _assert_matches(data.read_cifar10_python(folder), batches)


def test_python_fixture_is_what_numpy_itself_unpickles(batches):
    # Cross-checks the hand-written encoder (our own trusted bytes) against
    # numpy's real `_reconstruct`.
    images, labels = batches[cf.TEST_FILE]
    loaded = pickle.loads(cf.python2_batch_bytes(images, labels), encoding="bytes")
    assert loaded[b"labels"] == labels
    np.testing.assert_array_equal(
        loaded[b"data"], images.transpose(0, 3, 1, 2).reshape(RECORDS, -1)
    )


def _known_pixel_record(label):
    """A raw record: R plane 10, G plane 20, B plane 30, one marked pixel each."""
    planes = np.zeros((3, 32, 32), np.uint8)
    planes[0] += 10
    planes[1] += 20
    planes[2] += 30
    planes[0, 5, 7] = 201  # row 5, column 7
    planes[1, 5, 7] = 202
    planes[2, 31, 0] = 203  # last row, first column
    return planes


def test_nhwc_layout_known_pixels(tmp_path):
    # Raw bytes written by hand (not through the fixture's transpose).
    planes = _known_pixel_record(label=3)
    record = bytes([3]) + planes.tobytes()
    bin_dir = tmp_path / "bin"
    py_dir = tmp_path / "py"
    bin_dir.mkdir()
    py_dir.mkdir()
    nhwc = planes.transpose(1, 2, 0)[None]
    for name in cf.ALL_FILES:
        (bin_dir / (name + ".bin")).write_bytes(record * 2)
        pickled = cf.python2_batch_bytes(np.repeat(nhwc, 2, 0), [3, 3])
        (py_dir / name).write_bytes(pickled)
    for ds in (data.read_cifar10_binary(bin_dir), data.read_cifar10_python(py_dir)):
        img = ds.x_test[1]
        assert img.shape == (32, 32, 3)
        assert tuple(img[5, 7]) == (201, 202, 30)
        assert tuple(img[31, 0]) == (10, 20, 203)
        assert tuple(img[0, 0]) == (10, 20, 30)
        assert ds.y_test.tolist() == [3, 3]


def test_both_readers_agree(tmp_path, batches):
    a = data.read_cifar10_binary(cf.write_binary(tmp_path / "b", batches))
    b = data.read_cifar10_python(cf.write_python(tmp_path / "p", batches))
    for field in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
        assert getattr(a, field).dtype == getattr(b, field).dtype


@pytest.mark.parametrize("version", ["bin", "py"])
@pytest.mark.parametrize("form", ["parent", "direct"])
def test_load_data_dir_forms(tmp_path, batches, version, form):
    write = cf.write_binary if version == "bin" else cf.write_python
    folder = write(tmp_path / f"cifar-10-batches-{version}", batches)
    ds = data.load("cifar10", tmp_path if form == "parent" else folder)
    _assert_matches(ds, batches)


def test_direct_folder_with_other_name(tmp_path, batches):
    folder = cf.write_python(tmp_path / "mine", batches)
    _assert_matches(data.load("cifar10", folder), batches)


def test_parent_prefers_binary(tmp_path, batches):
    cf.write_binary(tmp_path / "cifar-10-batches-bin", batches)
    cf.write_python(tmp_path / "cifar-10-batches-py", cf.make_batches(RECORDS, seed=2))
    _assert_matches(data.load("cifar10", tmp_path), batches)


def test_missing_folder(tmp_path):
    with pytest.raises(LotteryError) as error:
        data.load("cifar10", tmp_path / "nope")
    message = single_line(error)
    assert "nope" in message and "no such directory" in message


def test_data_dir_is_a_file(tmp_path):
    path = tmp_path / "file"
    path.write_bytes(b"x")
    with pytest.raises(LotteryError, match="not a directory"):
        data.load("cifar10", path)


def test_wrong_layout(tmp_path):
    (tmp_path / "readme.txt").write_text("hello")
    with pytest.raises(LotteryError) as error:
        data.load("cifar10", tmp_path)
    message = single_line(error)
    assert "no CIFAR-10 files found" in message
    assert "cifar-10-batches-bin/" in message and "cifar-10-batches-py/" in message
    assert "cifar.html" in message


def test_unextracted_archive_hint(tmp_path):
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"\x1f\x8b")
    with pytest.raises(LotteryError, match="extract cifar-10-python.tar.gz"):
        data.load("cifar10", tmp_path)


@pytest.mark.parametrize("version", ["bin", "py"])
def test_missing_file(tmp_path, batches, version):
    write = cf.write_binary if version == "bin" else cf.write_python
    folder = write(tmp_path / f"cifar-10-batches-{version}", batches)
    suffix = ".bin" if version == "bin" else ""
    os.remove(folder / ("data_batch_3" + suffix))
    with pytest.raises(LotteryError) as error:
        data.load("cifar10", tmp_path)
    assert "missing data_batch_3" + suffix in single_line(error)


def test_truncated_binary(tmp_path, batches):
    folder = cf.write_binary(tmp_path / "cifar-10-batches-bin", batches)
    path = folder / "data_batch_2.bin"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(LotteryError) as error:
        data.load("cifar10", tmp_path)
    message = single_line(error)
    assert "data_batch_2.bin" in message and "truncated" in message


def test_empty_binary(tmp_path, batches):
    folder = cf.write_binary(tmp_path / "b", batches)
    (folder / "test_batch.bin").write_bytes(b"")
    with pytest.raises(LotteryError, match="test_batch.bin"):
        data.read_cifar10_binary(folder)


def test_binary_bad_label(tmp_path, batches):
    folder = cf.write_binary(tmp_path / "b", batches)
    path = folder / "test_batch.bin"
    raw = bytearray(path.read_bytes())
    raw[3 * 3073] = 10  # label byte of record 3
    path.write_bytes(bytes(raw))
    with pytest.raises(LotteryError, match="record 3 has label 10"):
        data.read_cifar10_binary(folder)


@pytest.mark.parametrize("keep", [0.5, 0.999, 0.01])
def test_truncated_pickle(tmp_path, batches, keep):
    folder = cf.write_python(tmp_path / "cifar-10-batches-py", batches)
    path = folder / "data_batch_4"
    raw = path.read_bytes()
    path.write_bytes(raw[: int(len(raw) * keep)])
    with pytest.raises(LotteryError) as error:
        data.load("cifar10", tmp_path)
    message = single_line(error)
    assert "data_batch_4" in message and "truncated or corrupt" in message


def _malicious_payloads(target):
    """Protocol 0 and 2 pickles that create `target` when plainly unpickled."""
    cmd = f"touch {target}".encode()
    path = str(target).encode()
    return {
        "os.system": b"cos\nsystem\n(S'" + cmd + b"'\ntR.",
        "posix.system": b"cposix\nsystem\n(S'" + cmd + b"'\ntR.",
        "builtins.open": b"\x80\x02cbuiltins\nopen\nU" + bytes([len(path)]) + path
        + b"U\x01w\x86R.",
        "__builtin__.open": b"c__builtin__\nopen\n(S'" + path + b"'\nS'w'\ntR.",
        "subprocess.Popen": b"csubprocess\nPopen\n((S'touch'\nS'" + path + b"'\nltR.",
        "builtins.eval": b"cbuiltins\neval\n(S'open(" + repr(str(target)).encode()
        + b", \"w\")'\ntR.",
        # A plausible batch dict whose labels entry runs the payload.
        "nested": b"\x80\x02}(U\x06labelscos\nsystem\nU" + bytes([len(cmd)]) + cmd
        + b"\x85Ru.",
    }


@pytest.mark.parametrize("kind", sorted(_malicious_payloads("x")))
def test_malicious_pickle_refused(tmp_path, batches, kind):
    target = tmp_path / "pwned"
    payload = _malicious_payloads(target)[kind]
    folder = cf.write_python(tmp_path / "cifar-10-batches-py", batches)
    (folder / "data_batch_1").write_bytes(payload)
    with pytest.raises(LotteryError) as error:
        data.load("cifar10", tmp_path)
    message = single_line(error)
    assert "data_batch_1" in message and "refused to unpickle" in message
    assert not target.exists()


def test_malicious_payloads_are_live(tmp_path):
    # Proves the payloads above would work: a plain unpickle creates the file.
    target = tmp_path / "pwned"
    pickle.loads(_malicious_payloads(target)["builtins.open"]).close()
    assert target.exists()


def test_numpy2_globals_refused(tmp_path, batches):
    # What Python 3 + numpy 2 would write is not what the real files hold.
    images, labels = batches[cf.TEST_FILE]
    folder = cf.write_python(tmp_path / "p", batches)
    modern = pickle.dumps({b"data": images.reshape(RECORDS, -1), b"labels": labels}, 2)
    (folder / cf.TEST_FILE).write_bytes(modern)
    with pytest.raises(LotteryError, match="refused to unpickle"):
        data.read_cifar10_python(folder)


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda i, l: (i[:, :16], l), r"shape \(20, 1536\)"),
        (lambda i, l: (i, l[:-1]), "b'labels'"),
        (lambda i, l: (i, [12] + l[1:]), "b'labels'"),
    ],
)
def test_python_batch_contents_validated(tmp_path, batches, mutate, match):
    images, labels = batches[cf.TEST_FILE]
    folder = cf.write_python(tmp_path / "p", batches)
    images, labels = mutate(images, list(labels))
    (folder / cf.TEST_FILE).write_bytes(cf.python2_batch_bytes(images, labels))
    with pytest.raises(LotteryError, match=match):
        data.read_cifar10_python(folder)


def test_pickle_not_a_dict(tmp_path, batches):
    folder = cf.write_python(tmp_path / "p", batches)
    (folder / cf.TEST_FILE).write_bytes(b"\x80\x02]q\x01.")
    with pytest.raises(LotteryError, match="holds a list"):
        data.read_cifar10_python(folder)


def test_pickle_wrong_dtype_refused(tmp_path, batches):
    folder = cf.write_python(tmp_path / "p", batches)
    raw = cf.python2_batch_bytes(*batches[cf.TEST_FILE])
    doctored = raw.replace(b"U\x02u1", b"U\x02f8", 1)
    assert doctored != raw
    (folder / cf.TEST_FILE).write_bytes(doctored)
    with pytest.raises(LotteryError, match="not uint8"):
        data.read_cifar10_python(folder)


# -- Keras download path (stubbed: tests never touch the network) ---------------


def _fake_load_data(layout):
    rng = np.random.default_rng(0)
    x_train = rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    x_test = rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    y_train = np.arange(6, dtype=np.uint8)[:, None]
    y_test = np.arange(4, dtype=np.uint8)[:, None]
    if layout == "channels_first":
        x_train = x_train.transpose(0, 3, 1, 2)
        x_test = x_test.transpose(0, 3, 1, 2)
    return (x_train, y_train), (x_test, y_test)


@pytest.mark.parametrize("layout", ["channels_last", "channels_first"])
def test_keras_download_path(monkeypatch, layout):
    import keras

    fake = lambda: _fake_load_data(layout)  # noqa: E731
    monkeypatch.setattr(keras.datasets.cifar10, "load_data", fake)
    ds = data.load("cifar10")
    (x_train, _), (x_test, _) = _fake_load_data("channels_last")
    np.testing.assert_array_equal(ds.x_train, x_train)
    np.testing.assert_array_equal(ds.x_test, x_test)
    assert ds.y_train.dtype == np.int32 and ds.y_train.tolist() == list(range(6))
    assert ds.y_test.shape == (4,)


def test_keras_download_failure(monkeypatch):
    import keras

    def fail():
        raise Exception("URL fetch failure on https://example/cifar.tar.gz:\nNone")

    monkeypatch.setattr(keras.datasets.cifar10, "load_data", fail)
    with pytest.raises(LotteryError) as error:
        data.load("cifar10")
    message = single_line(error)
    assert "URL fetch failure" in message
    assert message.startswith("dataset=") and "pass its folder as data_dir" in message
