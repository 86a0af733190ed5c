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
    <study>/iterate.json what an `iterate` call asked (method, parent,
                         iteration, rate, seed); its rounds are
                         <study>/round-<i>/, each a run directory
    <run>/resume/        state_iter_<N>.weights.h5: the latest full state
                         saved every `save_every` steps while the run is
                         unfinished, so a killed run resumes; removed when
                         the run finishes

Every file is written to a temporary name in the same folder and renamed, so
a reader never sees half a file; a killed writer leaves only a `.tmp-*` file,
which resuming deletes.
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
RESUME_DIR = "resume"
STUDY_JSON = "iterate.json"
DEFAULT_ROOT = "runs"
TEMPORARY_PREFIX = ".tmp-"

METRIC_COLUMNS = (
    "step", "top1", "top5", "loss", "lr", "density", "val_top1", "elapsed",
)
MODES = ("train", "rewind", "rewind_lr", "finetune", "lowlr_rewind", "random", "reinit")
RUNNING, FINISHED, FAILED = "running", "finished", "failed"


STATE_SUFFIX = ".weights.h5"
CHECKPOINT_PREFIX = "checkpoint_iter_"
RESUME_PREFIX = "state_iter_"


def checkpoint_name(iteration):
    """File name of the checkpoint at `iteration` (an int or "final")."""
    return f"{CHECKPOINT_PREFIX}{iteration}{STATE_SUFFIX}"


def checkpoint_path(run_dir, iteration):
    """Path of a run's checkpoint at `iteration` (an int or "final")."""
    return pathlib.Path(run_dir) / CHECKPOINT_DIR / checkpoint_name(iteration)


def resume_name(step):
    """File name of the resume state after `step` updates."""
    return f"{RESUME_PREFIX}{step}{STATE_SUFFIX}"


def _states_by_key(directory, prefix):
    """{key: path} of the state files `<prefix><key>.weights.h5` in `directory`."""
    return {
        path.name[len(prefix) : -len(STATE_SUFFIX)]: path
        for path in directory.glob(f"{prefix}*{STATE_SUFFIX}")
    }


def temporary_path(path):
    """A sibling temporary name that keeps the `.weights.h5`/`.json` ending
    Keras and readers expect."""
    path = pathlib.Path(path)
    return path.with_name(f"{TEMPORARY_PREFIX}{os.getpid()}-{path.name}")


def write_atomic(path, text):
    """Writes text to `path` through a temporary file and a rename.

    If writing fails (a full disk, say), the temporary file is removed and
    `path` keeps its previous content.
    """
    path = pathlib.Path(path)
    tmp = temporary_path(path)
    try:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


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
        k = "" if iteration is None else f"-k{iteration}"
        name = f"{mode.replace('_', '-')}{k}-d{percent}-s{seed}"
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
        path.mkdir(parents=True, exist_ok=True)
        # run.json first: a directory killed right after this is resumable,
        # one killed before it is still empty.
        run = cls(path, dict(config, status=RUNNING))
        run.save_config()
        (path / CHECKPOINT_DIR).mkdir(exist_ok=True)
        (path / LOGS_DIR).mkdir(exist_ok=True)
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
            {k: int(v) if k == "step" else (float(v) if v not in ("", None) else None)
             for k, v in row.items()}
            for row in rows
        ]

    def append_metrics(self, row):
        """Adds one evaluation row (rewrites the small file atomically)."""
        self._write_metrics(self.metrics + [row])

    def truncate_metrics(self, step):
        """Drops rows after `step` (they are recomputed when resuming)."""
        rows = self.metrics
        kept = [row for row in rows if row["step"] <= step]
        if len(kept) != len(rows):
            self._write_metrics(kept)

    def _write_metrics(self, rows):
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, METRIC_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k) for k in METRIC_COLUMNS})
        write_atomic(self.path / METRICS_CSV, buffer.getvalue())

    @property
    def checkpoints(self):
        """{iteration (int) or "final": path} of the checkpoints on disk."""
        files = _states_by_key(self.path / CHECKPOINT_DIR, CHECKPOINT_PREFIX)
        found = {int(k) if k.isdigit() else k: p for k, p in files.items()}
        ints = sorted(k for k in found if isinstance(k, int))
        ordered = {k: found[k] for k in ints}
        if "final" in found:
            ordered["final"] = found["final"]
        return ordered

    @property
    def resume_states(self):
        """{step: path} of the resume states on disk."""
        found = _states_by_key(self.path / RESUME_DIR, RESUME_PREFIX)
        return dict(sorted((int(k), p) for k, p in found.items() if k.isdigit()))

    def remove_temporary_files(self):
        """Deletes what killed writers left behind (`.tmp-*` files)."""
        for folder in (self.path, self.path / CHECKPOINT_DIR, self.path / RESUME_DIR):
            for path in folder.glob(f"{TEMPORARY_PREFIX}*"):
                path.unlink()

    def model_config_path(self):
        return self.path / MODEL_JSON

    def check(self):
        """Validates run.json deeply; raises LotteryError naming the field.

        `open` checks only what every reader needs; procedures check a run
        before resuming it or deriving from it, so a hand-edited run.json
        gives one clear error instead of a traceback halfway through.
        """
        config = self.config
        where = self.path / RUN_JSON

        def bad(field, expected):
            raise LotteryError(
                f"{where}: {field} must be {expected}, got "
                f"{config.get(field, '<missing>')!r}; restore the file or "
                "delete the run directory"
            )

        def is_int(value, minimum=0):
            return (isinstance(value, int) and not isinstance(value, bool)
                    and value >= minimum)

        if config.get("status") not in (RUNNING, FINISHED, FAILED):
            bad("status", f"one of {RUNNING}, {FINISHED}, {FAILED}")
        for field in ("arch", "dataset"):
            if not isinstance(config.get(field), str) or not config.get(field):
                bad(field, "a non-empty string")
        if not is_int(config.get("seed")):
            bad("seed", "a non-negative integer")
        start, end = config.get("start_step"), config.get("end_step")
        if not is_int(start):
            bad("start_step", "a non-negative integer")
        if not is_int(end) or end <= start:
            bad("end_step", f"an integer above start_step ({start})")
        density = config.get("density")
        if (isinstance(density, bool) or not isinstance(density, (int, float))
                or not 0 < density <= 1):
            bad("density", "a fraction in (0, 1]")
        if not isinstance(config.get("recipe"), dict):
            bad("recipe", "an object")
        from keras_lottery import recipe as recipe_lib

        try:
            recipe = recipe_lib.Recipe.from_dict(config["recipe"])
            recipe_lib.make(
                steps=recipe.steps, batch_size=recipe.batch_size,
                checkpoint_iters=list(recipe.checkpoint_iters),
                eval_every=recipe.eval_every,
            )
            if sorted(recipe.lr_boundaries) != list(recipe.lr_boundaries) or (
                len(recipe.lr_values) != len(recipe.lr_boundaries) + 1
            ):
                raise ValueError("inconsistent LR schedule")
            [float(v) for v in recipe.lr_values]
        except (TypeError, ValueError) as e:
            raise LotteryError(
                f"{where}: recipe is not valid ({str(e).splitlines()[0]}); "
                "restore the file or delete the run directory"
            ) from None
        if config["mode"] != "train":
            if not isinstance(config.get("parent"), str):
                bad("parent", "the parent run's path")
            if config["mode"] != "reinit" and not is_int(config.get("iteration")):
                bad("iteration", "a non-negative integer")
        return self

    def __repr__(self):
        return f"Run({str(self.path)!r}, mode={self.mode!r}, status={self.status!r})"
