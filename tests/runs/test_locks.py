import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from keras_lottery.runs import locks
from keras_lottery.runs import layout
from keras_lottery.spec import record
from keras_lottery.runs.run import Run
from keras_lottery.errors import LotteryError
from snapshots import snapshot


def test_lock_is_exclusive_and_says_who_holds_it(tmp_path):
    path = tmp_path / "run.lock"
    with locks.Lock(path, what="runs/x"):
        info = json.loads(path.read_text())
        assert info["pid"] == os.getpid() and info["host"]
        with pytest.raises(LotteryError) as error:
            locks.Lock(path, what="runs/x").acquire()
        message = str(error.value)
        assert message.startswith(f"runs/x is in use by process {os.getpid()} on ")
        assert "\n" not in message
        assert locks.holder(path)["alive"]
    assert not path.exists()
    assert locks.holder(path) is None


def test_a_dead_holders_lock_is_reclaimed(tmp_path):
    path = tmp_path / "run.lock"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    path.write_text(json.dumps({"host": socket.gethostname(), "pid": int(dead),
                                "started": time.time()}))
    assert not locks.holder(path)["alive"]
    with locks.Lock(path):
        assert json.loads(path.read_text())["pid"] == os.getpid()


def test_the_lock_of_an_exited_process_not_yet_reaped_is_dead(tmp_path):
    path = tmp_path / "run.lock"
    child = subprocess.Popen([sys.executable, "-c", "pass"])  # not waited for: a zombie
    deadline = time.time() + 30
    while time.time() < deadline and not os.path.exists(f"/proc/{child.pid}/stat"):
        time.sleep(0.05)
    while time.time() < deadline:
        with open(f"/proc/{child.pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                break
        time.sleep(0.05)
    path.write_text(json.dumps({"host": socket.gethostname(), "pid": child.pid,
                                "started": time.time()}))
    try:
        assert not locks.holder(path)["alive"]
    finally:
        child.wait()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        path.write_text(json.dumps({"host": socket.gethostname(), "pid": live.pid,
                                    "started": time.time()}))
        assert locks.holder(path)["alive"]
    finally:
        live.kill()
        live.wait()


def test_another_hosts_lock_is_alive_until_its_heartbeat_is_stale(tmp_path):
    path = tmp_path / "run.lock"
    path.write_text(json.dumps({"host": "elsewhere", "pid": 1, "started": 0}))
    assert locks.holder(path)["alive"]
    with pytest.raises(LotteryError, match="in use by process 1 on elsewhere"):
        locks.Lock(path).acquire()
    old = time.time() - locks.STALE_AFTER_SECONDS - 1
    os.utime(path, (old, old))
    assert not locks.holder(path)["alive"]
    with locks.Lock(path):
        assert json.loads(path.read_text())["host"] != "elsewhere"


def test_the_heartbeat_renews_the_files_time(tmp_path):
    path = tmp_path / "run.lock"
    with locks.Lock(path, heartbeat=0.05):
        old = time.time() - 100
        os.utime(path, (old, old))
        time.sleep(0.3)
        assert time.time() - os.stat(path).st_mtime < 5


# --- Two real processes in one run directory (issue 17) -------------------

# `lottery ARGS`, stopping at its first write of metrics.csv (it holds the
# run's lock by then) until GATE exists ("wait"), or dying there with
# SIGKILL ("die"). Only keras_lottery.files is imported before the command
# runs, so TensorFlow starts up inside the command, as for a user.
CHILD = textwrap.dedent('''
    import os, pathlib, signal, sys, time
    moment, gate, args = sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3:]
    from keras_lottery import files
    write = files.write_atomic

    def patched(path, text):
        if str(path).endswith("metrics.csv") and not gate.exists():
            if moment == "die":
                os.kill(os.getpid(), signal.SIGKILL)
            (gate.parent / "waiting").write_text(str(os.getpid()))
            deadline = time.time() + 300
            while not gate.exists() and time.time() < deadline:
                time.sleep(0.05)
        return write(path, text)

    files.write_atomic = patched
    from keras_lottery.cli import main
    main(args)
''')
# Evaluations at 4, 8 and 12; no -q: a log file gets one line per evaluation.
TRAIN = ["train", "--arch", "lenet300", "--dataset", "digits", "--steps", "12",
         "--batch-size", "32", "--eval-every", "4", "--checkpoint-iters", "0,3,12",
         "--seed", "0"]
# TensorFlow's start-up lines, which the command filters out of stderr.
CHATTER = ("WARNING: All log messages before absl::InitializeLog()", "cudart_stub.cc",
           "cpu_feature_guard.cc", "port.cc", "rebuild TensorFlow")


def _env():
    # The children import this keras_lottery; TensorFlow's log level is the
    # command's default, as for a user.
    import keras_lottery

    package_root = os.path.dirname(os.path.dirname(keras_lottery.__file__))
    path = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, PYTHONPATH=path)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    return env


def _lottery():
    exe = shutil.which("lottery")
    return [exe] if exe else [sys.executable, "-m", "keras_lottery.cli"]


def _wait_for(path, process, timeout=300):
    deadline = time.time() + timeout
    while not path.exists():
        assert process.poll() is None, f"the first process ended early ({process.returncode})"
        assert time.time() < deadline, f"{path} never appeared"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def contended(tmp_path_factory):
    """`lottery train ... --out run` started while another process trains
    that same run; the first's stdout and stderr go to files."""
    folder = tmp_path_factory.mktemp("contended")
    (folder / "child.py").write_text(CHILD)
    out, gate = folder / "run", folder / "go"
    args = [*TRAIN, "--out", str(out)]
    with open(folder / "first.out", "w") as stdout, open(folder / "first.err", "w") as stderr:
        first = subprocess.Popen([sys.executable, "child.py", "wait", str(gate), *args],
                                 cwd=folder, env=_env(), stdout=stdout, stderr=stderr)
        try:
            _wait_for(folder / "waiting", first)  # it trains, holding the lock
            before = snapshot(out)
            second = subprocess.run([*_lottery(), *args], cwd=folder, env=_env(),
                                    capture_output=True, text=True, timeout=300)
            untouched = snapshot(out) == before
        finally:
            gate.write_text("")
            first.wait(timeout=300)
    return dict(folder=folder, out=out, first=first, second=second, untouched=untouched)


def test_a_second_process_in_a_run_says_who_holds_it_and_touches_nothing(contended):
    second, first = contended["second"], contended["first"]
    assert second.returncode == 1, second.stderr[-2000:]
    assert "Traceback" not in second.stderr
    (line,) = [line for line in second.stderr.splitlines() if line.strip()]
    assert line.startswith(f"Error: {contended['out']} is in use by process {first.pid} "
                           f"on {socket.gethostname()} (since ")
    assert contended["untouched"]


def test_the_first_process_finishes_the_run_alone(contended):
    assert contended["first"].returncode == 0, (contended["folder"] / "first.err").read_text()
    assert "step " not in contended["second"].stdout  # the second trained nothing
    out = contended["out"]
    run = Run.open(out)
    assert run.status == record.FINISHED
    assert [m["step"] for m in run.metrics] == [4, 8, 12]  # each evaluation once
    assert not (out / layout.LOCK).exists()


def test_a_log_file_gets_one_line_per_evaluation_and_no_start_up_chatter(contended):
    stdout = (contended["folder"] / "first.out").read_text()
    assert "\r" not in stdout and "\x1b" not in stdout
    lines = stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == ["step 4", "step 8", "step 12", "finished"]
    stderr = (contended["folder"] / "first.err").read_text()
    assert not [line for line in stderr.splitlines() if any(c in line for c in CHATTER)], stderr


def test_a_lock_left_by_a_killed_process_does_not_block_the_re_run(tmp_path):
    (tmp_path / "child.py").write_text(CHILD)
    out = tmp_path / "run"
    args = [*TRAIN, "-q", "--out", str(out)]
    killed = subprocess.run([sys.executable, "child.py", "die", str(tmp_path / "never"), *args],
                            cwd=tmp_path, env=_env(), capture_output=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL
    left = locks.holder(out / layout.LOCK)
    assert left is not None and not left["alive"]  # its holder is gone
    from click.testing import CliRunner

    from keras_lottery.cli import main

    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert Run.open(out).status == record.FINISHED
    assert [m["step"] for m in Run.open(out).metrics] == [4, 8, 12]
    assert not (out / layout.LOCK).exists()
