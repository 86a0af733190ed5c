"""A run directory, read back and written: `Run`.

`keras_lottery.runs.layout` names its files; `RunSpec` and `RunRecord`
(`keras_lottery.spec`) are what its run.json holds.
"""

import csv
import io
import json
import pathlib
import platform
import shutil

from keras_lottery import checks
from keras_lottery import files
from keras_lottery.runs import layout
from keras_lottery.spec import methods
from keras_lottery.spec import record as record_lib
from keras_lottery.spec.record import RunRecord
from keras_lottery.errors import LotteryError
from keras_lottery.spec.runspec import RunSpec

METRIC_COLUMNS = (
    "step", "top1", "top5", "loss", "lr", "density", "val_top1", "elapsed",
)
# metrics.csv as written before validation splits existed.
OLD_METRIC_COLUMNS = tuple(c for c in METRIC_COLUMNS if c != "val_top1")


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
        if path.name == layout.RUN_JSON and path.is_file():
            path = path.parent
        run_json = path / layout.RUN_JSON
        if path.is_file():
            raise LotteryError(f"{path} is a file, not a run directory; name the "
                               "folder holding a run.json")
        if not path.is_dir():
            raise LotteryError(f"run directory {path} does not exist")
        if not run_json.is_file():
            inside = layout.find_runs(path)
            if inside:  # a folder of runs (a study, a root): say which
                listing = ", ".join(str(p) for p in inside[:4])
                more = f" and {len(inside) - 4} more" if len(inside) > 4 else ""
                raise LotteryError(
                    f"{path} is a folder of {len(inside)} runs, not a run; name "
                    f"one of them: {listing}{more}"
                )
            raise LotteryError(f"{path} is not a run directory (no {layout.RUN_JSON})")
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
    def create(cls, path, spec, record):
        """Creates a run directory: run.json (status "running") first.

        Args:
            path: the run directory (created).
            spec: the run's `RunSpec`, with its seed.
            record: its `RunRecord` (bounds, density, where the data came
                from, ...).
        """
        path = pathlib.Path(path)
        path.mkdir(parents=True, exist_ok=True)
        # run.json first: a directory killed right after this is resumable,
        # one killed before it is still empty.
        record = record.replace(status=record_lib.RUNNING)
        run = cls(path, dict(spec.to_config(path), **record.to_config()))
        run.save_config()
        (path / layout.CHECKPOINT_DIR).mkdir(exist_ok=True)
        (path / layout.LOGS_DIR).mkdir(exist_ok=True)
        return run

    @property
    def spec(self):
        """The run's `RunSpec` (LotteryError if run.json is invalid)."""
        if self._spec is None:
            try:
                self._spec = RunSpec.from_config(self.config, self.path)
            except LotteryError as e:
                raise LotteryError(
                    f"{self.path / layout.RUN_JSON}: {e}; restore the file or delete "
                    "the run directory"
                ) from None
        return self._spec

    def save_config(self):
        files.write_json(self.path / layout.RUN_JSON, self.config)

    @property
    def record(self):
        """The run's `RunRecord` (LotteryError if run.json is invalid)."""
        try:
            return RunRecord.from_config(self.config)
        except LotteryError as e:
            shown = repr(e.value) if e.param in self.config else "<missing>"
            problem = f"{e.param} {e.message.replace('expected', 'must be', 1)}, got {shown}"
            raise LotteryError(f"{self.path / layout.RUN_JSON}: {problem}; restore "
                               "the file or delete the run directory") from None

    def set_status(self, status, **extra):
        self.config.update(extra, status=status)
        self.save_config()

    # What the training loop writes to (`keras_lottery.training.loop.fit`).
    @property
    def checkpoint_dir(self):
        return self.path / layout.CHECKPOINT_DIR

    @property
    def logs_dir(self):
        return self.path / layout.LOGS_DIR

    checkpoint_pattern = layout.CHECKPOINT_PATTERN

    def clear_resume_states(self):
        """Removes the resume states (the run has finished)."""
        shutil.rmtree(self.path / layout.RESUME_DIR, ignore_errors=True)

    def stopped(self, error, interrupted, step, timing=None):
        """Marks the run interrupted (resumable) or failed at `step`, adding
        the attempt's `timing`; a full disk here does not hide the first
        error."""
        interrupted = interrupted or isinstance(error, KeyboardInterrupt)
        status = record_lib.INTERRUPTED if interrupted else record_lib.FAILED
        try:
            self.set_status(status, error=f"{type(error).__name__}: {error}",
                            failed_at_step=step, **self._timing(timing))
        except Exception:
            pass

    def stopped_early(self, step):
        """A callback of the user's ended the run at `step`."""
        self.config.update(end_step=step, stopped_early=True)

    def finished(self, timing=None):
        """Marks the run finished, adding the last attempt's `timing`."""
        self.set_status(record_lib.FINISHED, error=None, **self._timing(timing))

    def _timing(self, attempt):
        if attempt is None:
            return {}
        return {"timing": record_lib.add_timing(self.config.get("timing"), attempt)}

    status = _field("status", "running, finished, failed or interrupted")
    mode = _field("mode", "the method's name")
    start_step = _field("start_step", "the run's first optimizer iteration")
    end_step = _field("end_step", "the run's last optimizer iteration")
    density = _field("density", "the realized fraction of prunable weights kept")

    @property
    def backend(self):
        """The Keras backend the run trained on (for runs written before it
        was recorded, as their `versions` say; None if they do not)."""
        return self.config.get("backend") or (self.config.get("versions") or {}).get(
            "keras_backend")

    @property
    def metrics(self):
        """The rows of metrics.csv as dicts of numbers.

        Raises:
            LotteryError: the file is damaged (cut mid-row, garbage, empty):
                one line naming the file and what is wrong; no partial row
                is ever read as data.
        """
        path = self.path / layout.METRICS_CSV
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
        files.write_atomic(self.path / layout.METRICS_CSV, buffer.getvalue())

    @property
    def checkpoints(self):
        """{iteration (int) or "final": path} of the checkpoints on disk."""
        found = layout.states(self.path / layout.CHECKPOINT_DIR, layout.CHECKPOINT_PATTERN)
        ordered = {int(k): found[k] for k in sorted(
            (k for k in found if k.isdigit()), key=int)}
        if "final" in found:
            ordered["final"] = found["final"]
        return ordered

    @property
    def resume_states(self):
        """{step: path} of the resume states on disk."""
        found = layout.states(self.path / layout.RESUME_DIR, layout.RESUME_PATTERN)
        return dict(sorted((int(k), p) for k, p in found.items() if k.isdigit()))

    def resume_path(self, step):
        """Where the resume state after `step` updates goes."""
        return self.path / layout.RESUME_DIR / layout.resume_name(step)

    def remove_temporary_files(self):
        """Deletes what killed writers left behind."""
        files.remove_temporary_files(
            self.path, self.path / layout.CHECKPOINT_DIR, self.path / layout.RESUME_DIR
        )

    def load_model(self, iteration="final"):
        """The run's masked model with its full state at `iteration` (an
        iteration it checkpointed, or "final"), compiled as runs are."""
        from keras_lottery.runs import restore  # Keras loads only here

        return restore.load_model(self, iteration)

    def evaluation_data(self, split="test", dataset=None):
        """(x, y) the run evaluated on, prepared as it prepared them
        (`keras_lottery.runs.restore.evaluation_data`): what to give a model
        from `load_model` to reproduce its metrics.

        Example:

        >>> x, y = run.evaluation_data()
        >>> run.load_model().evaluate(x, y, return_dict=True)["top1"]
        """
        from keras_lottery.runs import restore

        return restore.evaluation_data(self, split, dataset)

    def evaluate(self, iteration="final", split="test", dataset=None):
        """{top1, top5, loss} of the model at `iteration` on the run's own
        evaluation data: the row metrics.csv has for that step."""
        from keras_lottery.runs import restore

        return restore.evaluate(self, iteration, split, dataset)

    def model_config_path(self):
        return self.path / layout.MODEL_JSON

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
        if not checks.is_count(config.get("seed")):
            raise LotteryError(
                f"{self.path / layout.RUN_JSON}: seed must be a non-negative "
                f"integer, got {config.get('seed', '<missing>')!r}; restore the "
                "file or delete the run directory")
        _ = self.record  # what happened to it
        _ = self.spec  # every field of what the run is
        return self

    def __repr__(self):
        return f"Run({str(self.path)!r}, mode={self.mode!r}, status={self.status!r})"
