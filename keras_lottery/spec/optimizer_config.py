"""A Keras optimizer given by its config: `OptimizerConfig`.

A recipe's optimizer is a built-in name (`recipe.OPTIMIZERS`) or the config
of any Keras optimizer as `keras.optimizers.serialize` writes it::

    {"class_name": "AdamW",
     "config": {"weight_decay": 0.05,
                "learning_rate": {"class_name": "CosineDecay",
                                  "config": {"initial_learning_rate": 1e-3,
                                             "decay_steps": 2000}}}}

("module" and "registered_name" as Keras writes them for classes of your
own). Its learning rate is a number or a `LearningRateSchedule`'s config.
Held as canonical JSON, so a recipe holding one stays hashable and equal
configs are `==`. Only its form is checked here, before TensorFlow loads;
whether Keras can rebuild it (and so a rewind restore it) is checked by
`keras_lottery.training.keras_optimizers` before a run starts.
"""

import dataclasses
import json

from keras_lottery import checks
from keras_lottery.errors import LotteryError

# Recipe fields of the built-in optimizers and their LR schedule: a Keras
# optimizer's config holds its own.
BUILT_IN_FIELDS = ("lr", "momentum", "beta_1", "beta_2", "epsilon", "lr_drops",
                   "gamma", "warmup_steps")
KEYS = ("module", "class_name", "config", "registered_name")
# Learning-rate "schedules" Keras serializes that are no function of the
# iteration: a Python function or lambda taking no argument.
_FUNCTIONS = ("function", "__lambda__")


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """A Keras optimizer's config, as canonical JSON text.

    Make one with `OptimizerConfig.of(value)`; `to_dict()` gives the config.

    Attributes:
        text: the config as JSON, keys sorted.
    """

    text: str

    @classmethod
    def of(cls, value, param="optimizer"):
        """The config of `value`: an `OptimizerConfig`, a config dict, or a
        Keras optimizer (serialized with `keras.optimizers.serialize`).

        Raises:
            LotteryError: one line naming `param`, when `value` is none of
                these or its learning rate is not a number or a schedule.
        """
        if isinstance(value, cls):
            return value
        if not isinstance(value, dict) and callable(getattr(value, "get_config", None)):
            value = _serialized(value, param)
        if not isinstance(value, dict):
            raise LotteryError(
                "expected a built-in name, a Keras optimizer or its config "
                "{class_name, config} (as keras.optimizers.serialize writes it)",
                param=param, value=checks.summary(value))
        _check_form(value, param)
        try:
            text = json.dumps(value, sort_keys=True, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise LotteryError(f"holds a value with no JSON form ({e}); give numbers, "
                               "strings, lists and configs", param=param,
                               value=_short(value)) from None
        return cls(text)

    def to_dict(self):
        """The config as a new dict."""
        return json.loads(self.text)

    @property
    def class_name(self):
        return self.to_dict()["class_name"]

    def __repr__(self):
        return f"OptimizerConfig({self.class_name})"


def refuse_built_in_fields(fields):
    """Refuses recipe fields of the built-in optimizers given beside a Keras
    optimizer's config, which holds its own."""
    for name in BUILT_IN_FIELDS:
        if name in fields:
            raise LotteryError(
                "is a field of the built-in optimizers; a Keras optimizer's config "
                "holds its own (learning_rate, a number or a schedule): set it there",
                param=name, value=fields[name])


def _serialized(optimizer, param):
    """`keras.optimizers.serialize(optimizer)`, or a refusal naming why not."""
    import keras  # loaded already: the caller made a Keras object

    if getattr(optimizer, "inner_optimizer", None) is not None:
        raise LotteryError(
            f"is a {type(optimizer).__name__}; give the optimizer it wraps "
            "(mixed_precision='fp16' adds the loss scaling a run needs)",
            param=param, value=type(optimizer).__name__)
    try:
        return keras.optimizers.serialize(optimizer)
    except Exception as e:  # Keras raises what the object's config raises
        raise LotteryError(
            f"has no config Keras can write ({type(e).__name__}: {e}); a rewind "
            "rebuilds the optimizer from its config: use a Keras optimizer whose "
            "learning rate is a number or a LearningRateSchedule",
            param=param, value=type(optimizer).__name__) from None


def _check_form(config, param):
    unknown = sorted(set(config) - set(KEYS))
    name = config.get("class_name")
    if unknown or not isinstance(name, str) or not name:
        raise LotteryError(
            "expected a Keras optimizer config {class_name, config} as "
            f"keras.optimizers.serialize writes it (keys: {', '.join(KEYS)})",
            param=param, value=_short(config))
    inner = config.get("config", {})
    if not isinstance(inner, dict):
        raise LotteryError("its config must be a table of the optimizer's arguments",
                           param=param, value=name)
    if "LossScaleOptimizer" in name:
        raise LotteryError(
            "give the optimizer it wraps (mixed_precision='fp16' adds the loss "
            "scaling a run needs)", param=param, value=name)
    rate = inner.get("learning_rate")
    if rate is None or (checks.is_number(rate) and rate > 0):
        return
    if not isinstance(rate, dict) or not isinstance(rate.get("class_name"), str) or (
            rate.get("class_name") in _FUNCTIONS):
        raise LotteryError(
            "its learning_rate must be a positive number or a keras.optimizers."
            "schedules.LearningRateSchedule (a function of the iteration, which "
            "rewinding replays); a callable is not", param=param, value=name)


def _short(config):
    text = repr(config)
    return text if len(text) <= 120 else text[:117] + "..."
