"""Training augmentation: random crop after zero padding, random flip."""

import numpy as np

# Zero padding on each side before the random crop (40x40 -> 32x32).
PAD = 4


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
