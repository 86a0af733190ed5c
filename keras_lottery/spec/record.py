"""What happened to a run: `RunRecord`, the rest of run.json.

run.json holds a run's `RunSpec` (what the run is) and its `RunRecord`
(where its data came from, how it executed, its bounds and realized
density, its status and the package versions). Both are typed and checked
once, where run.json is read; every reader uses their fields.
"""

import dataclasses
import typing

from keras_lottery import checks
from keras_lottery.errors import LotteryError

RUNNING, FINISHED, FAILED = "running", "finished", "failed"
INTERRUPTED = "interrupted"  # stopped by Ctrl-C; resumes like a killed run
STATUSES = (RUNNING, FINISHED, FAILED, INTERRUPTED)
BACKENDS = ("tensorflow", "jax", "torch", "numpy", "openvino")
# Where a run's wall time goes (`keras_lottery.training.timing` says what
# each phase covers); `timing` also holds their sum, "wall", and "attempts".
TIMING_PHASES = ("startup", "data", "build", "compile", "train", "evaluate", "checkpoint")
TIMING_KEYS = TIMING_PHASES + ("wall", "attempts")


@dataclasses.dataclass(frozen=True, kw_only=True)
class RunRecord:
    """run.json's fields beside the spec.

    Attributes:
        status: running, finished, failed or interrupted.
        error: why it stopped, when it failed or was interrupted.
        failed_at_step: the step it stopped at.
        stopped_early: a callback of the user's ended it (early stopping).
        start_step, end_step: the run's first and last optimizer iteration.
        density: the realized fraction of prunable weights kept.
        seed_drawn: whether the seed was drawn rather than given.
        root: the root its default directory went under, relative to its own
            directory (its children's default root); None when its
            directory was given (its children then go under "runs").
        data_dir: the folder the dataset was read from, if one was given.
        data_sha256: the fingerprint of the data trained on.
        input_shape, num_classes: what the model was built for.
        execution: how the run executed (`Execution.to_dict()`).
        backend: the Keras backend it trained on ("tensorflow", "jax",
            "torch"); None in runs written before it was recorded (their
            `versions` say).
        versions: the packages it ran with.
        timing: where its wall time went: seconds per phase of
            `TIMING_PHASES`, their sum `wall`, summed over its `attempts`
            that ended (finished, failed or interrupted; an attempt killed
            outright records nothing); None for runs made before it existed.
    """

    # What happened to it.
    status: str
    error: str | None = None
    failed_at_step: int | None = None
    stopped_early: bool = False
    # Its bounds and the density its masks keep.
    start_step: int
    end_step: int
    density: float
    # Where its seed and data came from, what its model was built for, where
    # its children's folders go by default.
    seed_drawn: bool = False
    root: str | None = None
    data_dir: str | None = None
    data_sha256: str | None = None
    input_shape: tuple | None = None
    num_classes: int | None = None
    # How it executed, with which packages.
    execution: dict | None = None
    backend: str | None = None
    versions: dict | None = None
    timing: dict | None = None
    # What every run.json has (missing ones are reported by name).
    REQUIRED: typing.ClassVar = ("status", "start_step", "end_step", "density")

    def __post_init__(self):
        checks.choice(self.status, "status", STATUSES)
        checks.count(self.start_step, "start_step", 0, "expected a non-negative integer")
        checks.count(self.end_step, "end_step", self.start_step + 1,
                     f"expected an integer above start_step ({self.start_step})")
        checks.fraction(self.density, "density")
        if self.backend is not None:
            checks.choice(self.backend, "backend", BACKENDS)
        if self.input_shape is not None:
            object.__setattr__(self, "input_shape", tuple(self.input_shape))
        if self.timing is not None:
            _check_timing(self.timing)

    @classmethod
    def from_config(cls, config):
        """The record of a run.json dict (other keys are the spec's).

        Raises:
            LotteryError: naming the first invalid (or missing: None) field.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        required = dict.fromkeys(cls.REQUIRED)
        return cls(**dict(required, **{k: v for k, v in config.items() if k in names}))

    def to_config(self):
        """The record as run.json holds it (what did not happen left out)."""
        config = {k: list(v) if isinstance(v, tuple) else v
                  for k, v in dataclasses.asdict(self).items()}
        for name in ("error", "failed_at_step", "stopped_early", "timing"):
            if not config[name]:
                del config[name]
        return config

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


def _check_timing(timing):
    if not isinstance(timing, dict) or set(timing) - set(TIMING_KEYS) or not all(
            checks.is_number(v) and v >= 0 for v in timing.values()):
        raise LotteryError(f"expected a dict of non-negative seconds by phase "
                           f"({', '.join(TIMING_KEYS)})", param="timing", value=timing)


def add_timing(total, attempt):
    """`total` (a run's `timing`, or None) with one more attempt's added."""
    found = dict.fromkeys(TIMING_KEYS, 0)
    for timing in filter(None, (total, attempt)):
        for key, value in timing.items():
            found[key] = round(found[key] + value, 3) if key != "attempts" else found[key] + value
    return found
