"""The paper's CIFAR-10 training recipe, and its proportional miniatures.

At the default length (T = 71,108 steps, batch 128) every number equals the
original (SPEC §3–4): LR 0.1, dropped to 0.01 after step 35,546 and to 0.001
after 53,125; checkpoints at 0, 4701, ..., 71108; evaluation every 10,000
steps counted from the run's first step, and at its end.

A shorter (or longer) run scales every step quantity c to round(c·T/71108),
clipped to [0, T], duplicates dropped, and the evaluation interval to
max(1, round(10000·T/71108)), so a 500-step run is a faithful miniature.
`batch_size` B scales the base LR to 0.1·B/128, the original's rule.
"""

import dataclasses

import keras

from keras_lottery.errors import LotteryError

BASE_STEPS = 71108
BASE_BATCH_SIZE = 128
LR_BOUNDARIES = (35546, 53125)
LR_VALUES = (0.1, 0.01, 0.001)
CHECKPOINT_ITERS = (
    0, 4701, 12514, 20326, 28139, 35951, 43764, 51576, 59389, 67201, 71108,
)
EVAL_EVERY = 10000
MOMENTUM = 0.9
TRAIN_IMAGES = 50000


@keras.saving.register_keras_serializable(package="keras_lottery")
class ConstantSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """A constant learning rate as a schedule object.

    Fine-tuning uses it instead of a float so the optimizer has the same
    variables as with the piecewise schedule, and checkpoints load both ways.
    """

    def __init__(self, learning_rate):
        self.learning_rate = float(learning_rate)

    def __call__(self, step):
        return keras.ops.convert_to_tensor(self.learning_rate, "float32")

    def get_config(self):
        return {"learning_rate": self.learning_rate}


@dataclasses.dataclass(frozen=True)
class Recipe:
    """Every number of a training run; `Recipe()` is the paper's.

    Attributes:
        steps: T, the length of a base training run.
        batch_size: images per step.
        lr_boundaries: steps after which the LR drops (piecewise constant:
            lr(g) = values[i] for boundaries[i-1] < g <= boundaries[i]).
        lr_values: the LR of each piece.
        checkpoint_iters: iterations at which checkpoints are written.
        eval_every: evaluation interval, counted from a run's first step.
        momentum: the optimizer's momentum.
    """

    steps: int = BASE_STEPS
    batch_size: int = BASE_BATCH_SIZE
    lr_boundaries: tuple = LR_BOUNDARIES
    lr_values: tuple = LR_VALUES
    checkpoint_iters: tuple = CHECKPOINT_ITERS
    eval_every: int = EVAL_EVERY
    momentum: float = MOMENTUM

    def __post_init__(self):
        # Validated once here, so a recipe read back from run.json is
        # checked as thoroughly as one made by `make`.
        for name in ("steps", "batch_size", "eval_every"):
            if _bad_int(getattr(self, name)):
                raise ValueError(f"{name} must be a positive integer, got "
                                 f"{getattr(self, name)!r}")
        iters = list(self.checkpoint_iters)
        if any(isinstance(c, bool) or not isinstance(c, int) for c in iters):
            raise ValueError(f"checkpoint iterations must be integers, got {iters}")
        if iters != sorted(set(iters)):
            raise ValueError(
                "checkpoint iterations must be sorted and unique, got "
                f"{','.join(map(str, iters))}"
            )
        outside = [c for c in iters if not 0 <= c <= self.steps]
        if outside:
            raise ValueError(
                f"checkpoint iterations {outside} lie outside [0, {self.steps}] "
                f"(the run has {self.steps} steps)"
            )
        bounds = list(self.lr_boundaries)
        if (bounds != sorted(bounds) or len(self.lr_values) != len(bounds) + 1
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                           for v in self.lr_values)):
            raise ValueError("inconsistent LR schedule (boundaries must be "
                             "sorted, with one more value than boundaries)")
        if isinstance(self.momentum, bool) or not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum!r}")

    def schedule(self):
        """The LR schedule, a Keras schedule keyed on optimizer.iterations."""
        return keras.optimizers.schedules.PiecewiseConstantDecay(
            list(self.lr_boundaries), list(self.lr_values)
        )

    def lr_at(self, step):
        """The LR of the update made at optimizer iteration `step`."""
        for boundary, value in zip(self.lr_boundaries, self.lr_values):
            if step <= boundary:
                return value
        return self.lr_values[-1]

    def eval_steps(self, start, end):
        """Evaluation points of a run from `start` to `end`: every
        `eval_every` steps counted from `start`, and `end`."""
        points = list(range(start + self.eval_every, end, self.eval_every))
        return points + [end] if end > start else points

    def to_dict(self):
        return {
            k: list(v) if isinstance(v, tuple) else v
            for k, v in dataclasses.asdict(self).items()
        }

    @classmethod
    def from_dict(cls, config):
        if not isinstance(config, dict):
            raise ValueError(f"a recipe must be an object, got {config!r}")
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(config) - fields)
        if unknown:
            raise ValueError(f"unknown recipe fields {unknown}")
        return cls(**{
            k: tuple(v) if isinstance(v, list) else v for k, v in config.items()
        })


def make(
    steps=None,
    epochs=None,
    batch_size=BASE_BATCH_SIZE,
    checkpoint_iters=None,
    eval_every=None,
    train_images=TRAIN_IMAGES,
):
    """Builds a recipe, scaled proportionally to the requested length.

    Example:

    >>> make().checkpoint_iters[:3]
    (0, 4701, 12514)
    >>> make(steps=1000).lr_boundaries
    (500, 747)

    Args:
        steps: T; default 71108. Mutually exclusive with `epochs`.
        epochs: sets T = round(epochs * train_images / batch_size).
        batch_size: images per step; the base LR becomes 0.1 * B / 128.
        checkpoint_iters: explicit checkpoint iterations (overrides scaling);
            must be sorted, unique and within [0, T].
        eval_every: explicit evaluation interval in steps (overrides).
        train_images: training-set size, for `epochs`.

    Raises:
        LotteryError: with a one-line message, for any invalid combination.
    """
    if steps is not None and epochs is not None:
        raise LotteryError("give steps or epochs, not both", param="epochs",
                           value=epochs)
    if _bad_int(batch_size):
        raise LotteryError("expected a positive integer", param="batch_size",
                           value=batch_size)
    if epochs is not None:
        if isinstance(epochs, bool) or not isinstance(epochs, (int, float)) or not epochs > 0:
            raise LotteryError("expected a positive number", param="epochs",
                               value=epochs)
        steps = round(epochs * train_images / batch_size)
    if steps is None:
        steps = BASE_STEPS
    if _bad_int(steps):
        raise LotteryError("expected a positive integer", param="steps", value=steps)

    def scale(c):
        return min(max(round(c * steps / BASE_STEPS), 0), steps)

    if eval_every is not None and _bad_int(eval_every):
        raise LotteryError("expected a positive integer", param="eval_every",
                           value=eval_every)
    try:
        return _scaled(steps, batch_size, checkpoint_iters, eval_every, scale)
    except ValueError as e:
        raise LotteryError(str(e)) from None


def _scaled(steps, batch_size, checkpoint_iters, eval_every, scale):
    if checkpoint_iters is None:
        checkpoint_iters = sorted({scale(c) for c in CHECKPOINT_ITERS})
    if eval_every is None:
        eval_every = max(1, round(EVAL_EVERY * steps / BASE_STEPS))
    return Recipe(
        steps=steps,
        batch_size=batch_size,
        lr_boundaries=tuple(scale(b) for b in LR_BOUNDARIES),
        lr_values=tuple(v * batch_size / BASE_BATCH_SIZE for v in LR_VALUES),
        checkpoint_iters=tuple(checkpoint_iters),
        eval_every=eval_every,
    )


def _bad_int(value):
    return isinstance(value, bool) or not isinstance(value, int) or value <= 0
