"""MNIST and Fashion-MNIST from their four official IDX files, offline.

Both datasets use the same file names: `train-images-idx3-ubyte`,
`train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte` and
`t10k-labels-idx1-ubyte`, raw or `.gz`, in the folder or its `raw/`
subfolder. Keep each dataset in a folder of its own.
"""

import os

import numpy as np

from keras_lottery.data import idx
from keras_lottery.data import normalization
from keras_lottery.data.dataset import Dataset
from keras_lottery.errors import LotteryError

FILES = (
    "train-images-idx3-ubyte", "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte",
)
IMAGE_SHAPE = (28, 28, 1)
NUM_CLASSES = 10
TITLES = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST"}
HOMEPAGES = {
    "mnist": "https://yann.lecun.com/exdb/mnist/",
    "fashion_mnist": "https://github.com/zalandoresearch/fashion-mnist",
}


def read_mnist(data_dir, name="mnist"):
    """Reads MNIST (or Fashion-MNIST) from its IDX files in `data_dir`.

    Args:
        data_dir: The folder holding the four files (raw or `.gz`), directly
            or in `raw/`.
        name: `"mnist"` or `"fashion_mnist"`: which dataset the files are
            (the files cannot tell).

    Returns:
        A `Dataset` of 28x28x1 uint8 images, 10 classes, no augmentation,
        normalized by the training set's mean and std.
    """
    if name not in TITLES:
        raise LotteryError(
            f"not an IDX dataset; use one of {', '.join(TITLES)}", param="name",
            value=name,
        )
    paths = find_files(data_dir, name)
    fix = f"re-download {name} (lottery data download, or data.download in Python)"
    magics = (idx.IMAGES_MAGIC, idx.LABELS_MAGIC) * 2  # in `FILES` order
    x_train, y_train, x_test, y_test = (
        idx.read_idx(p, magic, fix) for p, magic in zip(paths, magics)
    )
    for images, labels, image_path, label_path in (
        (x_train, y_train, paths[0], paths[1]), (x_test, y_test, paths[2], paths[3]),
    ):
        if len(images) != len(labels):
            raise LotteryError(
                f"{image_path} holds {len(images)} images but {label_path} "
                f"{len(labels)} labels; {fix}"
            )
        if images.shape[1:] != IMAGE_SHAPE[:2]:
            raise LotteryError(
                f"{image_path}: images of {images.shape[1]}x{images.shape[2]} "
                f"pixels, expected 28x28; {fix}"
            )
        _check_labels(labels, label_path, fix)
    return mnist_dataset(name, x_train, y_train, x_test, y_test)


def read_fashion_mnist(data_dir):
    """Reads Fashion-MNIST from its IDX files; see `read_mnist`."""
    return read_mnist(data_dir, "fashion_mnist")


def find_files(data_dir, name="mnist"):
    """Paths of the four files in `FILES` order: in DIR, then DIR/raw;
    uncompressed before `.gz`."""
    path = os.fspath(data_dir)
    where = "pass the folder that holds the four IDX files (or their raw/ folder)"
    if not os.path.isdir(path):
        problem = "not a directory" if os.path.exists(path) else "no such directory"
        raise LotteryError(f"{problem}; {where}", param="data_dir", value=path)
    found, missing = [], []
    for base in FILES:
        candidates = [
            os.path.join(folder, base + suffix)
            for folder in (path, os.path.join(path, "raw")) for suffix in ("", ".gz")
        ]
        hits = [c for c in candidates if os.path.isfile(c)]
        if hits:
            found.append(hits[0])
        else:
            missing.append(base + "[.gz]")
    if missing:
        raise LotteryError(
            f"no {', '.join(missing)} in it or its raw/ folder; run "
            f"data.download({name!r}, data_dir), or download the four files from "
            f"{HOMEPAGES[name]}", param="data_dir", value=path,
        )
    return found


def _check_labels(labels, path, fix):
    if len(labels) and labels.max() >= NUM_CLASSES:
        bad = int(np.argmax(labels >= NUM_CLASSES))
        raise LotteryError(
            f"{path}: label {labels[bad]} at index {bad}, but labels are "
            f"0-{NUM_CLASSES - 1}; {fix}"
        )


def mnist_dataset(name, x_train, y_train, x_test, y_test):
    """The `Dataset` of MNIST-shaped `(n, 28, 28)` uint8 arrays.

    Shared by the offline reader and Keras's download, so both give the same
    channel axis, label dtype and normalization.
    """
    def images(x):
        x = np.asarray(x, dtype=np.uint8)
        return np.ascontiguousarray(x.reshape((len(x),) + IMAGE_SHAPE))

    def labels(y):
        return np.asarray(y, dtype=np.int32).reshape(-1)

    x_train = images(x_train)
    return Dataset(
        name, x_train, labels(y_train), images(x_test), labels(y_test),
        NUM_CLASSES, augment=False, normalize=normalization.mean_std(x_train),
        source=name,
    )
