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
import time

import pytest

import keras_lottery as kl
from keras_lottery.runs import layout
from keras_lottery.spec import record
from keras_lottery.runs.run import Run
from click.testing import CliRunner

from keras_lottery.cli import main
from snapshots import snapshot
from tiny_study import RUNS
from tiny_study import STUDY
from tiny_study import assert_same_study
from tiny_study import command as _command
from tiny_study import env as _env
from tiny_study import finished_lines as _finished_lines
from tiny_study import in_process as _in_process
from tiny_study import make_folder as _folder
from tiny_study import run_study as _study
from tiny_study import wait_until_gone as _wait_until_gone


@pytest.fixture
def reference(reference_study):
    return reference_study

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
    # Throughput from the runs' recorded time: runs/hour and device-hours used.
    used = sum(Run.open(root / name).config["timing"]["wall"] for name in RUNS) / 3600
    found = re.search(r"^throughput: 5 runs finished, ([\d,]+) runs/hour over \S+ h of "
                      r"wall-clock; (\S+) device-hours used", status.output, flags=re.M)
    assert found, status.output
    assert int(found[1].replace(",", "")) > 0
    assert float(found[2]) == pytest.approx(used, rel=0.01)
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
        if any(Run.open(p).status == record.RUNNING for p in layout.find_runs(root)
               if "train-s0" not in str(p)):
            break
        time.sleep(0.02)
    os.killpg(driver.pid, signal.SIGKILL)
    assert driver.wait() == -signal.SIGKILL  # it was still running
    _wait_until_gone(driver.pid)
    finished = {p: snapshot(p) for p in layout.find_runs(root)
                if kl.Run.open(p).status == record.FINISHED}
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


def test_a_damaged_run_is_one_state_in_every_reader(reference, tmp_path, monkeypatch):
    import shutil

    folder = tmp_path / "damaged"
    shutil.copytree(reference[0], folder)
    root = folder / "runs/tiny"
    (root / "lenet300/rewind-k7-d50-s0/run.json").write_text("{garbage")
    metrics = root / "lenet300/finetune-k7-d50-s0/metrics.csv"
    metrics.write_text(metrics.read_text()[:-5])  # cut in its last row
    status = _in_process(folder, monkeypatch, "status", "study.toml")
    assert status.exit_code == 0, status.output
    assert "  damaged         2" in status.output and "  pending         0" in status.output
    damaged = [line for line in status.output.splitlines() if line.startswith("  damaged:")]
    assert len(damaged) == 2
    assert sorted("not valid JSON" in d for d in damaged) == [False, True]
    assert sorted("cut off in its last row" in d for d in damaged) == [False, True]
    for args in (["study", "results", "study.toml"], ["results", "study.toml"]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        warnings = [line for line in result.output.splitlines() if line.startswith("Warning")]
        assert len(warnings) == 2, result.output
        assert all("skipping" in w for w in warnings)
    again = _in_process(folder, monkeypatch, "run", "study.toml")  # starts neither
    assert _finished_lines(again.output) == []
    assert "2 damaged" in again.output
