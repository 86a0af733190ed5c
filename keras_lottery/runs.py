"""Run directories: the one module that names every file a run writes.

    <run>/run.json       what was asked (mode, arch, recipe, seed, parent,
                         iteration, density), package versions and status
    <run>/model.json     the model's Keras config, when the run was given a
                         model object rather than an architecture name
    <run>/checkpoints/   checkpoint_iter_<N>.weights.h5 and
                         checkpoint_iter_final.weights.h5: full training
                         state (weights, masks, BN statistics, momentum,
                         iteration)
    <run>/metrics.csv    one row per evaluation
    <run>/logs/          TensorBoard event files

Every file is written to a temporary name in the same folder and renamed, so
a reader never sees half a file.
"""

import csv
import io
import json
import os
import pathlib
import platform

from keras_lottery.errors import LotteryError

RUN_JSON = "run.json"
MODEL_JSON = "model.json"
CHECKPOINT_DIR = "checkpoints"
METRICS_CSV = "metrics.csv"
LOGS_DIR = "logs"
DEFAULT_ROOT = "runs"

METRIC_COLUMNS = ("step", "top1", "top5", "loss", "lr", "density", "elapsed")
MODES = ("train", "rewind", "rewind_lr", "finetune")
RUNNING, FINISHED, FAILED = "running", "finished", "failed"


def checkpoint_name(iteration):
    """File name of the checkpoint at `iteration` (an int or "final")."""
    return f"checkpoint_iter_{iteration}.weights.h5"


def checkpoint_path(run_dir, iteration):
    """Path of a run's checkpoint at `iteration` (an int or "final")."""
    return pathlib.Path(run_dir) / CHECKPOINT_DIR / checkpoint_name(iteration)


def temporary_path(path):
    """A sibling temporary name that keeps the `.weights.h5`/`.json` ending
    Keras and readers expect."""
    path = pathlib.Path(path)
    return path.with_name(f".tmp-{os.getpid()}-{path.name}")


def write_atomic(path, text):
    """Writes text to `path` through a temporary file and a rename."""
    path = pathlib.Path(path)
    tmp = temporary_path(path)
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def versions():
    """Versions of the packages a run depends on, for run.json."""
    import keras
    import numpy

    from keras_lottery import __version__

    found = {
        "keras_lottery": __version__,
        "keras": keras.__version__,
        "keras_backend": keras.backend.backend(),
        "numpy": numpy.__version__,
        "python": platform.python_version(),
    }
    try:
        import tensorflow as tf

        found["tensorflow"] = tf.__version__
    except ImportError:
        pass
    return found


def default_out(arch, mode, seed, iteration=None, density=None, root=DEFAULT_ROOT):
    """A readable, collision-free run directory name.

    `runs/<arch>/train-s<seed>` and
    `runs/<arch>/<mode>-k<iteration>-d<percent>-s<seed>`.
    """
    if mode == "train":
        name = f"train-s{seed}"
    else:
        percent = f"{density * 100:.4g}"
        name = f"{mode.replace('_', '-')}-k{iteration}-d{percent}-s{seed}"
    return pathlib.Path(root) / arch / name


def find_runs(root=DEFAULT_ROOT):
    """Every run directory (a folder with a run.json) under `root`, sorted."""
    return sorted(p.parent for p in pathlib.Path(root).glob(f"**/{RUN_JSON}"))


def find_base_run(root=DEFAULT_ROOT):
    """The single finished `train` run under `root`, for a default --from."""
    root = pathlib.Path(root)
    found = []
    for path in find_runs(root):
        try:
            config = json.loads((path / RUN_JSON).read_text())
        except (OSError, ValueError):
            continue
        if config.get("mode") == "train" and config.get("status") == FINISHED:
            found.append(path)
    if len(found) == 1:
        return found[0]
    listing = ", ".join(map(str, found)) if found else "none"
    raise LotteryError(
        f"need exactly one finished train run under {root}/ to use as the "
        f"parent, found {len(found)} ({listing}); name one with --from RUN_DIR"
    )


class Run:
    """A run directory, read back: config, metrics and checkpoints.

    Example:

    >>> run = keras_lottery.Run.open("runs/resnet20/train-s0")
    >>> run.config["mode"], run.status
    ('train', 'finished')
    >>> run.metrics[-1]["top1"]
    0.9171
    >>> run.checkpoints[4701]
    PosixPath('runs/resnet20/train-s0/checkpoints/checkpoint_iter_4701.weights.h5')
    """

    def __init__(self, path, config):
        self.path = pathlib.Path(path)
        self.config = config

    @classmethod
    def open(cls, path):
        """Opens an existing run directory."""
        path = pathlib.Path(path)
        run_json = path / RUN_JSON
        if not path.is_dir():
            raise LotteryError(f"run directory {path} does not exist")
        if not run_json.is_file():
            raise LotteryError(f"{path} is not a run directory (no {RUN_JSON})")
        try:
            config = json.loads(run_json.read_text())
        except ValueError as e:
            raise LotteryError(f"{run_json} is not valid JSON ({e})") from None
        if not isinstance(config, dict) or config.get("mode") not in MODES:
            raise LotteryError(
                f"{run_json} does not describe a run (mode must be one of "
                f"{', '.join(MODES)})"
            )
        return cls(path, config)

    @classmethod
    def create(cls, path, config):
        """Creates a run directory with its run.json (status "running")."""
        path = pathlib.Path(path)
        (path / CHECKPOINT_DIR).mkdir(parents=True, exist_ok=True)
        (path / LOGS_DIR).mkdir(exist_ok=True)
        run = cls(path, dict(config, status=RUNNING))
        run.save_config()
        return run

    def save_config(self):
        write_atomic(self.path / RUN_JSON, json.dumps(self.config, indent=2) + "\n")

    def set_status(self, status, **extra):
        self.config.update(extra, status=status)
        self.save_config()

    @property
    def status(self):
        return self.config.get("status")

    @property
    def mode(self):
        return self.config["mode"]

    @property
    def metrics(self):
        """The rows of metrics.csv as dicts of numbers."""
        path = self.path / METRICS_CSV
        if not path.exists():
            return []
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        return [
            {k: int(v) if k == "step" else float(v) for k, v in row.items()}
            for row in rows
        ]

    def append_metrics(self, row):
        """Adds one evaluation row (rewrites the small file atomically)."""
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, METRIC_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for old in self.metrics + [row]:
            writer.writerow({k: old[k] for k in METRIC_COLUMNS})
        write_atomic(self.path / METRICS_CSV, buffer.getvalue())

    @property
    def checkpoints(self):
        """{iteration (int) or "final": path} of the checkpoints on disk."""
        found = {}
        prefix, suffix = "checkpoint_iter_", ".weights.h5"
        for path in (self.path / CHECKPOINT_DIR).glob(f"{prefix}*{suffix}"):
            key = path.name[len(prefix) : -len(suffix)]
            found[int(key) if key.isdigit() else key] = path
        ints = sorted(k for k in found if isinstance(k, int))
        ordered = {k: found[k] for k in ints}
        if "final" in found:
            ordered["final"] = found["final"]
        return ordered

    def model_config_path(self):
        return self.path / MODEL_JSON

    def __repr__(self):
        return f"Run({str(self.path)!r}, mode={self.mode!r}, status={self.status!r})"
