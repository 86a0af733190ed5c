"""Tests for `keras_lottery.data`: readers, synthetic data and the pipeline."""

import hashlib
import math
import os
import pathlib
import pickle
import re
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))

import cifar_fixtures as cf  # noqa: E402

import keras_lottery  # noqa: E402
from keras_lottery import data  # noqa: E402
from keras_lottery.data import bundled  # noqa: E402
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


def _single_line(error):
    message = str(error.value)
    assert "\n" not in message
    return message


def test_missing_folder(tmp_path):
    with pytest.raises(LotteryError) as error:
        data.load("cifar10", tmp_path / "nope")
    message = _single_line(error)
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
    message = _single_line(error)
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
    assert "missing data_batch_3" + suffix in _single_line(error)


def test_truncated_binary(tmp_path, batches):
    folder = cf.write_binary(tmp_path / "cifar-10-batches-bin", batches)
    path = folder / "data_batch_2.bin"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(LotteryError) as error:
        data.load("cifar10", tmp_path)
    message = _single_line(error)
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
    message = _single_line(error)
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
    message = _single_line(error)
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


# -- load and synthetic ---------------------------------------------------------


def test_unknown_dataset():
    with pytest.raises(LotteryError) as error:
        data.load("imagenet")
    message = _single_line(error)
    assert error.value.param == "name" and "'imagenet'" in message
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


def test_synthetic_rejects_data_dir(tmp_path):
    with pytest.raises(LotteryError, match="--data-dir"):
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
    message = _single_line(error)
    assert "--data-dir" in message and "digits" in message


def test_digits_missing_file_is_a_lottery_error(monkeypatch):
    monkeypatch.setattr(bundled, "DIGITS_FILE", "nope.npz")
    with pytest.raises(LotteryError) as error:
        data.load("digits")
    message = _single_line(error)
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
    message = _single_line(error)
    assert "URL fetch failure" in message and "--data-dir" in message
