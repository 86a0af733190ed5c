"""Datasets and the numpy input pipeline.

CIFAR-10 comes from Keras's cached download by default, or offline from the
official files (binary or python version) in a `--data-dir`. The python
version is read with a restricted unpickler that only admits the three numpy
globals the real files name, mapped to local stand-ins, so a doctored file
cannot run code. A small synthetic dataset of CIFAR shapes serves smoke tests
and demos. The 8x8 handwritten digits (UCI, 1,797 images) ship with the
package (`datasets/digits.npz`, see `datasets/README.md`): a real dataset
that trains in seconds offline, with a fixed train/test split.

The training stream is a pure function of `(seed, step)`: epoch `e` is the
permutation drawn from `np.random.default_rng([seed, e])`, step `s` takes
stream positions `s * B ... s * B + B - 1` (batches run across epoch
boundaries), and its augmentation draws from an rng keyed on `(seed, step)`.
A resumed or rewound run therefore sees exactly the data an uninterrupted
one would.
"""

import dataclasses
import functools
import importlib.resources
import math
import os
import pickle

import keras
import numpy as np

DATASETS = ("cifar10", "synthetic", "digits")
NUM_CLASSES = 10
IMAGE_SHAPE = (32, 32, 3)
# Zero padding on each side before the random crop (40x40 -> 32x32).
PAD = 4
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"

_PIXELS = 32 * 32 * 3
_RECORD_BYTES = 1 + _PIXELS
_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
_TEST_FILE = "test_batch"
_BIN_DIR = "cifar-10-batches-bin"
_PY_DIR = "cifar-10-batches-py"
# Extra seed words keep the augmentation and synthetic streams apart from the
# `[seed, epoch]` shuffle streams.
_AUGMENT_TAG = 0x61756721
_SYNTHETIC_TAG = 0x73796E21
# The bundled digits: `images` (1797, 8, 8) uint8 in 0..16, `labels` (1797,)
# uint8, `test_index` the 360 sorted rows held out for testing (36 per class,
# drawn once; stored, so no RNG change can move the test set).
DIGITS_FILE = "digits.npz"
DIGITS_IMAGE_SHAPE = (8, 8, 1)
DIGITS_NUM_TRAIN = 1437
DIGITS_NUM_TEST = 360
_DIGITS_MAX = 16
SYNTHETIC_NUM_TRAIN = 512
# Training images per dataset, for `--epochs` without loading the data.
TRAIN_SIZES = {
    "cifar10": 50000, "synthetic": SYNTHETIC_NUM_TRAIN, "digits": DIGITS_NUM_TRAIN,
}


class DataError(ValueError):
    """A dataset or data argument problem; the message names it and the fix."""


@dataclasses.dataclass(eq=False)
class Dataset:
    """A labelled image dataset held in memory.

    Images are uint8 NHWC; labels are flat int32 class indices. `augment`
    says whether training applies `augment` (random crop and flip): true for
    the CIFAR-shaped datasets, false for digits, where a flip changes what
    the image shows and a 4-pixel shift moves half of an 8x8 image out.
    Pass it on as `TrainBatches(..., augment=dataset.augment)`.
    """

    name: str
    x_train: np.ndarray = dataclasses.field(repr=False)
    y_train: np.ndarray = dataclasses.field(repr=False)
    x_test: np.ndarray = dataclasses.field(repr=False)
    y_test: np.ndarray = dataclasses.field(repr=False)
    num_classes: int = NUM_CLASSES
    augment: bool = True

    @property
    def image_shape(self):
        """The `(height, width, channels)` of one image."""
        return tuple(self.x_train.shape[1:])


def load(name="cifar10", data_dir=None, *, seed=0):
    """Loads a dataset by name.

    Example:

    >>> ds = load("digits")
    >>> ds.x_train.shape, ds.x_test.shape, ds.augment
    ((1437, 8, 8, 1), (360, 8, 8, 1), False)

    Args:
        name: One of `DATASETS`.
        data_dir: For `"cifar10"`, a folder with the official files (the
            extracted `cifar-10-batches-bin`/`-py` folder or its parent); `None`
            uses Keras's cached download. Must be `None` for the others.
        seed: Seed of the `"synthetic"` dataset; unused by `"cifar10"` and
            `"digits"` (whose split is fixed, so every seed sees one test set).

    Returns:
        A `Dataset`.
    """
    if name == "cifar10":
        if data_dir is None:
            return _download_cifar10()
        return read_cifar10(data_dir)
    if name in ("synthetic", "digits"):
        if data_dir is not None:
            raise DataError(
                f"--data-dir {data_dir}: only the cifar10 dataset reads files; "
                f"drop --data-dir for the {name} dataset"
            )
        return synthetic(seed=seed) if name == "synthetic" else digits()
    raise DataError(
        f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}"
    )


def synthetic(num_train=SYNTHETIC_NUM_TRAIN, num_test=256, seed=0):
    """Makes a deterministic random dataset of CIFAR-10 shapes.

    Each class has its own colour (a mean per channel) and every image is
    that colour plus Gaussian noise. The colour survives per-image
    standardization, so a model can learn the labels.

    Args:
        num_train: Number of training images.
        num_test: Number of test images.
        seed: Non-negative integer; equal seeds give equal datasets.

    Returns:
        A `Dataset` named `"synthetic"` with 10 classes.
    """
    for arg, value in (("num_train", num_train), ("num_test", num_test)):
        if not _is_int(value) or value < 1:
            raise DataError(f"synthetic: {arg}={value!r}; use a positive integer")
    rng = np.random.default_rng([_check_seed(seed), _SYNTHETIC_TAG])
    colors = rng.uniform(40.0, 216.0, size=(NUM_CLASSES, 3)).astype(np.float32)

    def draw(n):
        labels = rng.integers(0, NUM_CLASSES, size=n).astype(np.int32)
        noise = rng.standard_normal((n,) + IMAGE_SHAPE, dtype=np.float32)
        images = colors[labels][:, None, None, :] + 48.0 * noise
        return np.clip(np.rint(images), 0, 255).astype(np.uint8), labels

    x_train, y_train = draw(num_train)
    x_test, y_test = draw(num_test)
    return Dataset("synthetic", x_train, y_train, x_test, y_test, NUM_CLASSES)


def digits():
    """Loads the 8x8 handwritten digits bundled with the package.

    The UCI "Optical Recognition of Handwritten Digits" test set (1,797
    images, 10 classes; CC BY 4.0, see `datasets/README.md`). Pixels count
    the on-pixels of 4x4 blocks of a 32x32 bitmap (0..16); they are scaled to
    0..255 as `round(v * 255 / 16)`. The split is fixed and stratified: 36
    images per class (360) for testing, the other 1,437 for training, each
    in file order.

    Example:

    >>> ds = digits()
    >>> ds.image_shape, ds.num_classes
    ((8, 8, 1), 10)

    Returns:
        A `Dataset` named `"digits"` with `augment=False`.
    """
    resource = importlib.resources.files(__package__) / "datasets" / DIGITS_FILE
    fix = "reinstall keras-lottery (the file is package data)"
    try:
        with resource.open("rb") as f, np.load(f, allow_pickle=False) as npz:
            images, labels = npz["images"], npz["labels"]
            test_index = npz["test_index"].astype(np.int64)
    except FileNotFoundError:
        raise DataError(f"{resource}: bundled digits file missing; {fix}") from None
    except Exception as e:  # A damaged zip fails in many ways.
        raise DataError(f"{resource}: corrupt ({_one_line(e)}); {fix}") from None
    n = DIGITS_NUM_TRAIN + DIGITS_NUM_TEST
    if (
        images.shape != (n,) + DIGITS_IMAGE_SHAPE[:2] or labels.shape != (n,)
        or test_index.shape != (DIGITS_NUM_TEST,)
        or images.dtype != np.uint8 or labels.dtype != np.uint8
    ):
        raise DataError(f"{resource}: unexpected arrays; {fix}")
    if images.max() > _DIGITS_MAX or labels.max() >= NUM_CLASSES:
        raise DataError(f"{resource}: pixel or label out of range; {fix}")
    is_test = np.zeros(n, dtype=bool)
    is_test[test_index[test_index < n]] = True
    if is_test.sum() != DIGITS_NUM_TEST:
        raise DataError(f"{resource}: test indices out of range or repeated; {fix}")
    # Integer round-half-up of v * 255 / 16 (only v = 8 has a half: 128).
    levels = (np.arange(_DIGITS_MAX + 1) * 255 + _DIGITS_MAX // 2) // _DIGITS_MAX
    scaled = levels.astype(np.uint8)[images].reshape((n,) + DIGITS_IMAGE_SHAPE)
    labels = labels.astype(np.int32)
    return Dataset(
        "digits",
        np.ascontiguousarray(scaled[~is_test]),
        labels[~is_test],
        np.ascontiguousarray(scaled[is_test]),
        labels[is_test],
        NUM_CLASSES,
        augment=False,
    )


def _download_cifar10():
    """CIFAR-10 through `keras.datasets` (downloaded once, then cached)."""
    try:
        (x_train, y_train), (x_test, y_test) = keras.datasets.cifar10.load_data()
    except Exception as e:  # Network and archive errors vary by platform.
        raise DataError(
            f"could not get CIFAR-10 through Keras's download ({_one_line(e)}); "
            f"download it from {CIFAR10_URL}, extract it and pass --data-dir"
        ) from None

    def nhwc(x):
        # Keras returns NCHW when the image data format is channels_first.
        if x.shape[1:] == (3, 32, 32):
            x = x.transpose(0, 2, 3, 1)
        return np.ascontiguousarray(x, dtype=np.uint8)

    return Dataset(
        "cifar10",
        nhwc(x_train),
        np.asarray(y_train, dtype=np.int32).reshape(-1),
        nhwc(x_test),
        np.asarray(y_test, dtype=np.int32).reshape(-1),
        NUM_CLASSES,
    )


def read_cifar10(data_dir):
    """Reads CIFAR-10 from the official files in `data_dir`, offline.

    Args:
        data_dir: The extracted `cifar-10-batches-bin` or
            `cifar-10-batches-py` folder, or a folder holding one of them
            (the binary version wins when both are there).

    Returns:
        A `Dataset` named `"cifar10"`.
    """
    folder, version = _find_cifar10_folder(data_dir)
    if version == "binary":
        return read_cifar10_binary(folder)
    return read_cifar10_python(folder)


def _find_cifar10_folder(data_dir):
    """Returns `(folder, "binary" | "python")` for a `--data-dir`."""
    path = os.fspath(data_dir)
    if not os.path.exists(path):
        raise DataError(
            f"--data-dir {path}: no such directory; pass the folder that holds "
            f"{_BIN_DIR}/ or {_PY_DIR}/"
        )
    if not os.path.isdir(path):
        raise DataError(
            f"--data-dir {path}: not a directory; pass the folder that holds "
            f"{_BIN_DIR}/ or {_PY_DIR}/"
        )
    for sub, version in ((_BIN_DIR, "binary"), (_PY_DIR, "python")):
        if os.path.isdir(os.path.join(path, sub)):
            return os.path.join(path, sub), version
    names = set(os.listdir(path))
    base = os.path.basename(os.path.normpath(path))
    batch_names = set(_TRAIN_FILES + (_TEST_FILE,))
    if base == _BIN_DIR or names & {n + ".bin" for n in batch_names}:
        return path, "binary"
    if base == _PY_DIR or names & batch_names:
        return path, "python"
    archives = sorted(
        n for n in names if n.startswith("cifar-10") and n.endswith((".tar.gz", ".tgz"))
    )
    if archives:
        fix = f"extract {archives[0]} there first"
    else:
        fix = f"download from {CIFAR10_URL} and extract"
    raise DataError(
        f"--data-dir {path}: no CIFAR-10 files found; expected {_BIN_DIR}/ or "
        f"{_PY_DIR}/ ({fix})"
    )


def _require_files(folder, names, archive):
    """Paths of `names` in `folder`; a `DataError` lists any that are missing."""
    paths = [os.path.join(folder, n) for n in names]
    missing = [n for n, p in zip(names, paths) if not os.path.isfile(p)]
    if missing:
        raise DataError(
            f"{folder}: missing {', '.join(missing)}; re-download {archive} from "
            f"{CIFAR10_URL} and extract it"
        )
    return paths


def _assemble(train_parts, test_part):
    """A CIFAR-10 `Dataset` from per-file `(images, labels)` pairs."""
    x_train = np.concatenate([x for x, _ in train_parts])
    y_train = np.concatenate([y for _, y in train_parts])
    x_test, y_test = test_part
    return Dataset(
        "cifar10",
        x_train,
        y_train,
        np.ascontiguousarray(x_test),
        np.ascontiguousarray(y_test),
        NUM_CLASSES,
    )


# -- Binary version ---------------------------------------------------------


def read_cifar10_binary(folder):
    """Reads the binary version of CIFAR-10 (`cifar-10-batches-bin`).

    Each of `data_batch_1.bin` ... `data_batch_5.bin` and `test_batch.bin`
    holds records of 1 label byte and 3,072 pixel bytes: the red, green and
    blue 32x32 planes, each row-major.

    Args:
        folder: The folder holding the six `.bin` files.

    Returns:
        A `Dataset` named `"cifar10"` with NHWC uint8 images.
    """
    names = [n + ".bin" for n in _TRAIN_FILES + (_TEST_FILE,)]
    paths = _require_files(os.fspath(folder), names, "cifar-10-binary.tar.gz")
    parts = [_read_binary_file(p) for p in paths]
    return _assemble(parts[:-1], parts[-1])


def _read_binary_file(path):
    """`(images NHWC uint8, labels int32)` from one binary batch file."""
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % _RECORD_BYTES:
        raise DataError(
            f"{path}: truncated or corrupt ({raw.size} bytes is not a positive "
            f"multiple of the {_RECORD_BYTES}-byte record); re-download "
            "cifar-10-binary.tar.gz and extract it"
        )
    records = raw.reshape(-1, _RECORD_BYTES)
    labels = records[:, 0].astype(np.int32)
    if labels.max() >= NUM_CLASSES:
        bad = int(np.argmax(labels >= NUM_CLASSES))
        raise DataError(
            f"{path}: record {bad} has label {labels[bad]} but CIFAR-10 labels "
            "are 0-9 (corrupt file, or not CIFAR-10); re-download "
            "cifar-10-binary.tar.gz and extract it"
        )
    images = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return images, labels


# -- Python version ---------------------------------------------------------
#
# The real files are Python 2 cPickle protocol 2 dicts. `b"data"` is pickled
# as `_reconstruct(ndarray, (0,), b"b")`, then BUILD with the state
# `(1, shape, dtype, is_fortran, raw_bytes)`; the dtype is `dtype("u1", 0, 1)`
# then BUILD with `(3, "|", None, None, None, -1, -1, 0)`. The stand-ins below
# accept exactly that and build the array with `np.frombuffer`, so no numpy
# constructor ever sees bytes from the file.


class _RefusedGlobal(pickle.UnpicklingError):
    """The pickle names a global outside the CIFAR-10 allowlist."""


# `numpy.ndarray` only ever appears as `_reconstruct`'s first argument; a
# plain object is not callable, so REDUCE on it fails.
_NDARRAY = object()


class _UInt8Dtype:
    """Stand-in for `numpy.dtype`: admits only the uint8 description."""

    def __init__(self, spec, align=False, copy=True):
        if _text(spec) not in ("u1", "|u1"):
            raise pickle.UnpicklingError(f"dtype {spec!r} is not uint8")

    def __setstate__(self, state):
        if not isinstance(state, tuple) or len(state) < 2:
            raise pickle.UnpicklingError(f"unexpected dtype state {state!r}")
        if _text(state[1]) not in ("|", "=", "<", ">"):
            raise pickle.UnpicklingError(f"unexpected dtype byte order {state[1]!r}")


class _PickledArray:
    """Stand-in for the ndarray `_reconstruct` makes; BUILD fills `array`."""

    array = None

    def __setstate__(self, state):
        if not isinstance(state, tuple) or len(state) != 5:
            raise pickle.UnpicklingError("unexpected ndarray state")
        _, shape, dtype, is_fortran, raw = state
        if not isinstance(dtype, _UInt8Dtype):
            raise pickle.UnpicklingError("ndarray dtype is not uint8")
        if not isinstance(shape, tuple) or not all(
            _is_int(d) and d >= 0 for d in shape
        ):
            raise pickle.UnpicklingError(f"bad ndarray shape {shape!r}")
        if not isinstance(raw, bytes) or len(raw) != math.prod(shape):
            raise pickle.UnpicklingError(
                f"ndarray of shape {shape} does not match its data size"
            )
        order = "F" if is_fortran else "C"
        self.array = np.frombuffer(raw, dtype=np.uint8).reshape(shape, order=order)


def _reconstruct(subtype, shape, typecode):
    """Stand-in for `numpy.core.multiarray._reconstruct`."""
    if subtype is not _NDARRAY:
        raise pickle.UnpicklingError("_reconstruct of something other than ndarray")
    return _PickledArray()


class _CifarUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals a CIFAR-10 batch names."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy", "ndarray"): _NDARRAY,
        ("numpy", "dtype"): _UInt8Dtype,
    }

    def find_class(self, module, name):
        try:
            return self._ALLOWED[(module, name)]
        except (KeyError, TypeError):
            raise _RefusedGlobal(f"{module}.{name}") from None


def read_cifar10_python(folder):
    """Reads the python version of CIFAR-10 (`cifar-10-batches-py`).

    `data_batch_1` ... `data_batch_5` and `test_batch` are unpickled with an
    allowlist (see `_CifarUnpickler`), never with a plain `pickle.load`.
    `batches.meta` is not needed.

    Args:
        folder: The folder holding the six batch files.

    Returns:
        A `Dataset` named `"cifar10"` with NHWC uint8 images.
    """
    names = _TRAIN_FILES + (_TEST_FILE,)
    paths = _require_files(os.fspath(folder), names, "cifar-10-python.tar.gz")
    parts = [_read_python_file(p) for p in paths]
    return _assemble(parts[:-1], parts[-1])


def _read_python_file(path):
    """`(images NHWC uint8, labels int32)` from one python batch file."""
    fix = "re-download cifar-10-python.tar.gz and extract it"
    try:
        with open(path, "rb") as f:
            batch = _CifarUnpickler(f, encoding="bytes").load()
    except _RefusedGlobal as e:
        raise DataError(
            f"{path}: refused to unpickle {e} (an official CIFAR-10 batch holds "
            f"only uint8 arrays, lists and strings); {fix} or use the binary version"
        ) from None
    except Exception as e:  # Corrupt pickles fail in many ways.
        raise DataError(
            f"{path}: truncated or corrupt pickle ({_one_line(e)}); {fix}"
        ) from None
    if not isinstance(batch, dict):
        raise DataError(
            f"{path}: holds a {type(batch).__name__}, not a CIFAR-10 batch dict; {fix}"
        )
    data = _get_key(batch, "data")
    if not isinstance(data, _PickledArray) or data.array is None:
        raise DataError(f"{path}: no uint8 array under b'data'; {fix}")
    array = data.array
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] != _PIXELS:
        raise DataError(
            f"{path}: b'data' has shape {array.shape}, expected (n, {_PIXELS}); {fix}"
        )
    labels = _get_key(batch, "labels")
    if (
        not isinstance(labels, list)
        or len(labels) != array.shape[0]
        or not all(type(v) is int and 0 <= v < NUM_CLASSES for v in labels)
    ):
        raise DataError(
            f"{path}: b'labels' is not a list of {array.shape[0]} integers "
            f"0-9; {fix}"
        )
    images = array.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return images, np.asarray(labels, dtype=np.int32)


def _get_key(batch, key):
    """`batch[b"key"]`, falling back to a str key."""
    value = batch.get(key.encode("ascii"))
    return batch.get(key) if value is None else value


# -- Augmentation and batching -----------------------------------------------


def augment(images, rng):
    """Random crop after zero padding, and random horizontal flip.

    Each image is zero-padded by `PAD` pixels per side, cropped back to its
    size at a random offset (0 to `2 * PAD` inclusive per axis) and flipped
    left-right with probability 0.5, independently per image.

    Args:
        images: Array of shape `(n, height, width, channels)`.
        rng: A `np.random.Generator`; its draws decide offsets and flips.

    Returns:
        An array of the shape and dtype of `images`.
    """
    images = np.asarray(images)
    n, h, w, c = images.shape
    offset_y = rng.integers(0, 2 * PAD + 1, size=n)
    offset_x = rng.integers(0, 2 * PAD + 1, size=n)
    flip = rng.random(n) < 0.5
    height, width = h + 2 * PAD, w + 2 * PAD
    padded = np.zeros((n, height, width, c), dtype=images.dtype)
    padded[:, PAD : PAD + h, PAD : PAD + w] = images
    # One gather: flat pixel index of every output pixel in the padded batch.
    rows = offset_y[:, None] + np.arange(h)
    cols = offset_x[:, None] + np.where(
        flip[:, None], np.arange(w - 1, -1, -1), np.arange(w)
    )
    flat = (np.arange(n)[:, None, None] * height + rows[:, :, None]) * width
    flat = flat + cols[:, None, :]
    return np.take(padded.reshape(-1, c), flat, axis=0)


def standardize(images):
    """Per-image standardization, as `tf.image.per_image_standardization`.

    Over all pixels and channels of each image (values as float32),
    `(x - mean) / max(std, 1 / sqrt(num_elements))`.

    Args:
        images: Array of shape `(n, height, width, channels)`, any real dtype.

    Returns:
        A float32 array of the same shape.
    """
    images = np.asarray(images)
    n = images.shape[0]
    x = images.reshape(n, -1).astype(np.float32)  # Always a copy; edited in place.
    size = x.shape[1]
    x -= x.mean(axis=1, keepdims=True)
    std = np.sqrt(np.einsum("ij,ij->i", x, x) / np.float32(size))
    x /= np.maximum(std, np.float32(1.0 / math.sqrt(size)))[:, None]
    return x.reshape(images.shape)


@functools.lru_cache(maxsize=8)
def _epoch_permutation(seed, epoch, num_examples):
    perm = np.random.default_rng([seed, epoch]).permutation(num_examples)
    perm.setflags(write=False)  # Shared through the cache.
    return perm


def batch_indices(num_examples, batch_size, step, *, seed):
    """Training-set indices of the batch at a global step.

    The stream is an endless sequence of epochs; epoch `e` is the permutation
    `np.random.default_rng([seed, e]).permutation(num_examples)`. Step `s`
    takes stream positions `s * batch_size ... s * batch_size + batch_size - 1`,
    so a batch can span an epoch boundary.

    Args:
        num_examples: Size of the training set.
        batch_size: Examples per batch.
        step: Global step, 0-based.
        seed: Non-negative integer.

    Returns:
        An int64 array of `batch_size` indices.
    """
    positions = step * batch_size + np.arange(batch_size, dtype=np.int64)
    epochs, offsets = np.divmod(positions, num_examples)
    indices = np.empty(batch_size, dtype=np.int64)
    for epoch in range(int(epochs[0]), int(epochs[-1]) + 1):
        here = epochs == epoch
        perm = _epoch_permutation(seed, epoch, num_examples)
        indices[here] = perm[offsets[here]]
    return indices


class TrainBatches(keras.utils.PyDataset):
    """Training batches for a run of steps: shuffled, augmented, standardized.

    Item `i` is the batch of global step `start_step + i`; see
    `batch_indices` for the order and `augment` for the augmentation, whose
    rng is keyed on `(seed, step)`. Equal seeds give equal batches for a
    step whatever `start_step` is.

    Args:
        x: uint8 images, `(n, height, width, channels)`.
        y: Integer labels, `(n,)`.
        batch_size: Examples per batch.
        seed: Non-negative integer.
        start_step: Global step of item 0.
        num_steps: Number of items.
        augment: Whether to crop and flip before standardizing; pass the
            dataset's `Dataset.augment` (false for digits).
        **kwargs: `workers`, `use_multiprocessing`, `max_queue_size` for
            `keras.utils.PyDataset`.
    """

    def __init__(
        self, x, y, batch_size, *, seed, start_step=0, num_steps, augment=True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        x, y = _check_xy(x, y)
        _check_count("batch_size", batch_size, minimum=1)
        _check_count("start_step", start_step)
        _check_count("num_steps", num_steps)
        self.x = x
        self.y = y
        self.batch_size = int(batch_size)
        self.seed = _check_seed(seed)
        self.start_step = int(start_step)
        self.num_steps = int(num_steps)
        self.augment = bool(augment)

    def __len__(self):
        return self.num_steps

    def __getitem__(self, index):
        if not 0 <= index < self.num_steps:
            raise IndexError(f"batch {index} out of range [0, {self.num_steps})")
        return self.batch(self.start_step + int(index))

    def batch(self, step):
        """The `(float32 images, int32 labels)` batch of a global step."""
        _check_count("step", step)
        indices = batch_indices(len(self.x), self.batch_size, step, seed=self.seed)
        images = self.x[indices]
        if self.augment:
            rng = np.random.default_rng([self.seed, _AUGMENT_TAG, step])
            images = augment(images, rng)
        return standardize(images), self.y[indices]


class EvalBatches(keras.utils.PyDataset):
    """Evaluation batches in file order, standardized, last partial batch kept.

    Args:
        x: uint8 images, `(n, height, width, channels)`.
        y: Integer labels, `(n,)`.
        batch_size: Examples per batch.
        **kwargs: `workers`, `use_multiprocessing`, `max_queue_size` for
            `keras.utils.PyDataset`.
    """

    def __init__(self, x, y, batch_size, **kwargs):
        super().__init__(**kwargs)
        self.x, self.y = _check_xy(x, y)
        _check_count("batch_size", batch_size, minimum=1)
        self.batch_size = int(batch_size)

    def __len__(self):
        return -(-len(self.x) // self.batch_size)

    def __getitem__(self, index):
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} out of range [0, {len(self)})")
        window = slice(index * self.batch_size, (index + 1) * self.batch_size)
        return standardize(self.x[window]), self.y[window]


# -- Helpers -----------------------------------------------------------------


def _is_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _check_count(name, value, minimum=0):
    if not _is_int(value) or value < minimum:
        raise DataError(f"{name}={value!r}; use an integer >= {minimum}")


def _check_seed(seed):
    # `np.random.default_rng([seed, ...])` needs non-negative integers.
    if not _is_int(seed) or seed < 0:
        raise DataError(f"seed={seed!r}; use a non-negative integer")
    return int(seed)


def _check_xy(x, y):
    x = np.asarray(x)
    y = np.asarray(y)
    if x.ndim != 4 or len(x) == 0:
        raise DataError(
            f"images of shape {x.shape}; expected a non-empty (n, height, width, "
            "channels) array"
        )
    if y.ndim != 1 or len(y) != len(x):
        raise DataError(
            f"labels of shape {y.shape} for {len(x)} images; expected ({len(x)},)"
        )
    return x, y.astype(np.int32, copy=False)


def _text(value):
    """A pickled str (bytes under `encoding="bytes"`) as str, else None."""
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return value if isinstance(value, str) else None


def _one_line(error):
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 200 else text[:197] + "..."
