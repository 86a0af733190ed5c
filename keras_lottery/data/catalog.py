"""The named datasets, their sizes, and `load`."""

import os

from keras_lottery.data import own_data
from keras_lottery.data import bundled
from keras_lottery.data import cifar
from keras_lottery.data import keras_cache
from keras_lottery.data import mnist
from keras_lottery import checks
from keras_lottery.errors import LotteryError

DATASETS = ("cifar10", "cifar100", "mnist", "fashion_mnist", "digits", "synthetic")
# Training examples per dataset, for `--epochs` without loading the data.
TRAIN_SIZES = {
    "cifar10": 50000,
    "cifar100": 50000,
    "mnist": 60000,
    "fashion_mnist": 60000,
    "digits": bundled.DIGITS_NUM_TRAIN,
    "synthetic": bundled.SYNTHETIC_NUM_TRAIN,
}
_OFFLINE_READERS = {
    "cifar10": cifar.read_cifar10,
    "cifar100": cifar.read_cifar100,
    "mnist": mnist.read_mnist,
    "fashion_mnist": mnist.read_fashion_mnist,
}


def load(name="cifar10", data_dir=None, *, seed=0):
    """Loads a dataset by name, or your own from `"npz:PATH"`.

    Example:

    >>> ds = load("digits")
    >>> ds.x_train.shape, ds.x_test.shape, ds.augment
    ((1437, 8, 8, 1), (360, 8, 8, 1), False)

    Args:
        name: One of `DATASETS`, or `"npz:PATH"` for an `.npz` holding
            `x_train`, `y_train`, `x_test`, `y_test` (see `read_npz`).
        data_dir: For cifar10, cifar100, mnist and fashion_mnist, a folder
            with the official files (see `download`); `None` uses Keras's
            cached download. Must be `None` for the others.
        seed: Seed of the `"synthetic"` dataset; unused by the others (their
            splits are fixed, so every seed sees one test set).

    Returns:
        A `Dataset`.
    """
    if isinstance(name, str) and name.startswith(own_data.NPZ_PREFIX):
        _refuse_data_dir(name, data_dir)
        return own_data.read_npz(name[len(own_data.NPZ_PREFIX):])
    _check_name(name)
    if name in _OFFLINE_READERS:
        if data_dir is None:
            return keras_cache.from_keras(name)
        return _OFFLINE_READERS[name](data_dir)
    _refuse_data_dir(name, data_dir)
    # Looked up at call time, so a benchmark can swap in its own synthetic.
    if name == "synthetic":
        return bundled.synthetic(seed=seed)
    return bundled.digits()


def train_size(name):
    """Training examples of a dataset without loading it.

    Args:
        name: One of `DATASETS`, or `"npz:PATH"` (reads only `y_train`).

    Returns:
        An int.
    """
    if isinstance(name, str) and name.startswith(own_data.NPZ_PREFIX):
        return own_data.npz_train_size(name[len(own_data.NPZ_PREFIX):])
    _check_name(name)
    return TRAIN_SIZES[name]


def spec_name(dataset):
    """How a run records `dataset`: its name, `npz:PATH` for a file, the
    given name for arrays in memory (whose fingerprint tells them apart)."""
    return dataset.source or dataset.name


def own_fingerprint(dataset):
    """The fingerprint of data of your own (arrays or npz) that is part of
    what a run is, None for the named datasets (their name says it)."""
    source = dataset.source
    if source is None or source.startswith(own_data.NPZ_PREFIX):
        return dataset.fingerprint
    return None


def _check_name(name):
    if not isinstance(name, str):
        raise LotteryError(
            "expected a dataset name or npz:PATH; for arrays use "
            "keras_lottery.data.arrays(x_train, y_train, x_test, y_test)",
            param="dataset", value=checks.summary(name))
    if name not in DATASETS:
        raise LotteryError(
            f"unknown dataset; choose one of: {', '.join(DATASETS)}, or npz:PATH",
            param="dataset", value=name,
        )


def _refuse_data_dir(name, data_dir):
    if data_dir is not None:
        what = "your npz file" if name.startswith(own_data.NPZ_PREFIX) else name
        raise LotteryError(
            f"only cifar10, cifar100, mnist and fashion_mnist read a folder; "
            f"drop it for {what}",
            param="data_dir", value=os.fspath(data_dir),
        )
