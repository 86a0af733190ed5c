"""Evaluating a run: its test and validation sets, one metrics row per
evaluation, and the TensorBoard events of those rows."""

import keras
import numpy as np

from keras_lottery import data as data_lib
from keras_lottery import pruning

VAL_SEED = 2020  # the validation split is the same for every run


def evaluation_sets(data, val_split, batch_size):
    """(test batches, validation batches or None).

    The paper held out a seeded part of the test set for choosing, and
    reported the rest: with `val_split` n, n test images (the same for
    every run) are the validation set and the others the test set.
    """
    def batches(index):
        return data_lib.EvalBatches(data.x_test[index], data.y_test[index],
                                    batch_size, normalize=data.normalize)

    if not val_split:
        return batches(slice(None)), None
    order = np.random.default_rng(VAL_SEED).permutation(len(data.x_test))
    return batches(np.sort(order[val_split:])), batches(np.sort(order[:val_split]))


def evaluate(model, eval_sets, step, elapsed):
    """The metrics row of an evaluation after `step` updates."""
    test, val = eval_sets
    result = model.evaluate(test, verbose=0, return_dict=True)
    val_top1 = None
    if val is not None:
        val_top1 = float(model.evaluate(val, verbose=0, return_dict=True)["top1"])
    return {
        "step": step,
        "top1": float(result["top1"]),
        "top5": float(result["top5"]),
        "loss": float(result["loss"]),
        "lr": last_lr(model, step),
        "density": pruning.density(model),
        "val_top1": val_top1,
        "elapsed": round(elapsed, 3),
    }


def last_lr(model, step):
    """The LR of the last update before `step`, as a short decimal."""
    lr = model.optimizer.learning_rate  # the schedule object
    value = lr(step - 1) if callable(lr) else lr
    # float32 noise (0.10000000149) would make tables unreadable.
    return float(f"{float(keras.ops.convert_to_numpy(value)):.7g}")


class Summaries:
    """TensorBoard event files of a run's evaluations (where TF is present).

    Args:
        logdir: the folder for the events (`<run>/logs/eval`).
    """

    def __init__(self, logdir):
        try:
            import tensorflow as tf
        except ImportError:  # JAX-only install: metrics.csv still has it all
            self.writer = None
            return
        self.writer = tf.summary.create_file_writer(str(logdir))

    def write(self, row):
        """Writes one metrics row as scalars at its step."""
        if self.writer is None:
            return
        import tensorflow as tf

        step = row["step"]
        with self.writer.as_default():
            # "accuracy" is the tag the original's eval events used.
            tf.summary.scalar("accuracy", row["top1"], step=step)
            tf.summary.scalar("accuracy_top_5", row["top5"], step=step)
            tf.summary.scalar("loss", row["loss"], step=step)
            tf.summary.scalar("learning_rate", row["lr"], step=step)
            tf.summary.scalar("density", row["density"], step=step)
        self.writer.flush()
