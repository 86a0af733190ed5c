"""Named datasets through Keras's cached downloads (`keras.datasets`).

Used when `load` gets no `data_dir`: Keras downloads each dataset once into
`~/.keras/datasets` and reads it from there afterwards. The loaders are
looked up at call time, so nothing is fetched before a dataset is asked for.
"""

import keras
import numpy as np

from keras_lottery.data import cifar
from keras_lottery.data import checks
from keras_lottery.data import mnist
from keras_lottery.data import normalization
from keras_lottery.data.dataset import Dataset
from keras_lottery.errors import LotteryError

KERAS_DATASETS = ("cifar10", "cifar100", "mnist", "fashion_mnist")
_TITLES = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", **mnist.TITLES}


def from_keras(name):
    """Loads `name` (one of `KERAS_DATASETS`) through `keras.datasets`.

    Returns:
        The `Dataset` the offline reader of the official files would give.
    """
    try:
        if name == "cifar100":
            loaded = keras.datasets.cifar100.load_data(label_mode="fine")
        else:
            loaded = getattr(keras.datasets, name).load_data()
        (x_train, y_train), (x_test, y_test) = loaded
    except Exception as e:  # Network and archive errors vary by platform.
        if name in mnist.TITLES:
            where = f"fetch the four IDX files from {mnist.HOMEPAGES[name]}"
        else:
            where = f"download it from {cifar.CIFAR_URL} and extract it"
        raise LotteryError(
            f"could not get {_TITLES[name]} through Keras's download "
            f"({checks.one_line(e)}); {where} (or run `lottery data download`) "
            "and pass its folder as {data_dir}", param="dataset", value=name,
            arguments=("data_dir",),
        ) from None
    if name in mnist.TITLES:
        return mnist.mnist_dataset(name, x_train, y_train, x_test, y_test)
    return _cifar_dataset(name, x_train, y_train, x_test, y_test)


def _cifar_dataset(name, x_train, y_train, x_test, y_test):
    def nhwc(x):
        # Keras returns NCHW when the image data format is channels_first.
        if x.shape[1:] == (3, 32, 32):
            x = x.transpose(0, 2, 3, 1)
        return np.ascontiguousarray(x, dtype=np.uint8)

    layout = cifar.CIFAR10 if name == "cifar10" else cifar.CIFAR100
    return Dataset(
        name,
        nhwc(x_train),
        np.asarray(y_train, dtype=np.int32).reshape(-1),
        nhwc(x_test),
        np.asarray(y_test, dtype=np.int32).reshape(-1),
        layout.num_classes,
        augment=True,
        normalize=normalization.PER_IMAGE,
        source=name,
    )
