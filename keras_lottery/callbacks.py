"""Keras callbacks: full-state checkpoints at exact training iterations."""

import pathlib

import keras

from keras_lottery import runs
from keras_lottery.state import save_state


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

    def on_train_begin(self, logs=None):
        model = self.model
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        self.step = int(keras.ops.convert_to_numpy(model.optimizer.iterations))

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = self.step

    def on_train_batch_end(self, batch, logs=None):
        # With steps_per_execution, Keras reports the end of a partial last
        # execution past the epoch's end; the epoch really stops at `steps`.
        done = batch + 1
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
    `checkpoint_iter_<N>.weights.h5`, written under a temporary name and
    renamed, so a crash never leaves half a checkpoint.

    With `steps_per_execution=N > 1`, Keras calls callbacks only every N
    batches; a requested iteration that would fall between two calls makes
    `fit` fail at the start of the epoch that would skip it, before any of
    its steps run, instead of being silently missed.

    Example:

    >>> model.fit(data, epochs=10, callbacks=[
    ...     IterationCheckpoint("ckpt", iterations=[0, 100, 500])])

    Args:
        directory: folder for the files (created if missing).
        iterations: optimizer iterations at which to save.
        save_final: also write `checkpoint_iter_final` at the end of `fit`.
    """

    def __init__(self, directory, iterations, save_final=True):
        super().__init__()
        self.directory = pathlib.Path(directory)
        self.iterations = sorted({int(i) for i in iterations})
        if self.iterations and self.iterations[0] < 0:
            raise ValueError("checkpoint iterations must be >= 0")
        self.save_final = save_final
        self.written = []

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
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
        save_state(self.model, self.directory / runs.checkpoint_name(iteration))
        self.written.append(iteration)

