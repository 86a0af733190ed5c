"""CIFAR-10 and CIFAR-100 from their official files, offline.

Both come in a binary version (records of label bytes then 3,072 pixel
bytes: the red, green and blue 32x32 planes, each row-major) and a python
version (Python 2 pickles, read with `cifar_pickle.CifarUnpickler`, never
with a plain `pickle.load`). A `CifarLayout` names each dataset's folders,
files and labels; the readers are shared.
"""

import dataclasses
import os

import numpy as np

from keras_lottery.data import checks
from keras_lottery.data import cifar_pickle
from keras_lottery.data import normalization
from keras_lottery.data.dataset import Dataset
from keras_lottery.errors import LotteryError

CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"
IMAGE_SHAPE = (32, 32, 3)
_PIXELS = 32 * 32 * 3


@dataclasses.dataclass(frozen=True)
class CifarLayout:
    """The official files of one CIFAR dataset.

    Attributes:
        name: Dataset name, e.g. `"cifar10"`.
        title: As the messages name it, e.g. `"CIFAR-10"`.
        stem: Prefix of the archives, e.g. `"cifar-10"`.
        bin_dir: The binary version's folder.
        py_dir: The python version's folder.
        train_files: Training files of the python version (the binary
            version's add `.bin`).
        test_file: The test file, likewise.
        label_key: The python version's label key (as str).
        label_limits: One bound per label byte of a binary record; the last
            byte is the label used, so its bound is the number of classes.
        label_names: How messages name each label byte.
    """

    name: str
    title: str
    stem: str
    bin_dir: str
    py_dir: str
    train_files: tuple
    test_file: str
    label_key: str
    label_limits: tuple
    label_names: tuple

    @property
    def num_classes(self):
        return self.label_limits[-1]

    @property
    def bin_archive(self):
        return f"{self.stem}-binary.tar.gz"

    @property
    def py_archive(self):
        return f"{self.stem}-python.tar.gz"

    @property
    def all_files(self):
        return self.train_files + (self.test_file,)


CIFAR10 = CifarLayout(
    "cifar10", "CIFAR-10", "cifar-10", "cifar-10-batches-bin", "cifar-10-batches-py",
    tuple(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "labels",
    (10,), ("label",),
)
# Binary records hold the coarse (20 superclasses) then the fine label.
CIFAR100 = CifarLayout(
    "cifar100", "CIFAR-100", "cifar-100", "cifar-100-binary", "cifar-100-python",
    ("train",), "test", "fine_labels", (20, 100), ("coarse label", "fine label"),
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
    return read_cifar(data_dir, CIFAR10)


def read_cifar100(data_dir):
    """Reads CIFAR-100 (fine labels) from the official files, offline.

    Args:
        data_dir: The extracted `cifar-100-binary` or `cifar-100-python`
            folder, or a folder holding one of them (binary wins).

    Returns:
        A `Dataset` named `"cifar100"` with 100 classes.
    """
    return read_cifar(data_dir, CIFAR100)


def read_cifar(data_dir, layout):
    """Reads the CIFAR dataset `layout` describes from a `data_dir`."""
    folder, version = find_folder(data_dir, layout)
    if version == "binary":
        return read_binary(folder, layout)
    return read_python(folder, layout)


def find_folder(data_dir, layout):
    """Returns `(folder, "binary" | "python")` for a `data_dir`."""
    path = os.fspath(data_dir)
    where = f"pass the folder that holds {layout.bin_dir}/ or {layout.py_dir}/"
    if not os.path.exists(path):
        raise LotteryError(f"no such directory; {where}", param="data_dir", value=path)
    if not os.path.isdir(path):
        raise LotteryError(f"not a directory; {where}", param="data_dir", value=path)
    for sub, version in ((layout.bin_dir, "binary"), (layout.py_dir, "python")):
        if os.path.isdir(os.path.join(path, sub)):
            return os.path.join(path, sub), version
    names = set(os.listdir(path))
    base = os.path.basename(os.path.normpath(path))
    if base == layout.bin_dir or names & {n + ".bin" for n in layout.all_files}:
        return path, "binary"
    if base == layout.py_dir or names & set(layout.all_files):
        return path, "python"
    archives = sorted(
        n for n in names
        if n.startswith(layout.stem + "-") and n.endswith((".tar.gz", ".tgz"))
    )
    if archives:
        fix = f"extract {archives[0]} there first"
    else:
        fix = (f"run data.download({layout.name!r}, data_dir), or download from "
               f"{CIFAR_URL} and extract")
    raise LotteryError(
        f"no {layout.title} files found; expected {layout.bin_dir}/ or "
        f"{layout.py_dir}/ ({fix})", param="data_dir", value=path,
    )


def _require_files(folder, names, archive):
    """Paths of `names` in `folder`; a `LotteryError` lists any that are missing."""
    paths = [os.path.join(folder, n) for n in names]
    missing = [n for n, p in zip(names, paths) if not os.path.isfile(p)]
    if missing:
        raise LotteryError(
            f"{folder}: missing {', '.join(missing)}; re-download {archive} from "
            f"{CIFAR_URL} and extract it"
        )
    return paths


def _assemble(parts, layout):
    """A `Dataset` from per-file `(images, labels)` pairs, the test file last."""
    x_test, y_test = parts[-1]
    return Dataset(
        layout.name,
        np.concatenate([x for x, _ in parts[:-1]]),
        np.concatenate([y for _, y in parts[:-1]]),
        np.ascontiguousarray(x_test),
        np.ascontiguousarray(y_test),
        layout.num_classes,
        augment=True,
        normalize=normalization.PER_IMAGE,
        source=layout.name,
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
    return read_binary(folder, CIFAR10)


def read_cifar100_binary(folder):
    """Reads the binary version of CIFAR-100 (`cifar-100-binary`).

    `train.bin` (50,000 records) and `test.bin` (10,000) hold records of a
    coarse label byte, a fine label byte and 3,072 pixel bytes (R, G, B
    planes, row-major); the fine label is used.

    Args:
        folder: The folder holding `train.bin` and `test.bin`.

    Returns:
        A `Dataset` named `"cifar100"` with NHWC uint8 images.
    """
    return read_binary(folder, CIFAR100)


def read_binary(folder, layout):
    """Reads the binary version of the dataset `layout` describes."""
    names = [n + ".bin" for n in layout.all_files]
    paths = _require_files(os.fspath(folder), names, layout.bin_archive)
    return _assemble([_read_binary_file(p, layout) for p in paths], layout)


def _read_binary_file(path, layout):
    """`(images NHWC uint8, labels int32)` from one binary batch file."""
    fix = f"re-download {layout.bin_archive} and extract it"
    num_labels = len(layout.label_limits)
    record_bytes = num_labels + _PIXELS
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % record_bytes:
        raise LotteryError(
            f"{path}: truncated or corrupt ({raw.size} bytes is not a positive "
            f"multiple of the {record_bytes}-byte record); {fix}"
        )
    records = raw.reshape(-1, record_bytes)
    for column, (limit, what) in enumerate(zip(layout.label_limits, layout.label_names)):
        labels = records[:, column]
        if labels.max() >= limit:
            bad = int(np.argmax(labels >= limit))
            raise LotteryError(
                f"{path}: record {bad} has {what} {labels[bad]} but {layout.title} "
                f"{what}s are 0-{limit - 1} (corrupt file, or not {layout.title}); "
                f"{fix}"
            )
    labels = records[:, num_labels - 1].astype(np.int32)
    images = records[:, num_labels:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return images, labels


# -- Python version ---------------------------------------------------------


def read_cifar10_python(folder):
    """Reads the python version of CIFAR-10 (`cifar-10-batches-py`).

    `data_batch_1` ... `data_batch_5` and `test_batch` are unpickled with an
    allowlist (see `cifar_pickle.CifarUnpickler`), never with a plain
    `pickle.load`. `batches.meta` is not needed.

    Args:
        folder: The folder holding the six batch files.

    Returns:
        A `Dataset` named `"cifar10"` with NHWC uint8 images.
    """
    return read_python(folder, CIFAR10)


def read_cifar100_python(folder):
    """Reads the python version of CIFAR-100 (`cifar-100-python`).

    `train` and `test` are dicts with `b"data"`, `b"fine_labels"`,
    `b"coarse_labels"`, `b"filenames"` and `b"batch_label"`, unpickled with
    the same allowlist as CIFAR-10's; the fine labels are used and `meta` is
    not needed.

    Args:
        folder: The folder holding `train` and `test`.

    Returns:
        A `Dataset` named `"cifar100"` with NHWC uint8 images.
    """
    return read_python(folder, CIFAR100)


def read_python(folder, layout):
    """Reads the python version of the dataset `layout` describes."""
    paths = _require_files(os.fspath(folder), layout.all_files, layout.py_archive)
    return _assemble([_read_python_file(p, layout) for p in paths], layout)


def _unpickle(path, layout, fix):
    """The batch dict of one python-version file."""
    try:
        with open(path, "rb") as f:
            batch = cifar_pickle.CifarUnpickler(f, encoding="bytes").load()
    except cifar_pickle.RefusedGlobal as e:
        raise LotteryError(
            f"{path}: refused to unpickle {e} (an official {layout.title} batch "
            f"holds only uint8 arrays, lists and strings); {fix} or use the "
            "binary version"
        ) from None
    except Exception as e:  # Corrupt pickles fail in many ways.
        raise LotteryError(
            f"{path}: truncated or corrupt pickle ({checks.one_line(e)}); {fix}"
        ) from None
    if not isinstance(batch, dict):
        raise LotteryError(
            f"{path}: holds a {type(batch).__name__}, not a {layout.title} batch "
            f"dict; {fix}"
        )
    return batch


def _read_python_file(path, layout):
    """`(images NHWC uint8, labels int32)` from one python batch file."""
    fix = f"re-download {layout.py_archive} and extract it"
    batch = _unpickle(path, layout, fix)
    data = _get_key(batch, "data")
    if not isinstance(data, cifar_pickle.PickledArray) or data.array is None:
        raise LotteryError(f"{path}: no uint8 array under b'data'; {fix}")
    array = data.array
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] != _PIXELS:
        raise LotteryError(
            f"{path}: b'data' has shape {array.shape}, expected (n, {_PIXELS}); {fix}"
        )
    labels = _get_key(batch, layout.label_key)
    limit = layout.num_classes
    if (
        not isinstance(labels, list)
        or len(labels) != array.shape[0]
        or not all(type(v) is int and 0 <= v < limit for v in labels)
    ):
        raise LotteryError(
            f"{path}: b'{layout.label_key}' is not a list of {array.shape[0]} "
            f"integers 0-{limit - 1}; {fix}"
        )
    images = array.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return images, np.asarray(labels, dtype=np.int32)


def _get_key(batch, key):
    """`batch[b"key"]`, falling back to a str key."""
    value = batch.get(key.encode("ascii"))
    return batch.get(key) if value is None else value
