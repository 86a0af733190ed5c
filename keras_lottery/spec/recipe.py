"""Training recipes: the paper's, the lottery-ticket papers', your own.

A `Recipe` holds every number of a training run. `make(preset, **fields)`
builds one from a preset (`PRESETS`), a TOML file or another `Recipe`;
fields given override the preset's. Asking for another length (`steps` or
`epochs`) scales every step quantity c left out (LR drops, warmup,
checkpoint iterations) to round(c·T/T0), clipped to [0, T], duplicates
dropped, and the evaluation interval to max(1, round(e·T/T0)), so a 500-step
run is a faithful miniature, except that it evaluates at most
`SHORT_RUN_EVALUATIONS` (20) times. In `renda2020` (the default) a batch
size B also scales the LR to 0.1·B/128, the original's rule.

At T = 71,108 and batch 128, `renda2020` is exactly the original:
TF1 momentum 0.9, LR 0.1 dropped ×0.1 after steps 35,546 and 53,125;
checkpoints at 0, 4701, ..., 71108; evaluation every 10,000 steps from a
run's first step, and at its end.
"""

import dataclasses
import difflib
import pathlib

from keras_lottery import checks
from keras_lottery import tomlfiles
from keras_lottery.spec import optimizer_config
from keras_lottery.errors import LotteryError
from keras_lottery.spec.optimizer_config import BUILT_IN_FIELDS
from keras_lottery.spec.optimizer_config import OptimizerConfig

BASE_STEPS = 71108
BASE_BATCH_SIZE = 128
CHECKPOINT_ITERS = (
    0, 4701, 12514, 20326, 28139, 35951, 43764, 51576, 59389, 67201, 71108,
)
OPTIMIZERS = ("momentum", "sgd", "nesterov", "adam")
# A recipe scaled to fewer steps evaluates at most this many times (and at
# its end): a short run's time goes to training, not to evaluating every few
# steps (frankle2019-lenet's 50 evaluations stay 50 at its full 50,000 steps).
SHORT_RUN_EVALUATIONS = 20
# Fields counted in steps: scaled with the run's length.
STEP_FIELDS = ("lr_drops", "warmup_steps", "checkpoint_iters", "eval_every")


@dataclasses.dataclass(frozen=True)
class Recipe:
    """Every number of a training run; `Recipe()` is the paper's.

    Attributes:
        optimizer: "momentum" (SGD with TF1's momentum rule, the paper's),
            "sgd" (Keras SGD, with `momentum` if nonzero), "nesterov" (Keras
            SGD with Nesterov momentum), "adam", or any Keras optimizer's
            config `{class_name, config}` (as `keras.optimizers.serialize`
            writes it; a Keras optimizer given is serialized so), held as an
            `OptimizerConfig`; its learning rate (a number or any
            `LearningRateSchedule`) is in its config, and the fields below
            down to `warmup_steps` are then unused (left at their defaults,
            and out of run.json).
        lr: the base learning rate.
        momentum: momentum of "momentum", "sgd" and "nesterov".
        beta_1, beta_2, epsilon: Adam's.
        lr_drops: steps after which the LR is multiplied by `gamma`
            (piecewise constant: the update at iteration g uses
            lr·gamma^(number of drops < g)).
        gamma: the factor of each drop.
        warmup_steps: a linear warmup: the update at iteration g < W uses
            (g + 1)/W of the scheduled LR.
        weight_decay: the `wd` of the L2 term wd·Σv²/2 of the named
            architectures (None: each architecture's default); models of
            your own keep the regularizers they have.
        batch_size: images per step.
        steps: T, the length of a base training run.
        checkpoint_iters: iterations at which checkpoints are written.
        eval_every: evaluation interval, counted from a run's first step.
        preset: the preset it was made from (not part of its identity).
    """

    optimizer: object = "momentum"
    lr: float = 0.1
    momentum: float = 0.9
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-7
    lr_drops: tuple = (35546, 53125)
    gamma: float = 0.1
    warmup_steps: int = 0
    weight_decay: float = None
    batch_size: int = BASE_BATCH_SIZE
    steps: int = BASE_STEPS
    checkpoint_iters: tuple = CHECKPOINT_ITERS
    eval_every: int = 10000
    preset: str = dataclasses.field(default="renda2020", compare=False)

    def __post_init__(self):
        # Validated once here, so a recipe read back from run.json is
        # checked as thoroughly as one made by `make`.
        if isinstance(self.optimizer, str):
            _check_choice("optimizer", self.optimizer, OPTIMIZERS)
        else:
            object.__setattr__(self, "optimizer", OptimizerConfig.of(self.optimizer))
            for field in dataclasses.fields(self):  # unused: the defaults, no drops
                if field.name in BUILT_IN_FIELDS:
                    object.__setattr__(self, field.name, () if field.name == "lr_drops"
                                       else field.default)
        for name in ("steps", "batch_size", "eval_every"):
            _check_int(name, getattr(self, name), 1)
        _check_int("warmup_steps", self.warmup_steps, 0)
        if self.warmup_steps > self.steps:
            raise LotteryError(f"is longer than the run ({self.steps} steps); warm up "
                               "for part of it", param="warmup_steps",
                               value=self.warmup_steps)
        _check_number("lr", self.lr, "a positive learning rate", lambda v: v > 0)
        _check_number("gamma", self.gamma, "a positive factor", lambda v: v > 0)
        for name in ("momentum", "beta_1", "beta_2"):
            _check_number(name, getattr(self, name), "a number in [0, 1)",
                          lambda v: 0 <= v < 1)
        _check_number("epsilon", self.epsilon, "a positive number", lambda v: v > 0)
        if self.weight_decay is not None:
            _check_number("weight_decay", self.weight_decay, "a number >= 0 (or "
                          "None for the architecture's default)", lambda v: v >= 0)
        # LR drops may coincide once scaled to a tiny T (two drops at once).
        object.__setattr__(self, "lr_drops", _steps("lr_drops", self.lr_drops,
                                                     self.steps, unique=False))
        object.__setattr__(self, "checkpoint_iters", _steps(
            "checkpoint_iters", self.checkpoint_iters, self.steps))

    @property
    def keras_optimizer(self):
        """Whether the optimizer is a Keras optimizer's config."""
        return isinstance(self.optimizer, OptimizerConfig)

    @property
    def optimizer_name(self):
        """The built-in name, or the Keras optimizer's class name."""
        return self.optimizer.class_name if self.keras_optimizer else self.optimizer

    @property
    def lr_values(self):
        """The LR of each piece of the schedule (12 significant digits, so
        0.1·0.1 is 0.01)."""
        return tuple(float(f"{self.lr * self.gamma ** i:.12g}")
                     for i in range(len(self.lr_drops) + 1))

    def lr_at(self, step):
        """The LR of the update made at optimizer iteration `step`."""
        drops = sum(1 for boundary in self.lr_drops if step > boundary)
        lr = self.lr_values[drops]
        if step < self.warmup_steps:
            lr = lr * (step + 1) / self.warmup_steps
        return lr

    def eval_steps(self, start, end):
        """Evaluation points of a run from `start` to `end`: every
        `eval_every` steps counted from `start`, and `end`."""
        points = list(range(start + self.eval_every, end, self.eval_every))
        return points + [end] if end > start else points

    def to_dict(self):
        config = {
            k: list(v) if isinstance(v, tuple) else v
            for k, v in dataclasses.asdict(self).items()
        }
        if self.keras_optimizer:
            config["optimizer"] = self.optimizer.to_dict()
            for name in BUILT_IN_FIELDS:
                del config[name]
        return config

    @classmethod
    def from_dict(cls, config):
        """A recipe from run.json (also as written before presets existed:
        `lr_boundaries`/`lr_values`)."""
        if not isinstance(config, dict):
            raise LotteryError("expected an object of recipe fields",
                               param="recipe", value=config)
        config = dict(config)
        if "lr_values" in config:
            values = config.pop("lr_values")
            config["lr_drops"] = config.pop("lr_boundaries", ())
            config["lr"] = values[0]
            if len(values) > 1:
                config["gamma"] = float(f"{values[1] / values[0]:.12g}")
        _check_fields(config, {f.name for f in dataclasses.fields(cls)})
        return cls(**{k: tuple(v) if isinstance(v, list) else v
                      for k, v in config.items()})


def _renda2020(train_images):
    return Recipe()


def _frankle2019(steps, lr):
    # Adam at batch 60, no weight decay; evaluation every 1000 steps;
    # checkpoints where the paper's rewinding points fall in T.
    return lambda train_images: _rescaled(
        Recipe(), steps, optimizer="adam", lr=lr, epsilon=1e-8, lr_drops=(),
        weight_decay=0.0, batch_size=60, eval_every=1000)


def _openlth_lenet(train_images):
    # open_lth's mnist_lenet_300_100: plain SGD 0.1, batch 128, 40 epochs,
    # evaluated once an epoch.
    steps = max(1, round(40 * train_images / 128))
    return _rescaled(Recipe(), steps, optimizer="sgd", lr=0.1,
                     momentum=0.0, lr_drops=(), weight_decay=0.0, batch_size=128,
                     eval_every=max(1, round(steps / 40)))


PRESETS = {
    "renda2020": _renda2020,
    "frankle2019-lenet": _frankle2019(50000, 1.2e-3),
    "frankle2019-conv2": _frankle2019(20000, 2e-4),
    "frankle2019-conv4": _frankle2019(25000, 3e-4),
    "frankle2019-conv6": _frankle2019(30000, 3e-4),
    "openlth-lenet": _openlth_lenet,
}
# Presets whose LR follows the batch size linearly (the original's rule).
LINEAR_LR_SCALING = ("renda2020",)
FIELDS = tuple(f.name for f in dataclasses.fields(Recipe) if f.name != "preset")


def make(preset="renda2020", *, epochs=None, train_images=50000, **fields):
    """Builds a recipe from a preset, a TOML file or a `Recipe`.

    Example:

    >>> make().checkpoint_iters[:3]
    (0, 4701, 12514)
    >>> make(steps=1000).lr_drops
    (500, 747)
    >>> make("frankle2019-lenet").optimizer
    'adam'

    Args:
        preset: a name of `PRESETS`, a path to a `.toml` file of recipe
            fields (which may name its own `preset`), or a `Recipe`.
        epochs: sets T = round(epochs · train_images / batch_size) instead
            of `steps`.
        train_images: the training set's size, for `epochs` (and for
            presets counted in epochs).
        **fields: any `Recipe` field; step quantities left out scale with
            T, and in `renda2020` an LR left out scales with the batch size.

    Raises:
        LotteryError: one line naming the field and the fix.
    """
    # None means "not given", so callers can pass their optional arguments on.
    fields = {k: v for k, v in fields.items() if v is not None}
    given = set(fields)
    base = _base(preset, train_images, fields)
    try:
        return _make(base, epochs, train_images, fields)
    except LotteryError as e:
        if e.param not in set(fields) - given:  # fields from a file
            raise
        # A field of the file: name the file, as the user wrote it there.
        raise LotteryError(f"{e.param} {e.value!r}: {e.message}", param="recipe",
                           value=str(preset)) from None


def _make(base, epochs, train_images, fields):
    _check_fields(fields, FIELDS)
    if epochs is not None:
        if "steps" in fields:
            raise LotteryError("give steps or epochs, not both", param="epochs",
                               value=epochs)
        _check_number("epochs", epochs, "a positive number", lambda v: v > 0)
        batch = fields.get("batch_size", base.batch_size)
        _check_int("batch_size", batch, 1)
        fields["steps"] = max(1, round(epochs * train_images / batch))
    _check_int("steps", fields.get("steps", base.steps), 1)
    _check_int("batch_size", fields.get("batch_size", base.batch_size), 1)
    built_in = isinstance(fields.get("optimizer", base.optimizer), str)
    if not built_in:
        optimizer_config.refuse_built_in_fields(fields)
    if ("batch_size" in fields and "lr" not in fields and built_in
            and base.preset in LINEAR_LR_SCALING):
        fields["lr"] = base.lr * fields["batch_size"] / base.batch_size
    return _rescaled(base, fields.pop("steps", base.steps), **fields)


def _base(preset, train_images, fields):
    if isinstance(preset, Recipe):
        return preset
    if not isinstance(preset, (str, pathlib.Path)):
        raise LotteryError("expected a preset name, a .toml file or a Recipe",
                           param="recipe", value=preset)
    if str(preset).endswith(".toml"):
        config = load_file(preset)
        named = config.pop("preset", "renda2020")
        for name, value in config.items():
            fields.setdefault(name, value)
        preset = named
    if preset not in PRESETS:
        close = difflib.get_close_matches(str(preset), PRESETS, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise LotteryError(f"unknown recipe{hint}; presets: {', '.join(PRESETS)}, "
                           "or a .toml file of recipe fields", param="recipe",
                           value=str(preset))
    return dataclasses.replace(PRESETS[preset](train_images), preset=preset)


def _rescaled(base, steps, **fields):
    """`base` at length `steps`, its step quantities scaled unless given."""
    def scale(c):
        return min(max(round(c * steps / base.steps), 0), steps)

    scaled = {}
    if steps != base.steps:
        scaled = {
            "lr_drops": tuple(scale(c) for c in base.lr_drops),  # may coincide
            "warmup_steps": scale(base.warmup_steps),
            "checkpoint_iters": tuple(sorted({scale(c) for c in base.checkpoint_iters})),
            "eval_every": max(1, round(base.eval_every * steps / base.steps),
                              -(-steps // SHORT_RUN_EVALUATIONS) if steps < base.steps else 1),
        }
    changes = dict(scaled, **fields, steps=steps)
    for name in ("lr_drops", "checkpoint_iters"):
        if isinstance(changes.get(name), list):
            changes[name] = tuple(changes[name])
    return dataclasses.replace(base, **changes)


def load_file(path):
    """The recipe fields of a TOML file, e.g.

        preset = "frankle2019-lenet"   # optional; default renda2020
        lr = 3e-4
        steps = 2000
    """
    path = pathlib.Path(path)
    try:
        config = tomlfiles.read(path)
    except FileNotFoundError:
        raise LotteryError("no such recipe file", param="recipe", value=str(path)) from None
    except (OSError, ValueError) as e:
        raise LotteryError(f"is not valid TOML ({e})", param="recipe",
                           value=str(path)) from None
    try:
        _check_fields(config, FIELDS + ("preset",))
    except LotteryError as e:  # named as the file has it: `lr_drop = [5]`
        raise LotteryError(f"{e.param} = {e.value!r}: {e.message}", param="recipe",
                           value=str(path)) from None
    return config


def _check_fields(given, allowed):
    """Every key of the dict `given` is a recipe field (an error names the
    key as the argument it was given as)."""
    for name, value in given.items():
        if name not in allowed:
            close = difflib.get_close_matches(name, allowed, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise LotteryError(
                f"is not a recipe field{hint}; fields: {', '.join(allowed)}",
                param=name, value=value,
            )


def _check_choice(name, value, choices):
    if value not in choices:
        close = difflib.get_close_matches(str(value), choices, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise LotteryError(f"expected one of {', '.join(choices)}{hint}",
                           param=name, value=value)


def _check_int(name, value, minimum):
    expected = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
    checks.count(value, name, minimum, f"expected {expected}")


def _check_number(name, value, expected, ok):
    if not checks.is_number(value) or not ok(value):
        raise LotteryError(f"expected {expected}", param=name, value=value)


def _steps(name, values, steps, unique=True):
    """A sorted (and unique) tuple of iterations within [0, steps]."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise LotteryError("expected a list of steps", param=name, value=values)
    values = list(values)
    if not all(checks.is_count(c, -2**63) for c in values):
        raise LotteryError("expected integer steps", param=name, value=values)
    if values != (sorted(set(values)) if unique else sorted(values)):
        raise LotteryError("must be sorted and unique" if unique else "must be sorted",
                           param=name, value=values)
    outside = [c for c in values if not 0 <= c <= steps]
    if outside:
        raise LotteryError(f"{outside} lie outside [0, {steps}] (the run has "
                           f"{steps} steps)", param=name, value=values)
    return tuple(values)
