"""Where a run's time goes: every run records its wall time by
phase in run.json (`timing`), summed over its attempts; `lottery results
--timing` shows it; evaluations trace their function once per run."""

import json
import os
import subprocess
import sys
import time

import keras
import pytest
from click.testing import CliRunner

import keras_lottery as kl
from keras_lottery.cli import main
from keras_lottery.spec.record import TIMING_PHASES
from keras_lottery.training import evaluation
from keras_lottery.training import timing

SMALL = dict(dataset="digits", steps=24, batch_size=32, verbose=0)


class _Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_a_stopwatch_charges_each_moment_to_one_phase():
    clock = _Clock()
    watch = timing.Stopwatch("data", startup=2.0, clock=clock)
    clock.now = 1.0
    watch.switch("build")
    clock.now = 1.5
    with watch.phase("checkpoint"):
        clock.now = 2.5
        with watch.phase("compile"):
            clock.now = 3.0
    clock.now = 3.25  # back in build
    found = watch.timing()
    assert found == {"startup": 2.0, "data": 1.0, "build": 0.75, "compile": 0.5,
                     "train": 0.0, "evaluate": 0.0, "checkpoint": 1.0,
                     "wall": 5.25, "attempts": 1}


def test_start_up_counts_from_the_mark_once():
    timing.set_origin(time.time() - 3.0)
    assert timing.Stopwatch().seconds["startup"] == pytest.approx(3.0, abs=0.5)
    assert timing.Stopwatch().seconds["startup"] == 0.0  # the next run's: none
    started = timing.process_started()
    assert 0 <= time.time() - started < 24 * 3600


def _env():
    package_root = os.path.dirname(os.path.dirname(kl.__file__))
    path = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=path)


def test_a_run_records_every_phase_summing_to_its_wall_time(tmp_path):
    out = tmp_path / "train"
    began = time.time()
    done = subprocess.run(
        [sys.executable, "-m", "keras_lottery.cli", "train", "--arch", "lenet300",
         "--dataset", "digits", "--steps", "40", "--batch-size", "32", "--seed", "0",
         "--out", str(out), "-q"], env=_env(), capture_output=True, text=True, timeout=300)
    outside = time.time() - began
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads((out / "run.json").read_text())["timing"]
    assert set(found) == set(TIMING_PHASES) | {"wall", "attempts"}
    assert found["attempts"] == 1
    assert all(found[p] >= 0 for p in TIMING_PHASES)
    # The process's start-up (Python, TensorFlow) and every phase of a run.
    assert found["startup"] > 0.3 and found["compile"] > 0 and found["train"] > 0
    assert found["evaluate"] > 0 and found["checkpoint"] > 0 and found["data"] > 0
    assert sum(found[p] for p in TIMING_PHASES) == pytest.approx(found["wall"], rel=0.05)
    # Measured from the process's start to the run's end: within the
    # process's whole life, seen from outside.
    assert found["wall"] <= outside + 0.1
    assert found["wall"] >= 0.5 * outside


class _Interrupt(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        if batch == 10:
            raise KeyboardInterrupt


def test_an_interrupted_then_resumed_run_sums_its_attempts(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        kl.train("lenet300", seed=1, out=out, callbacks=[_Interrupt()], **SMALL)
    first = kl.Run.open(out)
    assert first.status == "interrupted"
    before = first.config["timing"]
    assert before["attempts"] == 1 and before["startup"] == 0  # not from the CLI
    run = kl.train("lenet300", seed=1, out=out, **SMALL)
    after = run.config["timing"]
    assert run.status == "finished" and after["attempts"] == 2
    assert after["wall"] > before["wall"]
    assert sum(after[p] for p in TIMING_PHASES) == pytest.approx(after["wall"], abs=0.01)
    assert run.record.timing == after

    table = CliRunner().invoke(main, ["results", "--timing", str(out)])
    assert table.exit_code == 0, table.output
    header, _, row, total = table.output.splitlines()
    assert header.split() == ["run", "status", *TIMING_PHASES, "wall", "attempts"]
    assert row.split()[1] == "finished" and row.split()[-1] == "2"
    assert total.startswith("all 1 runs") and total.split()[-2] == f"{after['wall']:.2f}"
    both = CliRunner().invoke(main, ["results", "--timing", "--curve", str(out)])
    assert both.exit_code == 2 and "different tables" in both.output


def test_evaluations_trace_the_test_function_once(tmp_path):
    run = kl.train("lenet300", seed=2, out=tmp_path / "run", val_split=100, **SMALL)
    model = run.load_model()
    traces = []
    step = model.test_step
    model.test_step = lambda data: traces.append(1) or step(data)
    data = kl.data.load("digits")
    sets = evaluation.evaluation_sets(data, 100, 32)
    rows = [evaluation.evaluate(model, sets, 24, 0.0, lambda s: 0.1) for _ in range(3)]
    # Test set (260 images) and validation set (100): batches of 128 and a
    # last partial one each, all through one traced function.
    assert len(traces) == 1
    assert rows[0] == rows[1] == rows[2]
    assert rows[0]["top1"] == pytest.approx(run.metrics[-1]["top1"])
    assert evaluation.eval_batch_size(32) == 128
    assert evaluation.eval_batch_size(512) == evaluation.EVAL_BATCH_CAP == 1024
    assert evaluation.eval_batch_size(2048) == 2048
