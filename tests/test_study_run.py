"""`lottery study run` with real processes (issue 12), on a 5-run study of
LeNet-300-100 on the bundled digits: an uninterrupted study with 2
workers; the driver and all its children killed with SIGKILL, then the same
command; two drivers started at once; a run that fails (NaN loss).

Every study is compared with the uninterrupted one: the same runs, the same
checkpoint tensors and metrics (timing aside), nothing left behind."""

import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner

import keras_lottery as kl
from keras_lottery import files
from keras_lottery import runs
from keras_lottery.cli import main
from snapshots import snapshot
from snapshots import tensors

STUDY = """
[study]
root = "runs/tiny"
[base]
arch = "lenet300"
dataset = "digits"
steps = 40
batch_size = 32
seeds = [0]
val_split = 100
[oneshot]
methods = ["rewind", "finetune"]
iters = [7]
densities = [50]
[iterative]
methods = ["rewind-lr"]
iters = [7]
rounds = 2
[resources]
devices = "cpu"
"""
RUNS = ["lenet300/train-s0", "lenet300/rewind-k7-d50-s0", "lenet300/finetune-k7-d50-s0",
        "lenet300/iterate-rewind-lr-k7-r80-s0/round-1",
        "lenet300/iterate-rewind-lr-k7-r80-s0/round-2"]


def _env():
    package_root = os.path.dirname(os.path.dirname(kl.__file__))
    path = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=path)


def _command(*args):
    return [sys.executable, "-m", "keras_lottery.cli", "study", *args]


def _folder(tmp_path_factory, name, text=STUDY):
    folder = tmp_path_factory.mktemp(name)
    (folder / "study.toml").write_text(text)
    return folder


def _study(folder, *args, timeout=600):
    return subprocess.run(_command(*args), cwd=folder, env=_env(), capture_output=True,
                          text=True, timeout=timeout)


def _in_process(folder, monkeypatch, *args):
    """A study command that starts no run, in this process (no start-up)."""
    monkeypatch.chdir(folder)
    return CliRunner().invoke(main, ["study", *args])


def _wait_until_gone(group, timeout=60):
    """Until every process of the killed group is reaped: a killed run's
    lock names a pid that counts as alive while it is a zombie."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    raise AssertionError(f"processes of group {group} still exist")


def _finished_lines(output):
    return re.findall(r"^\[\d+/\d+\] finished (\S+) in", output, flags=re.M)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    folder = _folder(tmp_path_factory, "reference")
    done = _study(folder, "run", "study.toml", "--workers", "2")
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    return folder, done.stdout


def _untimed(run):
    return [{k: v for k, v in row.items() if k != "elapsed"} for row in run.metrics]


def assert_same_study(folder, reference):
    """Every run finished, with the checkpoints, metrics (timing aside) and
    tensors of the reference study; nothing left behind."""
    root, ref_root = folder / "runs/tiny", reference / "runs/tiny"
    assert [str(p.relative_to(root)) for p in runs.find_runs(root)] == sorted(RUNS)
    for name in RUNS:
        run, ref = kl.Run.open(root / name), kl.Run.open(ref_root / name)
        assert run.status == runs.FINISHED
        assert list(run.checkpoints) == list(ref.checkpoints), name
        assert _untimed(run) == _untimed(ref), name
        for key, path in run.checkpoints.items():
            mine, theirs = tensors(path), tensors(ref.checkpoints[key])
            assert mine.keys() == theirs.keys()
            for tensor in mine:
                np.testing.assert_array_equal(mine[tensor], theirs[tensor],
                                              err_msg=f"{name} {key} {tensor}")
    left = [str(p.relative_to(root)) for p in root.rglob("*")
            if p.name.startswith(files.TEMPORARY_PREFIX) or p.name in (
                "run.lock", ".claims", runs.RESUME_DIR)]
    assert left == []


def test_a_study_runs_every_run_as_its_single_command_with_2_workers(reference, monkeypatch):
    folder, output = reference
    assert sorted(_finished_lines(output)) == sorted(RUNS)
    assert "devices cpu, 2 at once" in output
    assert output.rstrip().endswith("done: 5 of 5 runs finished")
    root = folder / "runs/tiny"
    rewind = kl.Run.open(root / "lenet300/rewind-k7-d50-s0").spec
    assert (rewind.mode, rewind.iteration, rewind.target_density, rewind.seed) == (
        "rewind", 7, 0.5, 0)
    assert rewind.parent == str((root / "lenet300/train-s0").resolve())
    base = kl.Run.open(root / "lenet300/train-s0").spec
    assert (base.recipe.steps, base.recipe.batch_size, base.val_split) == (40, 32, 100)
    round2 = kl.Run.open(root / RUNS[-1]).spec
    assert (round2.mode, round2.round, round2.target_density) == ("rewind_lr", 2, 0.64)
    status = _in_process(folder, monkeypatch, "status", "study.toml")
    assert "  finished        5" in status.output, status.output
    assert "device-hours left: 0 (nothing left to train)" in status.output
    again = _in_process(folder, monkeypatch, "run", "study.toml")  # starts nothing
    assert again.exit_code == 0 and _finished_lines(again.output) == []
    logs = [(root / "study-logs" / f"{name}.log").read_text() for name in RUNS]
    assert [log.count("$ lottery ") for log in logs] == [1] * 5


def test_kill_9_of_the_driver_and_its_children_then_the_same_command(
        tmp_path_factory, reference, monkeypatch):
    folder = _folder(tmp_path_factory, "killed")
    driver = subprocess.Popen(_command("run", "study.toml", "--workers", "2"), cwd=folder,
                              env=_env(), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    root = folder / "runs/tiny"
    deadline = time.time() + 500
    while driver.poll() is None and time.time() < deadline:
        # Kill while a derived run is training (its run.json says running).
        if any(runs.Run.open(p).status == runs.RUNNING for p in runs.find_runs(root)
               if "train-s0" not in str(p)):
            break
        time.sleep(0.02)
    os.killpg(driver.pid, signal.SIGKILL)
    assert driver.wait() == -signal.SIGKILL  # it was still running
    _wait_until_gone(driver.pid)
    finished = {p: snapshot(p) for p in runs.find_runs(root)
                if kl.Run.open(p).status == runs.FINISHED}
    assert 1 <= len(finished) < 5
    status = _in_process(folder, monkeypatch, "status", "study.toml")
    assert re.search(r"resumable +[1-9]", status.output), status.output

    done = _study(folder, "run", "study.toml", "--workers", "2")
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert_same_study(folder, reference[0])
    for path, files_before in finished.items():  # not trained again
        assert snapshot(path) == files_before
    assert sorted(_finished_lines(done.stdout)) == sorted(
        set(RUNS) - {str(p.relative_to(root)) for p in finished})


def test_two_drivers_at_once_train_each_run_once(tmp_path_factory, reference):
    folder = _folder(tmp_path_factory, "two")
    drivers = [subprocess.Popen(_command("run", "study.toml"), cwd=folder, env=_env(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(2)]
    outputs = [d.communicate(timeout=600) for d in drivers]
    for driver, (out, err) in zip(drivers, outputs):
        assert driver.returncode == 0, out + err[-3000:]
    first, second = (set(_finished_lines(out)) for out, _ in outputs)
    assert first & second == set() and first | second == set(RUNS)
    assert first and second  # both worked
    assert_same_study(folder, reference[0])
    logs = folder / "runs/tiny/study-logs"
    assert [(logs / f"{n}.log").read_text().count("$ lottery ") for n in RUNS] == [1] * 5


def test_a_failed_run_blocks_its_dependents_and_is_not_retried(tmp_path_factory, monkeypatch):
    text = STUDY.replace("batch_size = 32", "batch_size = 32\nlr = 1e30")
    text = text[:text.index("[iterative]")]  # base and two one-shot runs
    folder = _folder(tmp_path_factory, "nan", text)
    done = _study(folder, "run", "study.toml")
    assert done.returncode == 1
    assert re.search(r"failed lenet300/train-s0: LotteryError: the training loss became "
                     r"nan at step \d+", done.stdout), done.stdout
    assert "done: 0 of 3 runs finished, 1 failed, 2 blocked" in done.stdout
    assert done.stderr.splitlines()[-1].startswith("Error: 3 runs did not finish")
    status = _in_process(folder, monkeypatch, "status", "study.toml")
    assert "  failed          1" in status.output and "  blocked         2" in status.output
    again = _in_process(folder, monkeypatch, "run", "study.toml")
    assert again.exit_code == 1 and "1 failed, 2 blocked" in again.output
    log = folder / "runs/tiny/study-logs/lenet300/train-s0.log"
    assert log.read_text().count("$ lottery ") == 1  # not retried
