"""The 5-run study of LeNet-300-100 on the bundled digits that the study
and engine tests share, how to run its commands, and the comparison of a
study with the uninterrupted reference one (the `reference_study` fixture
of conftest.py)."""

import os
import re
import subprocess
import sys
import time

import numpy as np
from click.testing import CliRunner

import keras_lottery as kl
from keras_lottery import files
from keras_lottery.runs import layout
from keras_lottery.spec import record
from keras_lottery.cli import main
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


def env():
    package_root = os.path.dirname(os.path.dirname(kl.__file__))
    path = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=path)


def command(*args):
    return [sys.executable, "-m", "keras_lottery.cli", "study", *args]


def make_folder(tmp_path_factory, name, text=STUDY):
    folder = tmp_path_factory.mktemp(name)
    (folder / "study.toml").write_text(text)
    return folder


def run_study(folder, *args, timeout=600):
    return subprocess.run(command(*args), cwd=folder, env=env(), capture_output=True,
                          text=True, timeout=timeout)


def in_process(folder, monkeypatch, *args):
    """A study command that starts no run, in this process (no start-up)."""
    monkeypatch.chdir(folder)
    return CliRunner().invoke(main, ["study", *args])


def wait_until_gone(group, timeout=60):
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


def finished_lines(output):
    return re.findall(r"^\[\d+/\d+\] finished (\S+) in", output, flags=re.M)


def run_reference(tmp_path_factory):
    """The uninterrupted study with 2 workers: (folder, output)."""
    folder = make_folder(tmp_path_factory, "reference")
    done = run_study(folder, "run", "study.toml", "--workers", "2")
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    return folder, done.stdout


def untimed(run):
    return [{k: v for k, v in row.items() if k != "elapsed"} for row in run.metrics]


def assert_same_study(folder, reference):
    """Every run finished, with the checkpoints, metrics (timing aside) and
    tensors of the reference study; nothing left behind."""
    root, ref_root = folder / "runs/tiny", reference / "runs/tiny"
    assert [str(p.relative_to(root)) for p in layout.find_runs(root)] == sorted(RUNS)
    for name in RUNS:
        run, ref = kl.Run.open(root / name), kl.Run.open(ref_root / name)
        assert run.status == record.FINISHED
        assert list(run.checkpoints) == list(ref.checkpoints), name
        assert untimed(run) == untimed(ref), name
        for key, path in run.checkpoints.items():
            mine, theirs = tensors(path), tensors(ref.checkpoints[key])
            assert mine.keys() == theirs.keys()
            for tensor in mine:
                np.testing.assert_array_equal(mine[tensor], theirs[tensor],
                                              err_msg=f"{name} {key} {tensor}")
    left = [str(p.relative_to(root)) for p in root.rglob("*")
            if p.name.startswith(files.TEMPORARY_PREFIX) or p.name in (
                "run.lock", ".claims", layout.RESUME_DIR)]
    assert left == []


