"""How images become the float32 a model sees: the three normalizations.

A normalization is a plain value, so a `Dataset` can carry it and a run can
record it:

* `PER_IMAGE` (`"per_image"`): `standardize`, each image to mean 0 and
  std 1 on its own (the CIFAR-shaped sets and digits).
* `MeanStd(mean, std)`: pixels scaled to [0, 1] (`x / 255`), then
  `(x - mean) / std` with the training set's statistics (MNIST and
  Fashion-MNIST); one value, or one per channel.
* `None`: the images as given, cast to float32 (your own arrays).
"""

import math
import typing

import numpy as np

from keras_lottery.errors import LotteryError

PER_IMAGE = "per_image"
_LEVELS = 256  # uint8 pixel values


class MeanStd(typing.NamedTuple):
    """Statistics of pixels scaled to [0, 1]: tuples, one value per channel
    or a single value for all of them."""

    mean: tuple
    std: tuple


def resolve(normalize):
    """Checks a normalization and returns it in its stored form.

    Args:
        normalize: `"per_image"`, `None`, or `(mean, std)` where each is a
            number or a sequence of numbers (one per channel).

    Returns:
        `PER_IMAGE`, `None` or a `MeanStd` of tuples of floats.
    """
    if normalize is None or normalize == PER_IMAGE:
        return normalize
    fix = "pass 'per_image', None or (mean, std) with std > 0"
    if isinstance(normalize, str) or not _is_pair(normalize):
        raise LotteryError(f"unknown normalization; {fix}", param="normalize",
                           value=normalize)
    mean, std = (_floats(v) for v in normalize)
    if (
        mean is None or std is None or len(mean) != len(std)
        or not all(math.isfinite(v) for v in mean + std)
        or not all(v > 0 for v in std)
    ):
        raise LotteryError(
            f"mean and std must be finite numbers (or equal-length sequences); {fix}",
            param="normalize", value=normalize,
        )
    return MeanStd(mean, std)


def _is_pair(value):
    try:
        return len(value) == 2
    except TypeError:
        return False


def _floats(value):
    """A number or a sequence of numbers as a tuple of floats, else None."""
    values = np.asarray(value, dtype=object).reshape(-1)
    if values.size == 0 or not all(
        isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
        for v in values
    ):
        return None
    return tuple(float(v) for v in values)


def mean_std(images):
    """The per-channel mean and std of uint8 images scaled to [0, 1].

    The sums are exact integer counts of each pixel value, so the result is
    the same on every machine (and for real MNIST it is the familiar
    0.1307 / 0.3081). The std is the population std (over all pixels).

    Args:
        images: uint8 array, `(n, height, width, channels)` (one value per
            channel) or any other shape (one value).

    Returns:
        A `MeanStd` of Python floats.
    """
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.size == 0:
        raise LotteryError(
            f"mean_std needs non-empty uint8 images, got {images.dtype} of shape "
            f"{images.shape}; pass the training images as read (0..255)"
        )
    planes = (
        [images[..., c] for c in range(images.shape[-1])] if images.ndim == 4
        else [images]
    )
    means, stds = [], []
    levels = np.arange(_LEVELS, dtype=np.int64)
    for plane in planes:
        counts = np.bincount(plane.reshape(-1), minlength=_LEVELS).astype(np.int64)
        n = int(counts.sum())
        s1 = int(counts @ levels)
        s2 = int(counts @ (levels * levels))
        means.append(s1 / (255 * n))
        stds.append(math.sqrt((n * s2 - s1 * s1) / (255 * 255 * n * n)))
    return MeanStd(tuple(means), tuple(stds))


def standardize(images):
    """Per-image standardization, as `tf.image.per_image_standardization`.

    Over all pixels and channels of each image (values as float32),
    `(x - mean) / max(std, 1 / sqrt(num_elements))`.

    Args:
        images: Array of shape `(n, ...)`, any real dtype.

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


def normalize_images(images, normalize):
    """Applies a normalization to a batch.

    Args:
        images: Array of shape `(n, ...)`.
        normalize: A normalization as `resolve` accepts.

    Returns:
        A new float32 array of the same shape.
    """
    normalize = resolve(normalize)
    if normalize == PER_IMAGE:
        return standardize(images)
    if normalize is None:
        return np.array(images, dtype=np.float32)  # a copy: batches are the caller's
    x = np.asarray(images).astype(np.float32)
    x /= np.float32(255)
    mean = np.asarray(normalize.mean, np.float32)
    std = np.asarray(normalize.std, np.float32)
    if len(mean) == 1:
        mean, std = mean[0], std[0]
    elif x.ndim != 4 or x.shape[-1] != len(mean):
        raise LotteryError(
            f"{len(mean)} channel statistics for images of shape {x.shape}; pass "
            "one value or one per channel of (n, height, width, channels) images",
            param="normalize", value=normalize,
        )
    x -= mean
    x /= std
    return x
