"""The numpy input pipeline: the training stream and evaluation batches.

The training stream is a pure function of `(seed, step)`: epoch `e` is the
permutation drawn from `np.random.default_rng([seed, e])`, step `s` takes
stream positions `s * B ... s * B + B - 1` (batches run across epoch
boundaries), and its augmentation draws from an rng keyed on `(seed, step)`.
A resumed or rewound run therefore sees exactly the data an uninterrupted
one would.
"""

import functools

import keras
import numpy as np

from keras_lottery.data import checks
from keras_lottery.data import normalization
from keras_lottery.data.augmentation import augment as crop_and_flip
from keras_lottery.errors import LotteryError

# An extra seed word keeps the augmentation streams apart from the
# `[seed, epoch]` shuffle streams.
_AUGMENT_TAG = 0x61756721


@functools.lru_cache(maxsize=8)
def _epoch_permutation(seed, epoch, num_examples):
    perm = np.random.default_rng([seed, epoch]).permutation(num_examples)
    perm.setflags(write=False)  # Shared through the cache.
    return perm


def batch_indices(num_examples, batch_size, step, *, seed):
    """Training-set indices of the batch at a global step.

    The stream is an endless sequence of epochs; epoch `e` is the permutation
    `np.random.default_rng([seed, e]).permutation(num_examples)`. Step `s`
    takes stream positions `s * batch_size ... s * batch_size + batch_size - 1`,
    so a batch can span an epoch boundary.

    Args:
        num_examples: Size of the training set.
        batch_size: Examples per batch.
        step: Global step, 0-based.
        seed: Non-negative integer.

    Returns:
        An int64 array of `batch_size` indices.
    """
    positions = step * batch_size + np.arange(batch_size, dtype=np.int64)
    epochs, offsets = np.divmod(positions, num_examples)
    indices = np.empty(batch_size, dtype=np.int64)
    for epoch in range(int(epochs[0]), int(epochs[-1]) + 1):
        here = epochs == epoch
        perm = _epoch_permutation(seed, epoch, num_examples)
        indices[here] = perm[offsets[here]]
    return indices


class TrainBatches(keras.utils.PyDataset):
    """Training batches for a run of steps: shuffled, augmented, normalized.

    Item `i` is the batch of global step `start_step + i`; see
    `batch_indices` for the order and `augment` for the augmentation, whose
    rng is keyed on `(seed, step)`. Equal seeds give equal batches for a
    step whatever `start_step` is.

    Args:
        x: Images, `(n, height, width, channels)`, or `(n, features)` when
            `augment` is false.
        y: Integer labels, `(n,)`.
        batch_size: Examples per batch.
        seed: Non-negative integer.
        start_step: Global step of item 0.
        num_steps: Number of items.
        augment: Whether to crop and flip before normalizing; pass the
            dataset's `Dataset.augment` (false for digits and MNIST).
        normalize: How images become float32: `"per_image"`
            (`standardize`, the default), `(mean, std)` after scaling to
            [0, 1], or `None` (as given); pass `Dataset.normalize`.
        **kwargs: `workers`, `use_multiprocessing`, `max_queue_size` for
            `keras.utils.PyDataset`.
    """

    def __init__(
        self, x, y, batch_size, *, seed, start_step=0, num_steps, augment=True,
        normalize=normalization.PER_IMAGE, **kwargs,
    ):
        super().__init__(**kwargs)
        x, y = check_xy(x, y)
        checks.check_count("batch_size", batch_size, minimum=1)
        checks.check_count("start_step", start_step)
        checks.check_count("num_steps", num_steps)
        if augment and x.ndim != 4:
            raise LotteryError(
                f"random crop and flip need (n, height, width, channels) images, "
                f"got shape {x.shape}; pass augment=False",
                param="augment", value=augment,
            )
        self.x = x
        self.y = y
        self.batch_size = int(batch_size)
        self.seed = checks.check_seed(seed)
        self.start_step = int(start_step)
        self.num_steps = int(num_steps)
        self.augment = bool(augment)
        self.normalize = normalization.resolve(normalize)

    def __len__(self):
        return self.num_steps

    def __getitem__(self, index):
        if not 0 <= index < self.num_steps:
            raise IndexError(f"batch {index} out of range [0, {self.num_steps})")
        return self.batch(self.start_step + int(index))

    def batch(self, step):
        """The `(float32 images, int32 labels)` batch of a global step."""
        checks.check_count("step", step)
        indices = batch_indices(len(self.x), self.batch_size, step, seed=self.seed)
        images = self.x[indices]
        if self.augment:
            rng = np.random.default_rng([self.seed, _AUGMENT_TAG, step])
            images = crop_and_flip(images, rng)
        return normalization.normalize_images(images, self.normalize), self.y[indices]


class EvalBatches(keras.utils.PyDataset):
    """Evaluation batches in file order, normalized, last partial batch kept.

    Args:
        x: Images, `(n, height, width, channels)` or `(n, features)`.
        y: Integer labels, `(n,)`.
        batch_size: Examples per batch.
        normalize: As for `TrainBatches`; pass `Dataset.normalize`.
        **kwargs: `workers`, `use_multiprocessing`, `max_queue_size` for
            `keras.utils.PyDataset`.
    """

    def __init__(self, x, y, batch_size, *, normalize=normalization.PER_IMAGE,
                 **kwargs):
        super().__init__(**kwargs)
        self.x, self.y = check_xy(x, y)
        checks.check_count("batch_size", batch_size, minimum=1)
        self.batch_size = int(batch_size)
        self.normalize = normalization.resolve(normalize)

    def __len__(self):
        return -(-len(self.x) // self.batch_size)

    def __getitem__(self, index):
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} out of range [0, {len(self)})")
        window = slice(index * self.batch_size, (index + 1) * self.batch_size)
        images = normalization.normalize_images(self.x[window], self.normalize)
        return images, self.y[window]


# A segment of training batches up to this size is made at once and sliced
# (no function to trace); a longer one is made batch by batch as it trains.
SLICED_BYTES = 32 * 2**20


def train_input(data, batch_size, seed, start_step, num_steps):
    """What `model.fit` trains on for the steps `[start_step, start_step +
    num_steps)` of `data` (a `Dataset`): its `TrainBatches`, in a tf.data
    pipeline on the TensorFlow backend.

    Keras would turn the `TrainBatches` into a tf.data pipeline itself,
    through a Python generator: tens of milliseconds per `fit` and a slower
    step. This one holds the same arrays, so the training is the same, with
    the shapes Keras would have given them: made at once and sliced when
    they take at most `SLICED_BYTES`, else each step mapped to its batch.
    """
    batches = TrainBatches(data.x_train, data.y_train, batch_size, seed=seed,
                           start_step=start_step, num_steps=num_steps,
                           augment=data.augment, normalize=data.normalize)
    if keras.backend.backend() != "tensorflow":
        return batches
    import tensorflow as tf

    steps = range(start_step, start_step + num_steps)
    if num_steps * batch_size * batches.x[0].size * 4 <= SLICED_BYTES:
        x, y = zip(*map(batches.batch, steps))
        pairs = tf.data.Dataset.from_tensor_slices((np.concatenate(x), np.concatenate(y)))
        return pairs.batch(batch_size)
    # Keras's shapes: the batch size left unknown (a known one traces
    # another training function, whose float rounding can differ).
    shape = (None, *batches.x.shape[1:])

    def load(step):
        x, y = tf.numpy_function(lambda s: batches.batch(int(s)), [step],
                                 (tf.float32, tf.int32))
        return tf.ensure_shape(x, shape), tf.ensure_shape(y, (None,))

    return tf.data.Dataset.range(steps.start, steps.stop).map(load).prefetch(1)


def eval_input(x, y, batch_size, normalize):
    """Evaluation batches of `(x, y)` in order, last partial batch kept: a
    tf.data pipeline of the normalized images on the TensorFlow backend
    (made once, every evaluation of a run reuses it, and its batches of
    unknown size trace the test function once), else `EvalBatches`."""
    if keras.backend.backend() != "tensorflow":
        return EvalBatches(x, y, batch_size, normalize=normalize)
    import tensorflow as tf

    x, y = check_xy(x, y)
    checks.check_count("batch_size", batch_size, minimum=1)
    images = normalization.normalize_images(x, normalize)
    return tf.data.Dataset.from_tensor_slices((images, y)).batch(batch_size)


def check_xy(x, y):
    """`(x, int32 y)` for the batchers; a `LotteryError` for bad shapes."""
    x = np.asarray(x)
    y = np.asarray(y)
    if x.ndim not in (2, 4) or len(x) == 0:
        raise LotteryError(
            f"images of shape {x.shape}; expected a non-empty (n, height, width, "
            "channels) or (n, features) array"
        )
    if y.ndim != 1 or len(y) != len(x):
        raise LotteryError(
            f"labels of shape {y.shape} for {len(x)} images; expected ({len(x)},)"
        )
    return x, y.astype(np.int32, copy=False)
