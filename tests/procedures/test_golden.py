"""The paper's recipe computes what keras_lottery computed before recipes
had presets: the checkpoints (every tensor) and metrics of a train run and
its rewind, rewind-lr and finetune children, compared with fingerprints
recorded by the code at da2bbfd (before the redesign of issue 11, too) (tests/fixtures/README.md says how they were
made). Compared within float noise, since the last bits differ between CPUs;
and bit for bit with da2bbfd's own code run on the same machine, the
controls (lowlr-rewind, random, reinit) included. (Evaluation batches are
now larger than training batches, so da2bbfd's code evaluates at today's
size: a loss summed over other batches rounds otherwise; training is
compared bit for bit as it was.)"""

import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import sys

import h5py
import pytest

import keras_lottery as kl
from keras_lottery.training.evaluation import eval_batch_size
from golden_fingerprint import differences
from golden_fingerprint import fingerprints

GOLDEN = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "golden-renda2020.json"
ROOT = pathlib.Path(__file__).resolve().parents[2]
BEFORE = "da2bbfd"
# The golden calls, as tests/fixtures/README.md gives them, for the code at BEFORE.
BEFORE_SCRIPT = """
import sys
import keras_lottery as kl
assert kl.__file__.startswith(sys.argv[1]), kl.__file__
# Today's evaluation batch size (training batch 32).
init = kl.data.EvalBatches.__init__
kl.data.EvalBatches.__init__ = lambda self, x, y, batch_size, **kw: init(self, x, y, EVAL, **kw)
kw = dict(dataset="digits", steps=24, batch_size=32, eval_every=8, verbose=0)
base = kl.train("lenet300", seed=3, out=sys.argv[2] + "/train", **kw)
for name, f in [("rewind", kl.rewind), ("rewind_lr", kl.rewind_lr), ("finetune", kl.finetune)]:
    f(base.path, iteration=7, density=0.5, seed=4, out=sys.argv[2] + "/" + name, verbose=0)
# The controls, compared bit for bit only (no recorded fingerprints).
for name, k in CONTROLS:
    getattr(kl, name)(base.path, density=0.5, seed=4, out=sys.argv[2] + "/" + name,
                      verbose=0, **({} if k is None else {"iteration": k}))
"""
# (procedure, rewind point): reinit trains from step 0.
CONTROLS = [("lowlr_rewind", 7), ("random_prune", 7), ("reinit", None)]
BEFORE_SCRIPT = BEFORE_SCRIPT.replace("CONTROLS", repr(CONTROLS)).replace(
    "EVAL", str(eval_batch_size(32)))
SMALL = dict(dataset="digits", steps=24, batch_size=32, eval_every=8, verbose=0)


def _approx(row):
    return {k: pytest.approx(v, rel=1e-4, abs=1e-3) if isinstance(v, float) else v
            for k, v in row.items()}


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    root = tmp_path_factory.mktemp("golden")
    base = kl.train("lenet300", seed=3, out=root / "base", recipe="renda2020", **SMALL)
    runs = {"train": base}
    for name, procedure in [("rewind", kl.rewind), ("rewind_lr", kl.rewind_lr),
                            ("finetune", kl.finetune)]:
        runs[name] = procedure(base.path, iteration=7, density=0.5, seed=4,
                               out=root / name, verbose=0)
    for name, k in CONTROLS:
        runs[name] = getattr(kl, name)(base.path, density=0.5, seed=4, out=root / name,
                                       verbose=0, **({} if k is None else {"iteration": k}))
    return runs


@pytest.mark.parametrize("name", ["train", "rewind", "rewind_lr", "finetune"])
def test_renda2020_checkpoints_and_metrics_are_todays(made, name):
    golden = json.loads(GOLDEN.read_text())
    run = made[name]
    keys = sorted(k.split("/", 1)[1] for k in golden if k.startswith(f"{name}/"))
    assert sorted([str(k) for k in run.checkpoints] + ["metrics"]) == keys
    for key, path in run.checkpoints.items():
        wrong = differences(fingerprints(path), golden[f"{name}/{key}"])
        assert wrong == [], f"{name} checkpoint {key}: " + "; ".join(wrong)
    rows = [{k: v for k, v in r.items() if k != "elapsed"} for r in run.metrics]
    assert rows == [_approx(r) for r in golden[f"{name}/metrics"]]


def _digests(path):
    found = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, item: found.__setitem__(
            name, hashlib.sha256(item[()].tobytes()).hexdigest())
            if isinstance(item, h5py.Dataset) else None)
    return found


def test_bit_identical_to_the_code_before_presets_on_this_machine(made, tmp_path):
    git = shutil.which("git")
    if git is None or subprocess.run([git, "-C", str(ROOT), "cat-file", "-e",
                                      f"{BEFORE}^{{commit}}"], capture_output=True).returncode:
        pytest.skip(f"commit {BEFORE} is not in this checkout (a shallow clone?)")
    old = tmp_path / "before"
    old.mkdir()
    archive = subprocess.run([git, "-C", str(ROOT), "archive", BEFORE, "keras_lottery"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(old)], input=archive, check=True)
    env = dict(os.environ, PYTHONPATH=str(old), TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-c", BEFORE_SCRIPT, str(old), str(tmp_path / "runs")],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    for name, run in made.items():
        before = kl.Run.open(tmp_path / "runs" / name)
        assert list(before.checkpoints) == list(run.checkpoints)
        for key, path in run.checkpoints.items():
            assert _digests(path) == _digests(before.checkpoints[key]), f"{name} {key}"
        assert ([{k: v for k, v in r.items() if k != "elapsed"} for r in run.metrics]
                == [{k: v for k, v in r.items() if k != "elapsed"} for r in before.metrics])
