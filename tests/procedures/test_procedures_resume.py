"""Resuming after `kill -9`, failures while writing, NaN losses, and
determinism (issue: reliability), on resnet8 and synthetic data.

Interrupted runs are real child processes killed with SIGKILL at chosen
moments (inside a training step's data fetch, inside an evaluation, half-way
through writing a checkpoint or metrics.csv) or from outside at an arbitrary
moment; the same command is then re-run and the result compared with an
uninterrupted run: same checkpoint files, same metrics rows (timing aside),
equal tensors.
"""

import errno
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import keras
import numpy as np
import pytest
from click.testing import CliRunner

import keras_lottery as kl
from keras_lottery import files
from keras_lottery.runs import layout
from keras_lottery.spec import record
from keras_lottery.cli import main
from snapshots import snapshot
from snapshots import tensors

RECIPE = ["--arch", "resnet8", "--dataset", "synthetic", "--steps", "24",
          "--batch-size", "32", "--eval-every", "8", "--save-every", "5", "-q"]
SMALL = dict(steps=24, batch_size=32, eval_every=8, save_every=5)

# Runs `lottery ARGS`, killing itself with SIGKILL at the chosen moment.
CHILD = textwrap.dedent('''
    import os, signal, sys
    moment, n, args = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    count = [0]

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    def nth():
        count[0] += 1
        return count[0] == n

    if moment == "step":  # while fetching the data of training step n
        from keras_lottery import data
        batch = data.TrainBatches.batch
        def patched(self, step):
            if step == n:
                die()
            return batch(self, step)
        data.TrainBatches.batch = patched
    elif moment == "evaluation":  # half-way through the n-th evaluation
        import keras
        evaluate = keras.Model.evaluate
        class Half(keras.callbacks.Callback):
            def on_test_batch_end(self, batch, logs=None):
                die()
        def patched(self, *a, callbacks=None, **k):
            if nth():
                callbacks = list(callbacks or []) + [Half()]
            return evaluate(self, *a, callbacks=callbacks, **k)
        keras.Model.evaluate = patched
    elif moment == "state-write":  # half-way through the n-th state file
        import keras
        save = keras.Model.save_weights
        def patched(self, path, *a, **k):
            if nth():
                with open(path, "wb") as f:
                    f.write(b"\\x89HDF\\r\\n\\x1a\\n" + b"\\0" * 64)
                die()
            return save(self, path, *a, **k)
        keras.Model.save_weights = patched
    elif moment == "metrics-write":  # half-way through the n-th metrics.csv
        from keras_lottery import files
        write = files.write_atomic
        def patched(path, text):
            if str(path).endswith("metrics.csv") and nth():
                with open(files.temporary_path(path), "w") as f:
                    f.write(text[: len(text) // 2])
                die()
            return write(path, text)
        files.write_atomic = patched
    from keras_lottery.cli import main
    main(args)
''')


def _env():
    # The child imports the same keras_lottery as this test (installed or not).
    package_root = os.path.dirname(os.path.dirname(kl.__file__))
    path = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=path)


def _child(tmp_path, moment, n, args):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = _env()
    return subprocess.run(
        [sys.executable, str(script), moment, str(n), *args],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )


def _invoke(*args):
    return CliRunner().invoke(main, list(args))


def _untimed(run):
    return [{k: v for k, v in row.items() if k != "elapsed"} for row in run.metrics]


def assert_same_run(path, reference):
    """Same checkpoint files, metrics rows (timing aside) and tensors as an
    uninterrupted run; nothing left over from the interruption."""
    run, ref = kl.Run.open(path), kl.Run.open(reference)
    assert run.status == record.FINISHED
    assert list(run.checkpoints) == list(ref.checkpoints)
    assert _untimed(run) == _untimed(ref)
    steps = [row["step"] for row in run.metrics]
    assert steps == sorted(set(steps))  # no duplicates
    for key, file in run.checkpoints.items():
        mine, theirs = tensors(file), tensors(ref.checkpoints[key])
        assert mine.keys() == theirs.keys()
        for name in mine:
            np.testing.assert_array_equal(mine[name], theirs[name], err_msg=f"{key} {name}")
    leftovers = [p.name for p in path.rglob("*") if p.name.startswith(files.TEMPORARY_PREFIX)]
    assert leftovers == []
    assert not (path / layout.RESUME_DIR).exists()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("reference")
    result = _invoke("train", *RECIPE, "--seed", "7", "--out", str(root / "train"))
    assert result.exit_code == 0, result.output
    result = _invoke("rewind", "--from", str(root / "train"), "--iter", "7",
                     "--density", "50", "--seed", "8", "--save-every", "5", "-q",
                     "--out", str(root / "rewind"))
    assert result.exit_code == 0, result.output
    return root


def test_kill_9_at_every_kind_of_moment_then_same_command_finishes_identically(
    tmp_path, reference, monkeypatch,
):
    # One run, killed five times in a row; each re-run of the same command
    # resumes from the latest saved state and is killed again later on.
    args = ["train", *RECIPE, "--seed", "7", "--out", "run"]
    kills = [
        ("step", 6),           # fetching step 6's data; resumes from 5
        ("evaluation", 1),     # inside the evaluation at step 8; from 7
        ("state-write", 1),    # writing checkpoint_iter_9; from 7
        ("state-write", 2),    # writing the resume state of step 10; from 9
        ("metrics-write", 1),  # writing the row of step 16; from 15
    ]
    resumed_from = []
    for moment, n in kills:
        killed = _child(tmp_path, moment, n, args)
        assert killed.returncode == -signal.SIGKILL, (moment, killed.stderr[-2000:])
        found = re.search(r"resuming run from step (\d+)", killed.stdout)
        resumed_from.append(int(found[1]) if found else None)
        interrupted = kl.Run.open(tmp_path / "run")
        assert interrupted.status == record.RUNNING
        assert "final" not in interrupted.checkpoints
    assert resumed_from == [None, 5, 7, 7, 9]
    assert [r["step"] for r in kl.Run.open(tmp_path / "run").metrics] == [8]

    monkeypatch.chdir(tmp_path)
    result = _invoke(*args)
    assert result.exit_code == 0, result.output
    assert "resuming run from step 15" in result.output
    assert_same_run(tmp_path / "run", reference / "train")


def test_kill_9_from_outside_at_an_arbitrary_moment(tmp_path, reference, monkeypatch):
    args = ["train", *RECIPE, "--seed", "7", "--out", "run"]
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    child = subprocess.Popen(
        [sys.executable, str(script), "none", "0", *args], cwd=tmp_path,
        env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    target = tmp_path / "run" / layout.CHECKPOINT_DIR / layout.checkpoint_name(9)
    deadline = time.time() + 240
    while not target.exists() and child.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    child.send_signal(signal.SIGKILL)
    assert child.wait() == -signal.SIGKILL  # it was still running
    assert kl.Run.open(tmp_path / "run").status == record.RUNNING

    monkeypatch.chdir(tmp_path)
    result = _invoke(*args)
    assert result.exit_code == 0, result.output
    assert_same_run(tmp_path / "run", reference / "train")


def test_derived_run_resumes_after_kill_9(tmp_path, reference, monkeypatch):
    args = ["rewind", "--from", str(reference / "train"), "--iter", "7",
            "--density", "50", "--seed", "8", "--save-every", "5", "-q",
            "--out", "run"]
    killed = _child(tmp_path, "step", 17, args)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    monkeypatch.chdir(tmp_path)
    result = _invoke(*args)
    assert result.exit_code == 0, result.output
    resumed_at = int(re.search(r"resuming run from step (\d+)", result.output)[1])
    assert 7 < resumed_at < 24  # a state the rewind itself saved
    assert_same_run(tmp_path / "run", reference / "rewind")


def test_drawn_seed_is_recorded_resumed_and_reusable(tmp_path, reference, monkeypatch):
    # No --seed and no --out: the same command finds its own unfinished run.
    args = ["train", *RECIPE]
    killed = _child(tmp_path, "step", 10, args)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    (made,) = layout.find_runs(tmp_path / "runs")
    seed = kl.Run.open(made).config["seed"]
    assert made.name == f"train-s{seed}"
    monkeypatch.chdir(tmp_path)
    result = _invoke(*args)
    assert result.exit_code == 0, result.output
    assert layout.find_runs(tmp_path / "runs") == [made]
    # Finished: the same command is a no-op that says so.
    before = snapshot(tmp_path / "runs")
    result = _invoke(*args)
    assert result.exit_code == 0 and "nothing to do" in result.output
    assert snapshot(tmp_path / "runs") == before
    # The recorded seed reproduces the run exactly.
    result = _invoke("train", *RECIPE, "--seed", str(seed), "--out", "again")
    assert result.exit_code == 0, result.output
    assert_same_run(tmp_path / "again", made)


def test_seed_gives_identical_masks_checkpoints_and_metrics(tmp_path, reference, monkeypatch):
    # A second pair of runs with the reference's seeds, in another folder.
    monkeypatch.chdir(tmp_path)
    result = _invoke("train", *RECIPE, "--seed", "7", "--out", "a")
    assert result.exit_code == 0, result.output
    assert_same_run(tmp_path / "a", reference / "train")
    result = _invoke("rewind", "--from", "a", "--iter", "7", "--density", "50",
                     "--seed", "8", "--save-every", "5", "-q", "--out", "r")
    assert result.exit_code == 0, result.output
    assert_same_run(tmp_path / "r", reference / "rewind")
    masks = [n for n in tensors(kl.Run.open(tmp_path / "r").checkpoints["final"])
             if n.endswith("vars/2")]
    assert masks  # the comparison covered the mask variables


def test_failed_write_keeps_previous_checkpoint_and_metrics(tmp_path, monkeypatch):
    out = tmp_path / "run"
    save = keras.Model.save_weights
    calls = []

    def disk_full_at_third(self, path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 3:  # checkpoint_iter_4: half a file, then ENOSPC
            with open(path, "wb") as f:
                f.write(b"\x89HDF\r\n\x1a\n")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return save(self, path, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "save_weights", disk_full_at_third)
    with pytest.raises(OSError):
        kl.train("resnet8", dataset="synthetic", seed=7, verbose=0, out=out, **SMALL)
    monkeypatch.undo()
    run = kl.Run.open(out)
    assert run.status == record.FAILED and "No space left" in run.config["error"]
    assert list(run.checkpoints) == [0, 2]
    for file in run.checkpoints.values():
        tensors(file)  # readable
    assert not [p for p in out.rglob(f"{files.TEMPORARY_PREFIX}*")]

    # metrics.csv: the write of a new row fails at fsync; the old rows stay.
    kl.train("resnet8", dataset="synthetic", seed=7, verbose=0, out=out, **SMALL)
    rows = (out / layout.METRICS_CSV).read_bytes()
    real_fsync = os.fsync

    def failing_fsync(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(files.os, "fsync", failing_fsync)
    with pytest.raises(OSError):
        kl.Run.open(out).append_metrics(dict(kl.Run.open(out).metrics[-1], step=99))
    monkeypatch.setattr(files.os, "fsync", real_fsync)
    assert (out / layout.METRICS_CSV).read_bytes() == rows
    assert not [p for p in out.rglob(f"{files.TEMPORARY_PREFIX}*")]


def test_nan_loss_stops_marks_failed_and_keeps_good_checkpoints(tmp_path, monkeypatch):
    from keras_lottery import data as data_lib

    batch = data_lib.TrainBatches.batch

    def poisoned(self, step):
        x, y = batch(self, step)
        if step == 10:
            x = np.full_like(x, np.nan)
        return x, y

    monkeypatch.setattr(data_lib.TrainBatches, "batch", poisoned)
    out = tmp_path / "run"
    with pytest.raises(kl.LotteryError, match=r"became (nan|non-finite) .*at step 1[12]"):
        kl.train("resnet8", dataset="synthetic", seed=7, verbose=0, out=out, **SMALL)
    run = kl.Run.open(out)
    assert run.status == record.FAILED and "nan" in run.config["error"]
    assert list(run.checkpoints) == [0, 2, 4, 7, 9]
    assert "final" not in run.checkpoints
    for file in run.checkpoints.values():
        for name, value in tensors(file).items():
            if value.dtype.kind == "f":
                assert np.isfinite(value).all(), name
    # The CLI says the same in one line.
    monkeypatch.chdir(tmp_path)
    result = _invoke("train", *RECIPE, "--seed", "7", "--out", "cli")
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and "loss became nan" in errors[0]
    assert isinstance(result.exception, SystemExit)
