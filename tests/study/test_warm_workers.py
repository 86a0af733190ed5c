"""Warm workers of the local engine (`lottery worker`): a run in a worker is
the run a fresh process makes, bit for bit; a worker killed mid-run loses
nothing (the study resumes and completes); a worker's memory stays flat
over 20 runs."""

import os
import signal
import subprocess
import sys
import time

import numpy as np

import keras_lottery as kl
from keras_lottery.study.engines import local
from keras_lottery.runs import layout
from keras_lottery.runs.run import Run
from keras_lottery.spec import record
from snapshots import tensors
from tiny_study import assert_same_study
from tiny_study import command
from tiny_study import env
from tiny_study import make_folder
from tiny_study import run_study
from tiny_study import untimed
from tiny_study import wait_until_gone

TRAIN = ["train", "--arch", "lenet300", "--dataset", "digits", "--steps", "12",
         "--batch-size", "32", "--eval-every", "6", "--seed", "5", "-q"]


def test_a_study_in_fresh_processes_equals_the_one_in_warm_workers(
        tmp_path_factory, reference_study):
    reference, output = reference_study  # warm workers, 2 at once
    folder = make_folder(tmp_path_factory, "fresh")
    done = run_study(folder, "run", "study.toml", "--workers", "1", "--process-per-run")
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert_same_study(folder, reference)


def _workers_of(driver_pid):
    """Pids of the `lottery worker` processes the driver started."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                parent = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{name}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        if parent == driver_pid and b"worker" in argv:
            found.append(int(name))
    return found


def test_kill_9_of_a_worker_mid_run_then_the_study_resumes(tmp_path_factory, reference_study):
    reference, _ = reference_study
    folder = make_folder(tmp_path_factory, "worker-killed")
    driver = subprocess.Popen(command("run", "study.toml", "--workers", "1"), cwd=folder,
                              env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, start_new_session=True)
    root = folder / "runs/tiny"
    deadline, killed = time.time() + 500, []
    while driver.poll() is None and time.time() < deadline and not killed:
        # Kill while a derived run trains in the warm worker (its second run
        # or later).
        if any(Run.open(p).status == record.RUNNING for p in layout.find_runs(root)
               if "train-s0" not in str(p)):
            killed = _workers_of(driver.pid)
            for pid in killed:
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.02)
    output, _ = driver.communicate(timeout=500)
    assert killed, output
    # The failure is counted; the driver goes on with what does not depend on it.
    assert driver.returncode == 1 and "exit status -9" in output, output
    assert "runs did not finish" in output
    again = run_study(folder, "run", "study.toml")  # resumes the killed run
    assert again.returncode == 0, again.stdout + again.stderr[-3000:]
    assert_same_study(folder, reference)
    wait_until_gone(driver.pid)


def _rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _settled_rss_kib(pid, timeout=30):
    """The RSS once the worker has cleared the run it replied for (it
    clears after its reply): two equal readings 0.3 s apart."""
    deadline = time.monotonic() + timeout
    before = _rss_kib(pid)
    while time.monotonic() < deadline:
        time.sleep(0.3)
        now = _rss_kib(pid)
        if now == before:
            return now
        before = now
    return before


class _Node:
    def __init__(self, argv):
        self.argv = argv


def _train_in(engine, out, log):
    """Trains a run in `engine`'s worker; the worker's RSS (KiB) after it."""
    job = engine.start(_Node(TRAIN + ["--out", str(out)]), "cpu", log)
    job.handle.wait(300)
    rss = _settled_rss_kib(job.handle.pid)  # before the engine may replace the worker
    assert engine.wait([job], 1.0) == [job]
    assert job.returncode == 0, log.read_text()[-3000:]
    return rss


def test_20_runs_in_one_warm_worker_bit_for_bit_with_flat_memory(tmp_path):
    """One worker trains 20 runs and its memory stays flat (it grew about
    2.5 MB a run while TensorFlow kept every traced gradient,
    `keras_lottery.training.session`); the next run, past
    `runs_per_worker`, starts a new worker."""
    engine = local.LocalEngine(environ=env(), runs_per_worker=20)
    rss = []
    try:
        for i in range(21):
            rss.append(_train_in(engine, tmp_path / f"run-{i}", tmp_path / "worker.log"))
    finally:
        engine.close()
    assert engine.workers_started == 2
    # Flat: once warmed up (its first runs fill caches and pools), the
    # worker's last 12 runs move its RSS by less than 6 MB all told.
    ones = rss[8:20]
    assert max(ones) - min(ones) < 6 * 1024, rss
    fresh = tmp_path / "fresh"
    done = subprocess.run([sys.executable, "-m", "keras_lottery.cli", *TRAIN, "--out",
                           str(fresh)], env=env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    expected = kl.Run.open(fresh)
    for i in (0, 1, 19, 20):  # a worker's first, a second and last; a new one's
        run = kl.Run.open(tmp_path / f"run-{i}")
        assert run.status == record.FINISHED
        assert untimed(run) == untimed(expected)
        assert list(run.checkpoints) == list(expected.checkpoints)
        for key, path in run.checkpoints.items():
            mine, theirs = tensors(path), tensors(expected.checkpoints[key])
            assert mine.keys() == theirs.keys()
            for name in mine:
                np.testing.assert_array_equal(mine[name], theirs[name], err_msg=f"{i} {name}")
