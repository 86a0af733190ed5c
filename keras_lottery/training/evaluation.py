"""Evaluating a run: its test and validation sets, one metrics row per
evaluation, and its TensorBoard events (evaluations, training loss and LR,
and an HParams summary, so `tensorboard --logdir runs` compares runs)."""

import keras
import numpy as np

from keras_lottery import data as data_lib
from keras_lottery.sparse import pruning

VAL_SEED = 2020  # the validation split is the same for every run


# Evaluation batches hold this many training batches' images (a forward
# pass needs far less memory per image than a training step), at most
# EVAL_BATCH_CAP, and never fewer than a training batch: fewer, fuller
# batches evaluate faster, on a CPU as on a GPU.
EVAL_BATCH_FACTOR = 4
EVAL_BATCH_CAP = 1024


def eval_batch_size(batch_size):
    """The evaluation batch size of runs trained at `batch_size`."""
    return max(batch_size, min(EVAL_BATCH_FACTOR * batch_size, EVAL_BATCH_CAP))


def evaluation_sets(data, val_split, batch_size):
    """(test batches, validation batches or None), in evaluation batches of
    `eval_batch_size(batch_size)`.

    The paper held out a seeded part of the test set for choosing, and
    reported the rest: with `val_split` n, n test images (the same for
    every run) are the validation set and the others the test set.
    """
    def batches(xy):
        return data_lib.eval_input(*xy, eval_batch_size(batch_size), data.normalize)

    test, val = evaluation_split(data, val_split)
    return batches(test), None if val is None else batches(val)


def evaluation_split(data, val_split):
    """((test images, labels), (validation images, labels) or None), as
    they are on disk (see `evaluation_sets`)."""
    if not val_split:
        return (data.x_test, data.y_test), None
    order = np.random.default_rng(VAL_SEED).permutation(len(data.x_test))
    test, val = np.sort(order[val_split:]), np.sort(order[:val_split])
    return (data.x_test[test], data.y_test[test]), (data.x_test[val], data.y_test[val])


def evaluate(model, eval_sets, step, elapsed, lr_at, exclude=(), callbacks=None):
    """The metrics row of an evaluation after `step` updates: `lr_at(g)` is
    the LR of the update made at iteration g; the density is counted over
    the layers not in `exclude`; `callbacks` go to Keras's `evaluate`."""
    test, val = eval_sets
    result = model.evaluate(test, verbose=0, return_dict=True, callbacks=callbacks)
    val_top1 = None
    if val is not None:
        val_top1 = float(model.evaluate(val, verbose=0, return_dict=True,
                                        callbacks=callbacks)["top1"])
    return {
        "step": step,
        "top1": float(result["top1"]),
        "top5": float(result["top5"]),
        "loss": float(result["loss"]),
        "lr": last_lr(lr_at, step),
        "density": pruning.density(model, exclude),
        "val_top1": val_top1,
        "elapsed": round(elapsed, 3),
    }


class FirstStep(keras.callbacks.Callback):
    """Charges a run's first evaluation step, which traces the test
    function, to compiling (`clock`: a `timing.Stopwatch`)."""

    def __init__(self, clock):
        super().__init__()
        self.clock = clock
        self.done = False

    def on_test_batch_begin(self, batch, logs=None):
        if not self.done:
            self.clock.switch("compile")

    def on_test_batch_end(self, batch, logs=None):
        if not self.done:
            self.done = True
            self.clock.switch("evaluate")


def last_lr(lr_at, step):
    """The LR the last update before `step` used (the update made at
    iteration step − 1), as a short decimal. (The optimizer's own
    `learning_rate` is the next update's.)"""
    return float(f"{float(lr_at(step - 1)):.7g}")


class Summaries:
    """TensorBoard event files of a run: its evaluations, and scalars.

    Written with TensorFlow's `tf.summary` where TensorFlow is installed,
    else with TensorBoard's own writer (`tensorboard.summary.Writer`, numpy
    only), so a JAX or PyTorch install without TensorFlow logs the same
    scalars (the HParams summary alone needs TensorFlow).

    Args:
        logdir: the folder for the events (`<run>/logs/eval`).
    """

    def __init__(self, logdir):
        self.logdir = str(logdir)
        self.writer = None
        try:
            import tensorflow as tf
        except ImportError:  # made at the first scalar: no empty event file
            self.tf = None
            return
        self.tf = tf
        self.writer = tf.summary.create_file_writer(self.logdir)

    def write(self, row):
        """Writes one metrics row as scalars at its step."""
        # "accuracy" is the tag the original's eval events used.
        self.scalars({"accuracy": row["top1"], "accuracy_top_5": row["top5"],
                      "loss": row["loss"], "learning_rate": row["lr"],
                      "density": row["density"]}, row["step"])
        self.flush()

    def scalars(self, values, step):
        """Writes {tag: value} at `step`."""
        if self.tf is None:
            if self.writer is None:
                from tensorboard.summary import Writer

                self.writer = Writer(self.logdir)
            for tag, value in values.items():
                self.writer.add_scalar(tag, value, step)
            return
        with self.writer.as_default():
            for tag, value in values.items():
                self.tf.summary.scalar(tag, value, step=step)

    def flush(self):
        if self.writer is not None:
            self.writer.flush()


class TrainSummaries(keras.callbacks.Callback):
    """TensorBoard scalars of training: loss and LR every `every` steps.

    The values are kept on the host and written when each `fit` ends: a
    writer opened and flushed per step would cost more than a short run's
    step itself.

    Args:
        logdir: the folder for the events (`<run>/logs/train`).
        every: steps between two summaries.
        lr_at: the LR of the update made at an iteration.
    """

    def __init__(self, logdir, every, lr_at):
        super().__init__()
        self.every = every
        self.lr_at = lr_at
        self.summaries = Summaries(logdir)
        self.step = 0
        self.pending = []  # (step, loss)

    def on_train_begin(self, logs=None):
        self.step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        if self.step % self.every or not logs:
            return
        self.pending.append((self.step, float(logs["loss"])))

    def on_train_end(self, logs=None):
        for step, loss in self.pending:
            self.summaries.scalars({"loss": loss,
                                    "learning_rate": last_lr(self.lr_at, step)}, step)
        self.pending = []
        self.summaries.flush()


def hparams(spec):
    """What TensorBoard's HParams table shows of a run."""
    values = {
        "method": spec.mode, "arch": spec.arch, "dataset": spec.dataset,
        "k": -1 if spec.iteration is None else spec.iteration,
        "density": 1.0 if spec.target_density is None else spec.target_density,
        "seed": spec.seed, "iterative": spec.round is not None,
        "steps": spec.recipe.steps, "batch_size": spec.recipe.batch_size,
        "optimizer": spec.recipe.optimizer_name, "lr": spec.recipe.lr,
        "val_split": spec.val_split, "precision": spec.precision or "float32",
    }
    return values


def write_hparams(logdir, spec):
    """Writes the run's HParams summary (where TensorFlow is installed: its
    writer is TensorFlow's)."""
    try:
        import tensorflow as tf
        from tensorboard.plugins.hparams import api as hp
    except ImportError:
        return
    with tf.summary.create_file_writer(str(logdir)).as_default():
        hp.hparams(hparams(spec))
