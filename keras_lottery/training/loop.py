"""The training loop: `model.fit` in segments that end at exact steps.

Keras evaluates only at epoch ends and `steps_per_execution` hides batches
from callbacks, so `fit` runs in segments that end exactly at the next
checkpoint, evaluation or save point; one segment is one Keras "epoch".
The step count is kept on the host. Everything the loop needs (its bounds,
seed, checkpoint and evaluation points) comes in as a `Plan`; what it
writes goes to a run (`keras_lottery.runs.run.Run`, or anything with its
writing methods: `checkpoint_dir`, `checkpoint_pattern`, `logs_dir`,
`metrics`, `append_metrics`, `truncate_metrics`, `resume_states`,
`resume_path`, `clear_resume_states`, `stopped_early`, `stopped`,
`finished`). Creating and resuming runs is `keras_lottery.procedures`'.
"""

import dataclasses
import math
import signal
import sys
import threading
import time

import keras
import numpy as np

from keras_lottery import checks
from keras_lottery import data as data_lib
from keras_lottery.training import evaluation
from keras_lottery.training import timing
from keras_lottery.training.callbacks import IterationCheckpoint
from keras_lottery.training.callbacks import StepCounter
from keras_lottery.errors import LotteryError
from keras_lottery.training.state import save_state


@dataclasses.dataclass(frozen=True)
class Plan:
    """What the loop does: train from `start` to `end`, checkpoint and
    evaluate at the given steps, save a resume state every `save_every`.

    Attributes:
        start, end: the run's first and last optimizer iteration.
        seed: the data order's seed.
        batch_size: images per step.
        checkpoint_iters: iterations to checkpoint at (within [start, end]).
        eval_steps: iterations after which to evaluate.
        save_every: steps between resume states.
        val_split: test images held out for validation.
        summary_every: steps between TensorBoard training summaries.
        exclude: layers left out of the density.
        lr_at: the LR of the update made at an iteration (for the logs).
    """

    start: int
    end: int
    seed: int
    batch_size: int
    checkpoint_iters: tuple
    eval_steps: tuple
    save_every: int
    val_split: int = 0
    summary_every: int = 100
    exclude: tuple = ()
    lr_at: object = None

    def __post_init__(self):
        checks.count(self.save_every, "save_every", 1, "expected a positive number of steps")

    def saves(self, position):
        """The resume-state steps after `position`."""
        first = (position // self.save_every + 1) * self.save_every
        return set(range(first, self.end, self.save_every))

    def stops(self, position):
        """Where the segments after `position` end."""
        return sorted(
            {i for i in self.checkpoint_iters if position < i <= self.end}
            | {i for i in self.eval_steps if i > position} | self.saves(position)
        )


def fit(run, model, data, plan, *, position=None, verbose=1, callbacks=(), clock=None):
    """Trains `model` from `position` (default: the plan's start) to the
    plan's end, writing the run's checkpoints, metrics and resume states;
    marks the run finished, or failed or interrupted (keeping every file
    written so far), with where the attempt's time went (`clock`, a
    `timing.Stopwatch`).

    `callbacks` (Keras callbacks of the user's) see one training: batches
    numbered by global step, an "epoch" per evaluation with its metrics.
    """
    clock = timing.stopwatch(clock)
    clock.switch("data")
    position = plan.start if position is None else position
    # Rows after the state we resume from are recomputed, identically.
    run.truncate_metrics(position)
    checkpoint = _TimedCheckpoint(clock, run.checkpoint_dir, plan.checkpoint_iters,
                                  filename=run.checkpoint_pattern, save_final=False)
    checkpoint.set_model(model)  # a run resumed at its end fits nothing
    stops, saves = plan.stops(position), plan.saves(position)
    user = GlobalSteps(callbacks, position)
    log = _EvaluationLog(run, model, data, plan, verbose, user, clock)
    guard = _NanGuard(stops)
    summaries = evaluation.TrainSummaries(run.logs_dir / "train", plan.summary_every,
                                          plan.lr_at)
    callbacks = [_Phases(clock), guard, checkpoint, summaries, user] + (
        [log.progress] if log.progress else [])
    interrupts = _Interrupts()
    try:
        # A kill between writing a checkpoint and its evaluation row: redo
        # the evaluation (deterministic) instead of leaving a gap.
        if position in plan.eval_steps and position not in log.logged():
            log(position)
        for stop in stops:
            clock.switch("data")  # until the segment's first step
            # shuffle=False: Keras would otherwise permute a PyDataset's
            # batches within each segment, breaking data order = f(seed, step).
            model.fit(data_lib.train_input(data, plan.batch_size, plan.seed, position,
                                           stop - position),
                      steps_per_epoch=stop - position, callbacks=callbacks, verbose=0,
                      shuffle=False)
            position = stop
            if stop in plan.eval_steps:
                log(stop)
            with clock.phase("checkpoint"):
                _keep_latest_state(run, model, stop, saves, plan.checkpoint_iters)
            if model.stop_training:  # a user's callback (early stopping)
                run.stopped_early(stop)
                break
        checkpoint.save("final")
        user.finish()
        run.clear_resume_states()
    except BaseException as e:
        run.stopped(e, interrupts.seen, max(position, guard.step), clock.timing())
        raise
    finally:
        interrupts.close()
    run.finished(clock.timing())


class _Phases(keras.callbacks.Callback):
    """Charges each segment's first step to training (what came before it
    in `fit` was making its input), and the run's very first step, which
    traces the training function, to compiling."""

    def __init__(self, clock):
        super().__init__()
        self.clock = clock
        self.segment_began = self.traced = False

    def on_train_begin(self, logs=None):
        self.segment_began = False

    def on_train_batch_begin(self, batch, logs=None):
        if not self.segment_began:
            self.segment_began = True
            self.clock.switch("train" if self.traced else "compile")

    def on_train_batch_end(self, batch, logs=None):
        if not self.traced:
            self.traced = True
            self.clock.switch("train")


class _TimedCheckpoint(IterationCheckpoint):
    def __init__(self, clock, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.clock = clock

    def save(self, iteration):
        with self.clock.phase("checkpoint"):
            super().save(iteration)


class _Interrupts:
    """Notes a Ctrl-C during training: TensorFlow can turn the
    KeyboardInterrupt raised while it traces a function into another error
    (a TypeError from `Flatten`, seen here), and the run must still be
    marked interrupted (resumable), not failed. Only replaces Python's own
    handler, in the main thread."""

    def __init__(self):
        self.seen = False
        self.installed = (threading.current_thread() is threading.main_thread()
                          and signal.getsignal(signal.SIGINT) is signal.default_int_handler)
        if self.installed:
            signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum, frame):
        self.seen = True
        signal.default_int_handler(signum, frame)

    def close(self):
        if self.installed:
            signal.signal(signal.SIGINT, signal.default_int_handler)


def _keep_latest_state(run, model, stop, saves, checkpoint_iters):
    """Saves a resume state at a save point (a checkpoint is one already)
    and removes the older ones."""
    if stop in saves and stop not in checkpoint_iters:
        save_state(model, run.resume_path(stop))
    if stop in saves or stop in checkpoint_iters:
        for step, path in run.resume_states.items():
            if step < stop:
                path.unlink()


class _EvaluationLog:
    """Evaluates, appends the metrics row, writes its events, prints it,
    and tells the user's callbacks."""

    def __init__(self, run, model, data, plan, verbose, user, clock):
        self.run, self.model, self.verbose, self.user = run, model, verbose, user
        self.exclude, self.lr_at, self.clock = plan.exclude, plan.lr_at, clock
        # Made once: each evaluation then reuses the pipeline and the traced
        # function.
        self.sets = evaluation.evaluation_sets(data, plan.val_split, plan.batch_size)
        self.traced = evaluation.FirstStep(clock)
        self.summaries = evaluation.Summaries(run.logs_dir / "eval")
        # A progress bar in a terminal; in a log file, a line per evaluation.
        bar = verbose == 1 and _interactive()
        self.progress = _Progress(plan.start, plan.end) if bar else None
        self.began = time.time()

    def logged(self):
        return {m["step"] for m in self.run.metrics}

    def __call__(self, step):
        with self.clock.phase("evaluate"):
            row = evaluation.evaluate(self.model, self.sets, step, time.time() - self.began,
                                      self.lr_at, exclude=self.exclude,
                                      callbacks=[self.traced])
            self.run.append_metrics(row)
            self.summaries.write(row)
        self.user.evaluated(row)
        if not self.verbose:
            return
        if self.progress:
            self.progress.bar.update(step - self.progress.start, finalize=False)
            print()
        print(
            f"step {step}: top-1 {row['top1']:.4f}  top-5 "
            f"{row['top5']:.4f}  loss {row['loss']:.4f}  "
            f"lr {row['lr']:g}  density {checks.percent_shown(row['density'])}"
        )


def _interactive():
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


class GlobalSteps(keras.callbacks.Callback):
    """The user's callbacks, seeing a run as one training.

    `fit` runs in segments; these callbacks see `on_train_begin` once and
    `on_train_end` once (at the run's end), batch numbers counted from the
    run's global step (`batch` is the optimizer iteration the update starts
    from, as W&B- or MLflow-style loggers expect a step), and an "epoch" per
    evaluation, whose logs are the evaluation's metrics (top1, top5, loss,
    val_top1, lr, density): what `EarlyStopping(monitor="val_top1")` reads.
    Setting `model.stop_training` ends the run after the current segment.

    Args:
        callbacks: Keras callbacks.
        position: the global step the run continues from.
    """

    def __init__(self, callbacks, position):
        super().__init__()
        self.callbacks = list(callbacks or ())
        self.offset = position
        self.started = False
        self.evaluations = 0

    def set_model(self, model):
        super().set_model(model)
        for callback in self.callbacks:
            callback.set_model(model)

    def set_params(self, params):
        super().set_params(params)
        for callback in self.callbacks:
            callback.set_params(params)

    def on_train_begin(self, logs=None):
        self.offset = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        if not self.started:
            self.started = True
            for callback in self.callbacks:
                callback.on_train_begin(logs)

    def on_train_batch_begin(self, batch, logs=None):
        for callback in self.callbacks:
            callback.on_train_batch_begin(self.offset + batch, logs)

    def on_train_batch_end(self, batch, logs=None):
        for callback in self.callbacks:
            callback.on_train_batch_end(self.offset + batch, logs)

    def evaluated(self, row):
        logs = {k: v for k, v in row.items() if v is not None and k != "elapsed"}
        for callback in self.callbacks:
            callback.on_epoch_begin(self.evaluations)
            callback.on_epoch_end(self.evaluations, logs)
        self.evaluations += 1

    def finish(self):
        if self.started:
            for callback in self.callbacks:
                callback.on_train_end()


class _NanGuard(StepCounter):
    """Stops training at the first non-finite loss, and at a save point
    whose weights are not finite, before anything of that step is written
    (it runs first among the callbacks). A NaN can reach the weights one
    step before the loss shows it (a ReLU maps NaN to 0), hence both."""

    def __init__(self, save_points=()):
        super().__init__()
        self.save_points = set(save_points)

    def on_train_batch_end(self, batch, logs=None):
        super().on_train_batch_end(batch, logs)
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self._fail(f"the training loss became {float(loss)}")
        if self.step in self.save_points and not all(
            np.isfinite(keras.ops.convert_to_numpy(v)).all() for v in self.model.weights
        ):
            self._fail("the weights became non-finite (nan or inf)")

    def _fail(self, what):
        raise LotteryError(
            f"{what} at step {self.step}; the run is marked failed and keeps "
            "its checkpoints up to the last good step; lower the learning "
            "rate or check the data"
        )


class _Progress(StepCounter):
    """One Keras progress bar over the whole run's steps (segments are an
    implementation detail, so no per-segment "Epoch 1/1" bars)."""

    def __init__(self, start, end):
        super().__init__()
        self.start = start
        self.bar = keras.utils.Progbar(
            end - start, stateful_metrics=["loss", "top1", "top5"],
            unit_name="step",
        )

    def on_train_batch_end(self, batch, logs=None):
        super().on_train_batch_end(batch, logs)
        values = [(k, float(v)) for k, v in (logs or {}).items()
                  if k in ("loss", "top1", "top5")]
        self.bar.update(self.step - self.start, values=values)
