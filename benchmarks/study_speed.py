"""A study through the local engine against the same runs back to back in
one Python process, side by side.

Two grids: the demo's (`lottery demo --quick`: LeNet-300-100 on the bundled
digits, a base and 4 methods at 2 densities, 9 runs) and a 20-run
LeNet-300-100 grid on MNIST-shaped data (synthetic 28x28x1 images, 10,000
for training: 2 seeds, each a base and rewind, rewind-lr and finetune at 3
densities). Each grid runs three ways, each in a folder of its own:

- in-process: one `python` process that imports keras_lottery and trains
  the study's runs (its plan's requests) in plan order, timed from outside
  (start-up included);
- study (warm workers): `lottery study run FILE --workers 1`;
- study (a process per run): the same with `--process-per-run`.

Then `lottery demo --quick` alone. Every figure is wall-clock seconds
measured from outside the processes.

    python benchmarks/study_speed.py [--out DIR] [--only demo|mnist]
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np

DEMO = """
[study]
root = "runs"
[base]
arch = "lenet300"
dataset = "digits"
steps = 300
batch_size = 64
seeds = [0]
[oneshot]
methods = ["rewind", "rewind-lr", "finetune", "random"]
iters = [{k}]
densities = [20, 3]
[resources]
devices = "cpu"
"""
MNIST = """
[study]
root = "runs"
[base]
arch = "lenet300"
dataset = "npz:{npz}"
steps = 200
batch_size = 60
seeds = [0, 1]
[oneshot]
methods = ["rewind", "rewind-lr", "finetune"]
iters = [13]
densities = [50, 20, 5]
[resources]
devices = "cpu"
"""
IN_PROCESS = """
import sys
from keras_lottery import procedures
from keras_lottery.spec.requests import Request
from keras_lottery.study import planner, state, studyfile
plan = planner.expand(studyfile.load(sys.argv[1]))
state.write(plan)  # the study's recipe file, which its requests name
for node in plan.nodes:
    procedures.execute(Request.from_dict(node.request), verbose=0)
print(len(plan.nodes))
"""


def _env():
    root = pathlib.Path(__file__).resolve().parents[1]
    path = os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=path)


def _timed(argv, cwd):
    began = time.monotonic()
    done = subprocess.run(argv, cwd=cwd, env=_env(), capture_output=True, text=True)
    seconds = time.monotonic() - began
    if done.returncode:
        sys.exit(f"{' '.join(argv[:4])} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return seconds


def _folder(base, name, text):
    folder = base / name
    folder.mkdir(parents=True)
    (folder / "study.toml").write_text(text)
    return folder


def _mnist_npz(path):
    rng = np.random.default_rng(0)
    centers = rng.uniform(0, 255, size=(10, 28, 28, 1)).astype(np.float32)

    def draw(n):
        y = rng.integers(0, 10, size=n).astype(np.int32)
        x = np.clip(centers[y] + 60 * rng.standard_normal((n, 28, 28, 1)), 0, 255)
        return (x / 255).astype(np.float32), y  # in [0, 1]

    (x_train, y_train), (x_test, y_test) = draw(10000), draw(2000)
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)


def grid(base, name, text):
    """{way: seconds} and the number of runs of one grid, three ways."""
    lottery = [sys.executable, "-m", "keras_lottery.cli"]
    seconds = {}
    folder = _folder(base, f"{name}-in-process", text)
    seconds["in-process"] = _timed([sys.executable, "-c", IN_PROCESS, "study.toml"], folder)
    folder = _folder(base, f"{name}-warm", text)
    seconds["study, warm workers"] = _timed(
        lottery + ["study", "run", "study.toml", "--workers", "1"], folder)
    runs = len(list((folder / "runs").rglob("run.json")))
    folder = _folder(base, f"{name}-per-run", text)
    seconds["study, a process per run"] = _timed(
        lottery + ["study", "run", "study.toml", "--workers", "1", "--process-per-run"],
        folder)
    return seconds, runs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="folder for the runs [default: a temporary one]")
    parser.add_argument("--only", choices=["demo", "mnist"])
    args = parser.parse_args()
    base = pathlib.Path(args.out or tempfile.mkdtemp(prefix="study-speed-"))
    from keras_lottery.procedures import demo

    grids = {"demo": DEMO.format(k=demo.QUICK.iteration)}
    if args.only != "demo":
        npz = base / "mnist-shaped.npz"
        base.mkdir(parents=True, exist_ok=True)
        _mnist_npz(npz)
        grids["mnist"] = MNIST.format(npz=npz)
    rows = []
    for name, text in grids.items():
        if args.only and name != args.only:
            continue
        seconds, runs = grid(base, name, text)
        inside = seconds["in-process"]
        for way, s in seconds.items():
            rows.append({"grid": name, "runs": runs, "way": way, "seconds": round(s, 1),
                         "x in-process": round(s / inside, 2),
                         "overhead s/run": round((s - inside) / runs, 2)})
    if args.only != "mnist":
        quick = _timed([sys.executable, "-m", "keras_lottery.cli", "demo", "--quick",
                        "--out", str(base / "demo-quick")], base)
        rows.append({"grid": "lottery demo --quick", "runs": 9, "way": "its own command",
                     "seconds": round(quick, 1), "x in-process": None,
                     "overhead s/run": None})
    print("| grid | runs | way | seconds | × in-process | overhead s/run |")
    print("|---|---:|---|---:|---:|---:|")
    for r in rows:
        print("| " + " | ".join("-" if v is None else str(v) for v in r.values()) + " |")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
