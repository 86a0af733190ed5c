"""The training loop as the user's callbacks, Ctrl-C and a log file see it
(issues 15 and 17), on LeNet-300-100 and the bundled digits."""

import os
import signal
import sys
import time

import keras
import numpy as np
import pytest
from click.testing import CliRunner

import keras_lottery as kl
from keras_lottery import data as data_lib
from keras_lottery.runs import layout
from keras_lottery.spec import record
from keras_lottery.cli import main

# 12 steps in segments ending at checkpoints (0, 3, 12), evaluations (4,
# 8, 12) and resume states (5, 10).
RECIPE = dict(dataset="digits", steps=12, batch_size=32, eval_every=4,
              checkpoint_iters=[0, 3, 12], save_every=5, verbose=0)
EVALUATED = ("step", "top1", "top5", "loss", "lr", "density")


class Recorder(keras.callbacks.Callback):
    """What a W&B- or MLflow-style logger is told."""

    def __init__(self):
        super().__init__()
        self.begins, self.ends, self.batches, self.epochs = 0, 0, [], []

    def on_train_begin(self, logs=None):
        self.begins += 1

    def on_train_end(self, logs=None):
        self.ends += 1

    def on_train_batch_end(self, batch, logs=None):
        self.batches.append(batch)

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append((epoch, dict(logs)))


def _ctrl_c_at(step, batch=data_lib.TrainBatches.batch):
    """`TrainBatches.batch`, pressing Ctrl-C when fetching `step`'s batch.

    Batches are fetched inside tf.data (where an exception becomes a TF
    error), so this sends a real SIGINT: Python raises KeyboardInterrupt in
    the main thread, within a step or two, as when a user presses Ctrl-C.
    """
    def fetch(self, index):
        if index == step:
            signal.raise_signal(signal.SIGINT)
        return batch(self, index)

    return fetch


def _untimed(run):
    return [{k: v for k, v in row.items() if k != "elapsed"} for row in run.metrics]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    recorder = Recorder()
    run = kl.train("lenet300", seed=0, out=tmp_path_factory.mktemp("train") / "r",
                   callbacks=[recorder], **RECIPE)
    return run, recorder


def test_callbacks_see_one_training_numbered_by_global_step(trained):
    run, recorder = trained
    assert recorder.batches == list(range(12))  # across 6 segments
    assert (recorder.begins, recorder.ends) == (1, 1)
    # An "epoch" per evaluation, whose logs are the evaluation's metrics.
    assert [epoch for epoch, _ in recorder.epochs] == [0, 1, 2]
    for (_, logs), row in zip(recorder.epochs, run.metrics):
        assert set(logs) == set(EVALUATED)  # no empty val_top1, no timing
        assert logs == {k: row[k] for k in EVALUATED}
    assert [logs["step"] for _, logs in recorder.epochs] == [4, 8, 12]


def test_callbacks_of_derived_runs_and_iterate_start_at_their_first_step(trained, tmp_path):
    parent, _ = trained
    recorder = Recorder()
    child = kl.rewind(parent, iteration=3, density=0.5, seed=0, verbose=0,
                      out=tmp_path / "rewind", callbacks=[recorder])
    assert recorder.batches == list(range(3, 12))
    assert (recorder.begins, recorder.ends) == (1, 1)
    assert [logs["step"] for _, logs in recorder.epochs] == [m["step"] for m in child.metrics]
    assert recorder.epochs[-1][1]["density"] == 0.5
    recorder = Recorder()
    kl.iterate(parent, iteration=3, rounds=2, seed=0, verbose=0, out=tmp_path / "study",
               callbacks=[recorder])
    assert recorder.batches == list(range(3, 12)) * 2
    assert (recorder.begins, recorder.ends) == (2, 2)  # once per round
    # Evaluations at 7, 11 and 12 in each round.
    assert [round(logs["density"], 2) for _, logs in recorder.epochs][2::3] == [0.8, 0.64]


def test_ctrl_c_marks_the_run_interrupted_and_the_same_call_resumes_it(
        trained, tmp_path, monkeypatch, capsys):
    batch = data_lib.TrainBatches.batch
    out = tmp_path / "r"
    monkeypatch.setattr(data_lib.TrainBatches, "batch", _ctrl_c_at(7))
    with pytest.raises(KeyboardInterrupt):
        kl.train("lenet300", seed=0, out=out, **RECIPE)
    run = kl.Run.open(out)
    assert run.status == record.INTERRUPTED
    assert run.config["error"].startswith("KeyboardInterrupt")
    assert not (out / layout.LOCK).exists()
    monkeypatch.setattr(data_lib.TrainBatches, "batch", batch)
    recorder = Recorder()
    capsys.readouterr()
    resumed = kl.train("lenet300", seed=0, out=out, callbacks=[recorder],
                       **dict(RECIPE, verbose=2))
    assert f"resuming {out} from step 5" in capsys.readouterr().out
    assert resumed.status == record.FINISHED
    # The resumed callbacks continue from the saved state's step.
    assert recorder.batches == list(range(5, 12))
    assert [logs["step"] for _, logs in recorder.epochs] == [8, 12]
    # The result is the uninterrupted run's (same seed), each evaluation once.
    assert _untimed(resumed) == _untimed(trained[0])


def test_ctrl_c_on_the_command_line_is_one_line_and_exit_130(tmp_path, monkeypatch):
    monkeypatch.setattr(data_lib.TrainBatches, "batch", _ctrl_c_at(1))
    result = CliRunner().invoke(main, ["train", "--arch", "lenet300", "--dataset", "digits",
                                       "--steps", "4", "--seed", "0", "-q",
                                       "--out", str(tmp_path / "r")])
    assert result.exit_code == 130
    # output: stdout and stderr together on every click (8.0 has no .stderr by default).
    lines = result.output.splitlines()
    assert [line for line in lines if line.strip() and not line.startswith("step ")] == [
        "Interrupted; re-run the same command to resume."]
    assert kl.Run.open(tmp_path / "r").status == record.INTERRUPTED


def test_a_callback_stopping_training_ends_the_run_early(tmp_path):
    class StopAfterSecondEvaluation(Recorder):
        def on_epoch_end(self, epoch, logs=None):
            super().on_epoch_end(epoch, logs)
            if epoch == 1:
                self.model.stop_training = True

    stopper = StopAfterSecondEvaluation()
    run = kl.train("lenet300", seed=0, out=tmp_path / "r", callbacks=[stopper], **RECIPE)
    run = kl.Run.open(run.path)
    assert run.status == record.FINISHED and run.config["stopped_early"] is True
    assert run.end_step == 8
    assert [m["step"] for m in run.metrics] == [4, 8]
    assert list(run.checkpoints) == [0, 3, "final"]
    model = run.load_model("final")
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 8
    assert (stopper.begins, stopper.ends) == (1, 1)
    assert stopper.batches == list(range(8))
    assert not (run.path / layout.RESUME_DIR).exists()


@pytest.mark.parametrize("terminal", [False, True])
def test_a_progress_bar_only_in_a_terminal(tmp_path, monkeypatch, capsys, terminal):
    monkeypatch.setattr(sys.stdout, "isatty", lambda: terminal)
    kl.train("lenet300", seed=0, out=tmp_path / "r",
             **dict(RECIPE, steps=4, eval_every=2, checkpoint_iters=[0, 4], verbose=1))
    said = capsys.readouterr().out
    evaluations = [line for line in said.splitlines() if line.startswith("step ")]
    assert [line.split(":")[0] for line in evaluations] == ["step 2", "step 4"]
    if terminal:  # Keras's bar redraws itself with carriage returns
        assert "\r" in said and "4/4" in said  # the bar reached the run's 4 steps
    else:  # a log file: exactly one line per evaluation, nothing redrawn
        assert "\r" not in said and "\x1b" not in said
        assert said.splitlines() == evaluations


class _ConvertsCtrlC(keras.callbacks.Callback):
    """Gets a Ctrl-C at batch 2 and raises another error instead, as
    TensorFlow does when the interrupt lands while it traces a function."""

    def on_train_batch_end(self, batch, logs=None):
        if batch == 2:
            try:
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(5)
            except KeyboardInterrupt:
                raise TypeError("Failed to convert elements of (None, 64) to Tensor") from None


def test_a_ctrl_c_turned_into_another_error_still_marks_the_run_interrupted(tmp_path):
    with pytest.raises(TypeError):
        kl.train("lenet300", dataset="digits", steps=8, batch_size=32, eval_every=8,
                 seed=0, verbose=0, out=tmp_path / "run", callbacks=[_ConvertsCtrlC()])
    run = kl.Run.open(tmp_path / "run")
    assert run.status == record.INTERRUPTED
    assert run.config["error"].startswith("TypeError: Failed to convert")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_model_compiled_as_runs_are_saves_and_loads_again(tmp_path):
    # Its top-5 metric is a function of ours: unregistered, load_model fails.
    x = np.linspace(-1, 1, 24, dtype="float32").reshape(6, 4)
    y = np.arange(6) % 6
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(6)])
    kl.compile_model(model, kl.recipe.make(steps=10, batch_size=2))
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.optimizer, kl.MomentumSGD)
    assert (loaded.evaluate(x, y, verbose=0, return_dict=True)
            == model.evaluate(x, y, verbose=0, return_dict=True))
