"""A real-size check: LeNet-300-100 with the `openlth-lenet` recipe on data
of MNIST's shapes and sizes (60,000 + 10,000 28×28 images written in the
official IDX format), through the `lottery` command as a user runs it.

Reports the time per epoch (training only: from the run's metrics, whose
`elapsed` column counts from the first step) and the peak memory of the
`lottery` process. The images are random (no download here), so accuracy
means nothing; shapes, sizes, file format and pipeline are MNIST's.

    python benchmarks/real_size_lenet.py --epochs 1 --json lenet.json
"""

import argparse
import gzip
import json
import os
import pathlib
import resource
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np

TRAIN, TEST, SIZE = 60000, 10000, 28


def write_idx(folder, seed=0):
    """The four MNIST files (gzipped, as distributed) of random images."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (TRAIN, SIZE, SIZE), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, TRAIN, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (TEST, SIZE, SIZE), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, TEST, dtype=np.uint8),
    }
    for name, array in arrays.items():
        header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
        with gzip.open(folder / f"{name}.gz", "wb") as f:
            f.write(header + array.tobytes())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--json", type=pathlib.Path)
    args = parser.parse_args()
    work = pathlib.Path(tempfile.mkdtemp(prefix="lenet-real-size-"))
    write_idx(work / "mnist")
    out = work / "run"
    command = [sys.executable, "-m", "keras_lottery.cli", "train", "--arch", "lenet300",
               "--dataset", "mnist", "--data-dir", str(work / "mnist"),
               "--recipe", "openlth-lenet", "--epochs", str(args.epochs),
               "--seed", "0", "--out", str(out), "-q"]
    began = time.time()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.time() - began
    if done.returncode:
        sys.exit(done.stderr[-3000:])
    run = json.loads((out / "run.json").read_text())
    rows = (out / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    last = dict(zip(header, rows[-1].split(",")))
    steps = run["end_step"] - run["start_step"]
    steps_per_epoch = TRAIN / run["recipe"]["batch_size"]
    train_seconds = float(last["elapsed"])
    result = {
        "steps": steps, "batch_size": run["recipe"]["batch_size"],
        "epochs": steps / steps_per_epoch,
        "seconds_per_epoch": train_seconds / (steps / steps_per_epoch),
        "wall_seconds_with_startup": wall,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        "cpus": os.cpu_count(), "prunable_weights": 266200,
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
