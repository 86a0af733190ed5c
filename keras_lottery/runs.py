"""Run directories: the one module that names every file a run writes.

    <run>/run.json       what the run is (its `RunSpec`: mode, arch, recipe,
                         seed, parent, iteration, target density, ...), the
                         package versions, its bounds and status
    <run>/model.json     the model's Keras config, when the run was given a
                         model of the user's own rather than an arch name
    <run>/checkpoints/   checkpoint_iter_<N>.weights.h5 and
                         checkpoint_iter_final.weights.h5: full training
                         state (weights, masks, BN statistics, momentum,
                         iteration)
    <run>/metrics.csv    one row per evaluation
    <run>/logs/          TensorBoard event files
    <study>/iterate.json what an `iterate` call asked (method, parent,
                         iteration, rate, seed); its rounds are
                         <study>/round-<i>/, each a run directory
    <run>/run.lock       held by the process training the run (see
                         `keras_lottery.locks`), absent otherwise
    <run>/resume/        state_iter_<N>.weights.h5: the latest full state
                         saved every `save_every` steps while the run is
                         unfinished, so a killed run resumes; removed when
                         the run finishes

Every file is written atomically (`keras_lottery.files`).
"""

import csv
import io
import json
import pathlib
import platform

from keras_lottery import files
from keras_lottery import methods
from keras_lottery.errors import LotteryError
from keras_lottery.spec import RunSpec

RUN_JSON = "run.json"
MODEL_JSON = "model.json"
CHECKPOINT_DIR = "checkpoints"
METRICS_CSV = "metrics.csv"
LOGS_DIR = "logs"
RESUME_DIR = "resume"
LOCK = "run.lock"
STUDY_JSON = "iterate.json"
DEFAULT_ROOT = "runs"

METRIC_COLUMNS = (
    "step", "top1", "top5", "loss", "lr", "density", "val_top1", "elapsed",
)
# metrics.csv as written before validation splits existed.
OLD_METRIC_COLUMNS = tuple(c for c in METRIC_COLUMNS if c != "val_top1")
RUNNING, FINISHED, FAILED = "running", "finished", "failed"
INTERRUPTED = "interrupted"  # stopped by Ctrl-C; resumes like a killed run
STATUSES = (RUNNING, FINISHED, FAILED, INTERRUPTED)

STATE_SUFFIX = ".weights.h5"
CHECKPOINT_PATTERN = "checkpoint_iter_{iteration}" + STATE_SUFFIX
RESUME_PATTERN = "state_iter_{iteration}" + STATE_SUFFIX


def checkpoint_name(iteration):
    """File name of the checkpoint at `iteration` (an int or "final")."""
    return CHECKPOINT_PATTERN.format(iteration=iteration)


def checkpoint_path(run_dir, iteration):
    """Path of a run's checkpoint at `iteration` (an int or "final")."""
    return pathlib.Path(run_dir) / CHECKPOINT_DIR / checkpoint_name(iteration)


def resume_name(step):
    """File name of the resume state after `step` updates."""
    return RESUME_PATTERN.format(iteration=step)


def _states(directory, pattern):
    """{key: path} of the state files named by `pattern` in `directory`."""
    prefix, suffix = pattern.split("{iteration}")
    return {
        path.name[len(prefix): -len(suffix)]: path
        for path in pathlib.Path(directory).glob(f"{prefix}*{suffix}")
    }


def _parse_metrics(text, path):
    def damaged(what):
        raise LotteryError(
            f"{path} is damaged ({what}); restore it, or delete the run to "
            "train it again"
        )

    if not text:
        damaged("empty, not even a header")
    if not text.endswith("\n"):
        damaged("cut off in its last row")
    reader, lines = csv.reader(io.StringIO(text)), []
    try:
        lines.extend(reader)
    except csv.Error:  # a NUL byte before Python 3.11: a line nothing matches
        lines.append(["\0"])
    header = tuple(lines[0])
    # Files written before a column existed (val_top1) lack it: read as None.
    if header not in (METRIC_COLUMNS, OLD_METRIC_COLUMNS):
        damaged(f"its header is not {','.join(METRIC_COLUMNS)}")
    rows, step = [], -1
    for number, cells in enumerate(lines[1:], start=2):
        if len(cells) != len(header):
            damaged(f"line {number} has {len(cells)} fields, not {len(header)}")
        try:
            row = dict.fromkeys(METRIC_COLUMNS)
            row.update({k: float(v) if v != "" else None for k, v in zip(header, cells)})
            row["step"] = int(cells[0])
        except ValueError:
            damaged(f"line {number} holds something that is not a number")
        if row["step"] <= step or row["top1"] is None:
            damaged(f"line {number} is out of order or has no top1")
        step = row["step"]
        rows.append(row)
    return rows


def write_json(path, value):
    """Writes a JSON file atomically, as every run file is written."""
    files.write_atomic(path, json.dumps(value, indent=2) + "\n")


def versions():
    """Versions of the packages a run depends on, for run.json."""
    import keras
    import numpy

    from keras_lottery.version import __version__

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


def default_out(spec, root=DEFAULT_ROOT):
    """A readable, collision-free run directory for `spec` (seed drawn).

    `runs/<arch>/train-s<seed>`,
    `runs/<arch>/<mode>-k<iteration>-d<percent>-s<seed>`, and
    `runs/<arch>/branch-k<iteration>-s<seed>` for a method that prunes
    nothing.
    """
    if not spec.method.derived:
        name = f"train-s{spec.seed}"
    elif not spec.method.prunes:
        name = f"{spec.method.command}-k{spec.iteration}-s{spec.seed}"
    else:
        percent = f"{spec.target_density * 100:.4g}"
        k = "" if spec.iteration is None else f"-k{spec.iteration}"
        name = f"{spec.method.command}{k}-d{percent}-s{spec.seed}"
    return pathlib.Path(root) / spec.arch / name


def find_runs(root=DEFAULT_ROOT):
    """Every run directory (a folder with a run.json) under `root`, sorted."""
    return sorted(p.parent for p in pathlib.Path(root).glob(f"**/{RUN_JSON}"))


def _field(name, doc):
    """A read-only attribute of a `Run` for the run.json field `name`."""
    return property(lambda run: run.config.get(name), doc=doc)


class Run:
    """A run directory, read back: config, metrics and checkpoints.

    Example:

    >>> run = keras_lottery.Run.open("runs/resnet20/train-s0")
    >>> run.spec.mode, run.status
    ('train', 'finished')
    >>> run.metrics[-1]["top1"]
    0.9171
    >>> run.checkpoints[4701]
    PosixPath('runs/resnet20/train-s0/checkpoints/checkpoint_iter_4701.weights.h5')

    Attributes:
        path: the run directory.
        config: run.json as a dict (the spec's fields, the run's bounds,
            `density`, status and versions).
    """

    def __init__(self, path, config):
        self.path = pathlib.Path(path)
        self.config = config
        self._spec = None

    @classmethod
    def open(cls, path):
        """Opens an existing run directory (a run.json, or its folder)."""
        path = pathlib.Path(path)
        if path.name == RUN_JSON and path.is_file():
            path = path.parent
        run_json = path / RUN_JSON
        if not path.is_dir():
            raise LotteryError(f"run directory {path} does not exist")
        if not run_json.is_file():
            inside = find_runs(path)
            if inside:  # a folder of runs (a study, a root): say which
                listing = ", ".join(str(p) for p in inside[:4])
                more = f" and {len(inside) - 4} more" if len(inside) > 4 else ""
                raise LotteryError(
                    f"{path} is a folder of {len(inside)} runs, not a run; name "
                    f"one of them: {listing}{more}"
                )
            raise LotteryError(f"{path} is not a run directory (no {RUN_JSON})")
        try:
            config = json.loads(run_json.read_text())
        except ValueError as e:
            raise LotteryError(f"{run_json} is not valid JSON ({e})") from None
        if not isinstance(config, dict) or config.get("mode") not in methods.METHODS:
            raise LotteryError(
                f"{run_json} does not describe a run (mode must be one of "
                f"{', '.join(methods.METHODS)})"
            )
        return cls(path, config)

    @classmethod
    def create(cls, path, spec, **state):
        """Creates a run directory: run.json (status "running") first.

        Args:
            path: the run directory (created).
            spec: the run's `RunSpec`, with its seed.
            **state: the run's other run.json fields (bounds, density, ...).
        """
        path = pathlib.Path(path)
        path.mkdir(parents=True, exist_ok=True)
        # run.json first: a directory killed right after this is resumable,
        # one killed before it is still empty.
        run = cls(path, dict(spec.to_config(path), **state, status=RUNNING))
        run.save_config()
        (path / CHECKPOINT_DIR).mkdir(exist_ok=True)
        (path / LOGS_DIR).mkdir(exist_ok=True)
        return run

    @property
    def spec(self):
        """The run's `RunSpec` (LotteryError if run.json is invalid)."""
        if self._spec is None:
            try:
                self._spec = RunSpec.from_config(self.config, self.path)
            except LotteryError as e:
                raise LotteryError(
                    f"{self.path / RUN_JSON}: {e}; restore the file or delete "
                    "the run directory"
                ) from None
        return self._spec

    def save_config(self):
        write_json(self.path / RUN_JSON, self.config)

    def set_status(self, status, **extra):
        self.config.update(extra, status=status)
        self.save_config()

    status = _field("status", "running, finished, failed or interrupted")
    mode = _field("mode", "the method's name")
    start_step = _field("start_step", "the run's first optimizer iteration")
    end_step = _field("end_step", "the run's last optimizer iteration")
    density = _field("density", "the realized fraction of prunable weights kept")

    @property
    def metrics(self):
        """The rows of metrics.csv as dicts of numbers.

        Raises:
            LotteryError: the file is damaged (cut mid-row, garbage, empty):
                one line naming the file and what is wrong; no partial row
                is ever read as data.
        """
        path = self.path / METRICS_CSV
        if not path.exists():
            return []
        text = path.read_text(errors="replace")
        return _parse_metrics(text, path)

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
        files.write_atomic(self.path / METRICS_CSV, buffer.getvalue())

    @property
    def checkpoints(self):
        """{iteration (int) or "final": path} of the checkpoints on disk."""
        found = _states(self.path / CHECKPOINT_DIR, CHECKPOINT_PATTERN)
        ordered = {int(k): found[k] for k in sorted(
            (k for k in found if k.isdigit()), key=int)}
        if "final" in found:
            ordered["final"] = found["final"]
        return ordered

    @property
    def resume_states(self):
        """{step: path} of the resume states on disk."""
        found = _states(self.path / RESUME_DIR, RESUME_PATTERN)
        return dict(sorted((int(k), p) for k, p in found.items() if k.isdigit()))

    def resume_path(self, step):
        """Where the resume state after `step` updates goes."""
        return self.path / RESUME_DIR / resume_name(step)

    def remove_temporary_files(self):
        """Deletes what killed writers left behind."""
        files.remove_temporary_files(
            self.path, self.path / CHECKPOINT_DIR, self.path / RESUME_DIR
        )

    def load_model(self, iteration="final"):
        """The run's masked model with its full state at `iteration` (an
        iteration it checkpointed, or "final"), compiled as runs are."""
        # The one import upwards: rebuilding needs architectures and Keras.
        from keras_lottery import restore

        return restore.load_model(self, iteration)

    def model_config_path(self):
        return self.path / MODEL_JSON

    def write_model_config(self, model_json):
        """Stores the Keras config of a model of the user's own."""
        files.write_atomic(self.model_config_path(), model_json)

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

        def is_int(value):
            return isinstance(value, int) and not isinstance(value, bool) and value >= 0

        if config.get("status") not in STATUSES:
            bad("status", f"one of {', '.join(STATUSES)}")
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
        _ = self.spec  # every field of what the run is
        return self

    def __repr__(self):
        return f"Run({str(self.path)!r}, mode={self.mode!r}, status={self.status!r})"
