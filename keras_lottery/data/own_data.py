"""Your own data: four arrays in memory, or an `.npz` file holding them.

Images are used as given, cast to float32 (no normalization), so scale them
as the model should see them. Labels are integer class indices; the number
of classes is the largest label + 1.
"""

import os

import numpy as np

from keras_lottery.data import checks
from keras_lottery.data.dataset import Dataset
from keras_lottery.errors import LotteryError

AUGMENTATIONS = (None, "cifar")
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
NPZ_PREFIX = "npz:"
_MAX_LABEL = np.iinfo(np.int32).max


def arrays(x_train, y_train, x_test, y_test, *, augment=None, name=None):
    """Makes a `Dataset` of your own arrays, checked.

    Example:

    >>> x = np.zeros((8, 4), np.float32)
    >>> ds = arrays(x, [0, 1] * 4, x[:2], [1, 2])
    >>> ds.num_classes, ds.image_shape, ds.normalize
    (3, (4,), None)

    Args:
        x_train: Training images `(n, height, width, channels)`, or
            `(n, features)` for an MLP; any real dtype (uint8 or float),
            used as given and cast to float32 (no normalization).
        y_train: Integer labels `(n,)` (or `(n, 1)`), 0 .. C - 1; whole-valued
            floats are accepted.
        x_test: Test images, each of the shape of a training image.
        y_test: Test labels; not every class need appear.
        augment: `None`, or `"cifar"` for CIFAR's training augmentation
            (zero-pad 4, random crop, random horizontal flip); `"cifar"`
            needs `(n, height, width, channels)` images.
        name: The dataset's name (default `"arrays"`).

    Returns:
        A `Dataset` with `normalize=None` and `source=None`; the arrays are
        not copied unless a dtype changes.
    """
    if not (augment is None or (isinstance(augment, str) and augment in AUGMENTATIONS)):
        raise LotteryError(
            "expected None or 'cifar' (pad-4 random crop and flip)",
            param="augment", value=augment,
        )
    if name is not None and (not isinstance(name, str) or not name):
        raise LotteryError("expected a non-empty string or None", param="name",
                           value=name)
    x_train = _images("x_train", x_train)
    x_test = _images("x_test", x_test)
    if x_train.shape[1:] != x_test.shape[1:]:
        raise LotteryError(
            f"x_train examples are {x_train.shape[1:]} but x_test examples "
            f"{x_test.shape[1:]}; pass test images of the training images' shape"
        )
    if augment == "cifar" and x_train.ndim != 4:
        raise LotteryError(
            f"'cifar' augmentation crops and flips (n, height, width, channels) "
            f"images, not shape {x_train.shape}; pass augment=None",
            param="augment", value=augment,
        )
    y_train = _labels("y_train", y_train, len(x_train))
    y_test = _labels("y_test", y_test, len(x_test))
    return Dataset(
        name or "arrays", x_train, y_train, x_test, y_test, None,
        augment=augment == "cifar", normalize=None, source=None,
    )


def _images(key, x):
    """`x` as an array of real numbers, `(n, h, w, c)` or `(n, d)`, finite."""
    try:
        x = np.asarray(x)
    except ValueError as e:  # ragged nested lists
        raise LotteryError(
            f"{key} is not an array ({checks.one_line(e)}); pass one numpy array"
        ) from None
    if x.dtype.kind not in "uif":
        raise LotteryError(
            f"{key} has dtype {x.dtype}; pass real numbers (uint8 or float images)"
        )
    if x.ndim == 3:
        raise LotteryError(
            f"{key} has shape {x.shape}; add a channel axis (x[..., None]) for "
            "(n, height, width, 1) images, or flatten to (n, features)"
        )
    if x.ndim not in (2, 4):
        raise LotteryError(
            f"{key} has shape {x.shape}; expected (n, height, width, channels) "
            "or (n, features)"
        )
    if x.size == 0:
        raise LotteryError(f"{key} is empty (shape {x.shape}); pass at least one example")
    if x.dtype.kind == "f":
        bad = ~np.isfinite(x.reshape(len(x), -1)).all(axis=1)
        if bad.any():
            raise LotteryError(
                f"{key} holds NaN or infinite values (first in example "
                f"{int(np.argmax(bad))}); clean or drop those examples"
            )
    return x


def _labels(key, y, n):
    """`y` as flat int32 class indices, one per image."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y.reshape(-1)
    if y.ndim != 1 or len(y) != n:
        raise LotteryError(
            f"{key} has shape {y.shape} for {n} images; pass one label per image, "
            f"shape ({n},)"
        )
    fix = "pass integer class indices 0 .. C - 1"
    if y.dtype.kind == "f":
        whole = np.isfinite(y) & (y == np.floor(y))
        if not whole.all():
            bad = int(np.argmax(~whole))
            raise LotteryError(f"{key} holds {y[bad]} at index {bad}; {fix}")
    elif y.dtype.kind not in "iu":
        raise LotteryError(f"{key} has dtype {y.dtype}; {fix}")
    if y.min() < 0:
        bad = int(np.argmin(y))
        raise LotteryError(f"{key} holds {y[bad]} at index {bad}; {fix}")
    if y.max() > _MAX_LABEL:
        raise LotteryError(f"{key} holds label {y.max()}, too large; {fix}")
    return y.astype(np.int32, copy=False)


def read_npz(path):
    """Reads your own dataset from an `.npz` with exactly the keys
    `x_train`, `y_train`, `x_test`, `y_test` (no pickled objects).

    Args:
        path: The file, e.g. written by `np.savez(path, x_train=..., ...)`.

    Returns:
        A `Dataset` as `arrays` makes, named for the file, with
        `source="npz:<absolute path>"`.
    """
    given, path = os.fspath(path), os.path.abspath(os.fspath(path))
    loaded = _load_npz(path, given=given)
    ds = arrays(*(loaded[k] for k in NPZ_KEYS), name=os.path.basename(path))
    ds.source = NPZ_PREFIX + path
    return ds


def npz_train_size(path):
    """Training examples in an npz file, reading only its `y_train`."""
    given, path = os.fspath(path), os.path.abspath(os.fspath(path))
    return len(_load_npz(path, ("y_train",), given=given)["y_train"])


def _load_npz(path, wanted=NPZ_KEYS, given=None):
    """`{key: array}` of the `wanted` keys, or a one-line `LotteryError`
    (naming the dataset as it was `given`, "npz:<given>")."""
    fix = "write it with np.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)"
    if not os.path.isfile(path):
        raise LotteryError(f"no such file ({path}); {fix}", param="dataset",
                           value=NPZ_PREFIX + (given or path))
    try:
        npz = np.load(path, allow_pickle=False)
    except Exception as e:  # Not a zip, a pickle, a truncated zip, ...
        raise LotteryError(f"{path}: not an npz file ({checks.one_line(e)}); {fix}") from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise LotteryError(f"{path}: holds one array (.npy), not an npz; {fix}")
    with npz:
        _check_keys(path, npz.files)
        try:
            return {k: npz[k] for k in wanted}
        except ValueError as e:  # object arrays need pickle
            raise LotteryError(
                f"{path}: {checks.one_line(e)}; save plain numeric arrays, not objects"
            ) from None
        except Exception as e:  # A damaged member fails in many ways.
            raise LotteryError(f"{path}: corrupt ({checks.one_line(e)}); {fix}") from None


def _check_keys(path, files):
    missing = [k for k in NPZ_KEYS if k not in files]
    extra = sorted(set(files) - set(NPZ_KEYS))
    if missing or extra:
        problems = []
        if missing:
            problems.append(f"missing {', '.join(missing)}")
        if extra:
            problems.append(f"unexpected {', '.join(extra)}")
        raise LotteryError(
            f"{path}: keys {'; '.join(problems)}; it must hold exactly "
            f"{', '.join(NPZ_KEYS)}"
        )
