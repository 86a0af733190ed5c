"""Datasets and the numpy input pipeline.

Named datasets load through `load(name, data_dir=None, *, seed=0)`:
CIFAR-10, CIFAR-100, MNIST and Fashion-MNIST come from Keras's cached
download by default, or offline from their official files in `data_dir`
(which `download(name, data_dir)` fetches and checks). The python versions
of CIFAR are read with a restricted unpickler, so a doctored file cannot run
code. The 8x8 digits ship with the package and a synthetic set of CIFAR
shapes serves smoke tests. Your own data comes in through
`arrays(x_train, y_train, x_test, y_test)` or `load("npz:PATH")`.

A `Dataset` says how training should treat it (`augment`, `normalize`);
`TrainBatches` and `EvalBatches` take both. The training stream is a pure
function of `(seed, step)`, see `batch_indices`.

Modules: `dataset` (the type), `cifar` and `cifar_pickle` (CIFAR files),
`idx` and `mnist` (IDX files), `bundled` (digits, synthetic), `own_data`
(your arrays and npz files), `keras_cache` (Keras's downloads), `downloads`
(`download` and its table of official files), `catalog` (`load`, names and
sizes), `normalization`, `augmentation` and `pipeline` (batches).
"""

from keras_lottery.data.augmentation import augment
from keras_lottery.data.augmentation import PAD
from keras_lottery.data.bundled import digits
from keras_lottery.data.bundled import synthetic
from keras_lottery.data.catalog import DATASETS
from keras_lottery.data.catalog import load
from keras_lottery.data.catalog import own_fingerprint
from keras_lottery.data.catalog import spec_name
from keras_lottery.data.catalog import train_size
from keras_lottery.data.catalog import TRAIN_SIZES
from keras_lottery.data.cifar import CIFAR_URL
from keras_lottery.data.cifar import IMAGE_SHAPE
from keras_lottery.data.cifar import read_cifar10
from keras_lottery.data.cifar import read_cifar100
from keras_lottery.data.cifar import read_cifar100_binary
from keras_lottery.data.cifar import read_cifar100_python
from keras_lottery.data.cifar import read_cifar10_binary
from keras_lottery.data.cifar import read_cifar10_python
from keras_lottery.data.dataset import Dataset
from keras_lottery.data.downloads import download
from keras_lottery.data.downloads import DOWNLOADS
from keras_lottery.data.mnist import read_fashion_mnist
from keras_lottery.data.mnist import read_mnist
from keras_lottery.data.normalization import mean_std
from keras_lottery.data.normalization import MeanStd
from keras_lottery.data.normalization import normalize_images
from keras_lottery.data.normalization import PER_IMAGE
from keras_lottery.data.normalization import standardize
from keras_lottery.data.own_data import arrays
from keras_lottery.data.own_data import read_npz
from keras_lottery.data.pipeline import batch_indices
from keras_lottery.data.pipeline import eval_input
from keras_lottery.data.pipeline import EvalBatches
from keras_lottery.data.pipeline import train_input
from keras_lottery.data.pipeline import TrainBatches

__all__ = [
    "CIFAR_URL", "DATASETS", "DOWNLOADS", "Dataset", "EvalBatches", "IMAGE_SHAPE",
    "MeanStd", "PAD", "PER_IMAGE", "TRAIN_SIZES", "TrainBatches", "arrays",
    "augment", "batch_indices", "digits", "download", "eval_input", "load", "mean_std",
    "normalize_images", "own_fingerprint", "read_cifar10", "read_cifar100", "read_cifar100_binary",
    "read_cifar100_python", "read_cifar10_binary", "read_cifar10_python",
    "read_fashion_mnist", "read_mnist", "read_npz", "spec_name", "standardize",
    "synthetic", "train_input",
    "train_size",
]
