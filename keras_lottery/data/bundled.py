"""The datasets that need no files: bundled digits and synthetic data.

The 8x8 handwritten digits (UCI, 1,797 images) ship with the package
(`keras_lottery/datasets/digits.npz`, see `datasets/README.md`): a real
dataset that trains in seconds offline, with a fixed train/test split. The
synthetic dataset of CIFAR shapes serves smoke tests and demos.
"""

import importlib.resources

import numpy as np

from keras_lottery.data import checks
from keras_lottery.data import normalization
from keras_lottery.data.cifar import IMAGE_SHAPE
from keras_lottery.data.dataset import Dataset
from keras_lottery.errors import LotteryError

NUM_CLASSES = 10
# The bundled digits: `images` (1797, 8, 8) uint8 in 0..16, `labels` (1797,)
# uint8, `test_index` the 360 sorted rows held out for testing (36 per class,
# drawn once; stored, so no RNG change can move the test set).
DIGITS_FILE = "digits.npz"
DIGITS_IMAGE_SHAPE = (8, 8, 1)
DIGITS_NUM_TRAIN = 1437
DIGITS_NUM_TEST = 360
_DIGITS_MAX = 16
_DIGITS_FIX = "reinstall keras-lottery (the file is package data)"
SYNTHETIC_NUM_TRAIN = 512
SYNTHETIC_NUM_TEST = 256
# An extra seed word keeps the synthetic stream apart from the shuffle and
# augmentation streams.
_SYNTHETIC_TAG = 0x73796E21


def synthetic(num_train=SYNTHETIC_NUM_TRAIN, num_test=SYNTHETIC_NUM_TEST, seed=0):
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
        checks.check_count(arg, value, minimum=1)
    rng = np.random.default_rng([checks.check_seed(seed), _SYNTHETIC_TAG])
    colors = rng.uniform(40.0, 216.0, size=(NUM_CLASSES, 3)).astype(np.float32)

    def draw(n):
        labels = rng.integers(0, NUM_CLASSES, size=n).astype(np.int32)
        noise = rng.standard_normal((n,) + IMAGE_SHAPE, dtype=np.float32)
        images = colors[labels][:, None, None, :] + 48.0 * noise
        return np.clip(np.rint(images), 0, 255).astype(np.uint8), labels

    x_train, y_train = draw(num_train)
    x_test, y_test = draw(num_test)
    return Dataset(
        "synthetic", x_train, y_train, x_test, y_test, NUM_CLASSES,
        augment=True, normalize=normalization.PER_IMAGE, source="synthetic",
    )


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
    images, labels, test_index, resource = _read_digits_file()
    n = DIGITS_NUM_TRAIN + DIGITS_NUM_TEST
    is_test = np.zeros(n, dtype=bool)
    is_test[test_index[test_index < n]] = True
    if is_test.sum() != DIGITS_NUM_TEST:
        raise LotteryError(
            f"{resource}: test indices out of range or repeated; {_DIGITS_FIX}"
        )
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
        normalize=normalization.PER_IMAGE,
        source="digits",
    )



def _read_digits_file():
    """`(images, labels, test_index, resource)` from the bundled file, checked."""
    resource = importlib.resources.files("keras_lottery") / "datasets" / DIGITS_FILE
    try:
        with resource.open("rb") as f, np.load(f, allow_pickle=False) as npz:
            images, labels = npz["images"], npz["labels"]
            test_index = npz["test_index"].astype(np.int64)
    except FileNotFoundError:
        raise LotteryError(
            f"{resource}: bundled digits file missing; {_DIGITS_FIX}"
        ) from None
    except Exception as e:  # A damaged zip fails in many ways.
        raise LotteryError(
            f"{resource}: corrupt ({checks.one_line(e)}); {_DIGITS_FIX}"
        ) from None
    n = DIGITS_NUM_TRAIN + DIGITS_NUM_TEST
    if (
        images.shape != (n,) + DIGITS_IMAGE_SHAPE[:2] or labels.shape != (n,)
        or test_index.shape != (DIGITS_NUM_TEST,)
        or images.dtype != np.uint8 or labels.dtype != np.uint8
    ):
        raise LotteryError(f"{resource}: unexpected arrays; {_DIGITS_FIX}")
    if images.max() > _DIGITS_MAX or labels.max() >= NUM_CLASSES:
        raise LotteryError(f"{resource}: pixel or label out of range; {_DIGITS_FIX}")
    return images, labels, test_index, resource
