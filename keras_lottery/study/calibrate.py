"""How many runs to pack onto one device: measured with real runs.

For each count K (1, 2, 4, ...), K `lottery train` processes start at once
on the same device, each training a fixed number of steps; each run's
training throughput is read from its own metrics.csv between its first
and last evaluation (so start-up, tracing and the first compile are left
out), and the K figures are added up. The suggested `runs_per_device` is
the smallest K within `margin` of the best total.
"""

import dataclasses
import json
import statistics
import subprocess
import sys
import tempfile
import time

from keras_lottery import checks
from keras_lottery.runs.run import Run
from keras_lottery.errors import LotteryError
from keras_lottery.spec.requests import TrainRequest
from keras_lottery.study import devices as devices_lib

COUNTS = (1, 2, 4)
MARGIN = 0.1


@dataclasses.dataclass(frozen=True)
class Measurement:
    """K runs sharing one device: each one's images/s, their sum, and the
    wall time of the K processes (start-up included)."""

    runs: int
    per_run: tuple
    total: float
    wall: float


def _argv(arch, dataset, steps, batch_size, seed, out, data_dir):
    request = TrainRequest(arch=arch, dataset=dataset, steps=steps, batch_size=batch_size,
                           eval_every=max(1, steps // 5), checkpoint_iters=(0,), seed=seed,
                           out=str(out), data_dir=data_dir)
    return ["run-request", json.dumps(request.to_dict())]


def _throughput(path, batch_size):
    rows = Run.open(path).metrics
    if len(rows) < 2 or rows[-1]["elapsed"] <= rows[0]["elapsed"]:
        raise LotteryError(f"{path} evaluated too rarely to time; train more steps",
                           param="steps", value=None)
    first, last = rows[0], rows[-1]
    return (last["step"] - first["step"]) * batch_size / (last["elapsed"] - first["elapsed"])


def measure_once(count, *, arch, dataset, steps, batch_size, device, data_dir=None,
                 python=None, folder):
    """The `Measurement` of `count` runs sharing `device`."""
    env = devices_lib.environment(device)
    began = time.monotonic()
    procs, outs = [], []
    for i in range(count):
        out = f"{folder}/k{count}-run{i}"
        outs.append(out)
        procs.append(subprocess.Popen(
            [python or sys.executable, "-m", "keras_lottery.cli",
             *_argv(arch, dataset, steps, batch_size, i, out, data_dir)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True, env=env))
    errors = [p.communicate()[1] for p in procs]
    wall = time.monotonic() - began
    for proc, error in zip(procs, errors):
        if proc.returncode != 0:
            last = (error.strip().splitlines() or ["no output"])[-1]
            raise LotteryError(f"a calibration run failed: {last}")
    per_run = tuple(_throughput(out, batch_size) for out in outs)
    return Measurement(count, per_run, sum(per_run), wall)


def measure(counts=COUNTS, *, arch, dataset, steps, batch_size, device=devices_lib.CPU,
            data_dir=None, python=None, echo=None):
    """`Measurement`s for each count, in a temporary folder removed after."""
    if not counts or not all(checks.is_count(c, 1) for c in counts):
        raise LotteryError("expected positive run counts", param="counts", value=counts)
    found = []
    with tempfile.TemporaryDirectory(prefix="lottery-calibrate-") as folder:
        for count in counts:
            found.append(measure_once(count, arch=arch, dataset=dataset, steps=steps,
                                      batch_size=batch_size, device=device,
                                      data_dir=data_dir, python=python, folder=folder))
            if echo:
                echo(describe(found[-1]))
    return found


def describe(m):
    return (f"{m.runs} run(s) sharing the device: {m.total:.0f} images/s in all, "
            f"{statistics.median(m.per_run):.0f} per run ({m.wall:.0f} s wall)")


def suggest(measurements, margin=MARGIN):
    """The smallest run count within `margin` of the best total images/s."""
    best = max(m.total for m in measurements)
    return min(m.runs for m in measurements if m.total >= (1 - margin) * best)
