"""The `Dataset` type: four arrays and what training needs to know of them."""

import dataclasses
import functools
import hashlib

import numpy as np

from keras_lottery.data import checks
from keras_lottery.data import normalization

_SPLITS = ("x_train", "y_train", "x_test", "y_test")


@dataclasses.dataclass(eq=False)
class Dataset:
    """A labelled dataset held in memory.

    Images are `(n, height, width, channels)` (uint8 for every named
    dataset) or `(n, features)`; labels are flat int32 class indices.

    `augment` says whether training applies `augment` (random crop and
    flip): true for the CIFAR-shaped datasets, false for digits and MNIST,
    where a flip changes what the image shows. `normalize` says how images
    become model input (see `normalization`). Pass both on, as
    `TrainBatches(..., augment=ds.augment, normalize=ds.normalize)` and
    `EvalBatches(..., normalize=ds.normalize)`.

    The arrays are not copied, and `fingerprint` is computed once: do not
    edit them in place after reading it.

    Attributes:
        name: The dataset's name (`"cifar10"`, ...; `"arrays"` or your own
            for in-memory arrays).
        x_train, y_train, x_test, y_test: The arrays.
        num_classes: Number of classes; `None` takes it from the data (the
            largest label + 1).
        augment: Whether training crops and flips.
        normalize: `"per_image"`, `None` or `MeanStd(mean, std)`.
        source: Where a run finds the data again: the dataset's name for
            named sets, `"npz:<absolute path>"` for npz files, `None` for
            in-memory arrays.
    """

    name: str
    x_train: np.ndarray = dataclasses.field(repr=False)
    y_train: np.ndarray = dataclasses.field(repr=False)
    x_test: np.ndarray = dataclasses.field(repr=False)
    y_test: np.ndarray = dataclasses.field(repr=False)
    num_classes: int | None = None
    augment: bool = True
    normalize: object = normalization.PER_IMAGE
    source: str | None = None

    def __post_init__(self):
        if self.num_classes is None:
            top = max(int(np.max(self.y_train, initial=-1)),
                      int(np.max(self.y_test, initial=-1)))
            self.num_classes = top + 1
        self.num_classes = checks.check_count("num_classes", self.num_classes, 1)
        self.augment = bool(self.augment)
        self.normalize = normalization.resolve(self.normalize)

    @property
    def image_shape(self):
        """The shape of one example, e.g. `(height, width, channels)`."""
        return tuple(self.x_train.shape[1:])

    @property
    def input_shape(self):
        """The same as `image_shape`: what `models.build` takes."""
        return self.image_shape

    @functools.cached_property
    def fingerprint(self):
        """sha256 hex digest of the four arrays' names, dtypes, shapes and bytes."""
        digest = hashlib.sha256()
        for split in _SPLITS:
            array = np.ascontiguousarray(getattr(self, split))
            header = f"{split} {array.dtype.str} {array.shape}\n"
            digest.update(header.encode("ascii"))
            digest.update(memoryview(array).cast("B"))
        return digest.hexdigest()
