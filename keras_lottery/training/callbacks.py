"""Keras callbacks: full-state checkpoints at exact training iterations."""

import pathlib
import re
import warnings

import keras

from keras_lottery import checks
from keras_lottery.training.state import save_state

DEFAULT_FILENAME = "checkpoint_iter_{iteration}.weights.h5"


class StepCounter(keras.callbacks.Callback):
    """Tracks the global optimizer iteration on the host.

    Reads `optimizer.iterations` once per `fit` and counts batches after
    that, so no variable is read per step. `self.step` is the number of
    updates done so far.
    """

    def __init__(self):
        super().__init__()
        self.step = 0
        self._epoch_start = 0
        self._batch_begin = 0

    def on_train_begin(self, logs=None):
        model = self.model
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        self.step = int(keras.ops.convert_to_numpy(model.optimizer.iterations))

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = self.step

    def on_train_batch_begin(self, batch, logs=None):
        self._batch_begin = batch

    def on_train_batch_end(self, batch, logs=None):
        # One call per execution of `steps_per_execution` steps. Its `batch`
        # is the execution's first step up to Keras 3.10 and its last from
        # 3.11 on; the first step (`on_train_batch_begin`'s, in every
        # version) plus the execution's length counts right in both.
        every = int(getattr(self.model, "steps_per_execution", 1) or 1)
        done = self._batch_begin + every
        # Keras reports the end of a partial last execution past the
        # epoch's end; the epoch really stops at `steps`.
        steps = (self.params or {}).get("steps")
        if steps:
            done = min(done, steps)
        self.step = self._epoch_start + done


class IterationCheckpoint(StepCounter):
    """Saves the full training state at exact optimizer iterations.

    A checkpoint holds the weights, the masks, batch-norm statistics, the
    optimizer's slots (momentum) and its iteration counter: everything a
    rewind restores. Iteration N is written after N updates, so iteration 0
    (or whatever iteration training starts at) is the state before the first
    update of this `fit`. `final` is written when training ends. Files are
    written under a temporary name and renamed, so a crash never leaves half
    a checkpoint.

    Like Keras's `BackupAndRestore`, it finds what it wrote before: at the
    start of each `fit` it lists its files in `directory`, and an iteration
    already on disk is not written again (a resumed run keeps its
    checkpoints as they were).

    With `steps_per_execution=N > 1`, Keras calls callbacks only every N
    batches; a requested iteration that would fall between two calls makes
    `fit` fail at the start of the epoch that would skip it, before any of
    its steps run, instead of being silently missed.

    Example:

    >>> model.fit(data, epochs=10, callbacks=[
    ...     IterationCheckpoint("ckpt", iterations=[0, 100, 500])])

    Args:
        directory: folder for the files (created if missing).
        iterations: optimizer iterations at which to save (a list of
            integers >= 0).
        filename: the file name pattern, with `{iteration}` standing for
            the iteration or "final"; it must end in `.weights.h5`.
        save_final: also write the `final` file at the end of `fit`; the
            fit is then taken as the end of training, and requested
            iterations it never reached are named in a warning.
    """

    def __init__(self, directory, iterations, *, filename=DEFAULT_FILENAME,
                 save_final=True):
        super().__init__()
        if isinstance(iterations, (str, bytes)) or not _is_iterable(iterations):
            raise ValueError(
                f"`iterations` must be a list of integers >= 0, e.g. [0, 100, "
                f"500], got {iterations!r}"
            )
        if not all(checks.is_count(i) for i in iterations):
            raise ValueError(
                f"`iterations` must be integers >= 0, got {list(iterations)!r}"
            )
        if "{iteration}" not in filename or not filename.endswith(".weights.h5"):
            raise ValueError(
                "`filename` must contain {iteration} and end in .weights.h5 "
                f"(Keras's weights format), got {filename!r}"
            )
        self.directory = pathlib.Path(directory)
        self.iterations = sorted({int(i) for i in iterations})
        self.filename = filename
        self.save_final = save_final
        self.written = []

    def path(self, iteration):
        """The file of `iteration` (an int or "final")."""
        return self.directory / self.filename.format(iteration=iteration)

    def on_disk(self):
        """The integer iterations whose files are in `directory`."""
        prefix, suffix = (re.escape(p) for p in self.filename.split("{iteration}", 1))
        pattern = re.compile(f"{prefix}([0-9]+){suffix}")
        if not self.directory.is_dir():
            return []
        found = (pattern.fullmatch(p.name) for p in self.directory.iterdir())
        return sorted(int(m[1]) for m in found if m)

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self.written = self.on_disk()
        self._maybe_save(self.step)

    def _check_reachable(self):
        # Runs before each epoch's first step: with steps_per_execution=N the
        # callbacks see steps N, 2N, ... and the epoch's last step only.
        every = int(getattr(self.model, "steps_per_execution", 1) or 1)
        steps = (self.params or {}).get("steps")
        if every == 1 or not steps:
            return
        start = self.step
        reachable = {start + min(k, steps) for k in range(every, steps + every, every)}
        missed = [
            i for i in self.iterations
            if start < i <= start + steps and i not in reachable
        ]
        if missed:
            raise ValueError(
                f"steps_per_execution={every} would skip checkpoint iterations "
                f"{missed} (callbacks run only every {every} steps); use a "
                "steps_per_execution that divides the distance between "
                "checkpoints, or 1."
            )

    def on_epoch_begin(self, epoch, logs=None):
        super().on_epoch_begin(epoch, logs)
        self._check_reachable()

    def on_train_batch_end(self, batch, logs=None):
        super().on_train_batch_end(batch, logs)
        self._maybe_save(self.step)

    def on_train_end(self, logs=None):
        if self.save_final:
            self.save("final")
            # save_final says this fit ends the training: an iteration it
            # never reached would otherwise just be missing, unnoticed.
            unreached = [i for i in self.iterations if i > self.step]
            if unreached:
                warnings.warn(
                    f"IterationCheckpoint: iterations {unreached} lie past the "
                    f"end of this fit (iteration {self.step}) and were not "
                    "written; a later fit that continues the training writes "
                    "them, or ask only for iterations up to the end of training",
                    stacklevel=2,
                )

    def _maybe_save(self, step):
        if step in self.iterations and step not in self.written:
            optimizer = self.model.optimizer
            found = int(keras.ops.convert_to_numpy(optimizer.iterations))
            # With gradient accumulation, iterations count updates, not steps.
            if found != step and not getattr(optimizer, "gradient_accumulation_steps", None):
                raise ValueError(
                    f"optimizer.iterations is {found} after {step} training "
                    "steps, so checkpoint iterations would be mislabelled; "
                    "an optimizer skipped updates without counting them "
                    "(Keras's LossScaleOptimizer does under mixed_float16): "
                    "compile with keras_lottery.LossScaleOptimizer instead"
                )
            self.save(step)

    def save(self, iteration):
        """Writes `checkpoint_iter_<iteration>` now, atomically."""
        save_state(self.model, self.path(iteration))
        self.written.append(iteration)


def _is_iterable(value):
    try:
        iter(value)
    except TypeError:
        return False
    return True

