"""Keras optimizers given by their config: built, checked, their LR read.

A recipe's optimizer may be any Keras optimizer's config
(`keras_lottery.spec.optimizer_config.OptimizerConfig`). Every run builds it
from that config, so a rewind, an LR rewind and a fine-tuning run rebuild
the parent's optimizer exactly, and load its slots at k (Adam's moments,
Lion's momentum, an EMA, ...) whatever they are. Its learning rate always
drives it as a schedule object (a number becomes a `ConstantSchedule`, so
the optimizer holds no `learning_rate` variable, and a fine-tuning child's
constant LR leaves the variables as they were: checkpoints load both ways).

What could not be rewound faithfully is refused before a run starts: an
optimizer Keras cannot rebuild from its config, or whose config does not
give back the arguments it was given, a learning rate that is not a `LearningRateSchedule` or that
is not a function of the iteration (two evaluations at one step differ),
and gradient accumulation (whose iterations are not batches).
"""

import dataclasses
import math

import keras
import numpy as np

from keras_lottery import checks
from keras_lottery.errors import LotteryError
from keras_lottery.training.schedules import ConstantSchedule


def schedule(config):
    """The LR schedule of an `OptimizerConfig`: its schedule, rebuilt, or a
    `ConstantSchedule` of its number (the class's default when absent)."""
    rate = config.to_dict().get("config", {}).get("learning_rate")
    if rate is None:
        rate = _default_rate(config.to_dict())
    if not isinstance(rate, dict):
        return ConstantSchedule(rate)
    try:
        found = keras.optimizers.schedules.deserialize(rate)
    except Exception as e:  # Keras raises TypeError/ValueError/KeyError
        found = e
    if isinstance(found, (Exception, str)):  # a class Keras cannot find: its name
        why = _first_line(found) if isinstance(found, Exception) else f"unknown class {found}"
        raise _refusal(config, f"its learning-rate schedule cannot be rebuilt from its "
                       f"config ({why}); register its class with "
                       "@keras.saving.register_keras_serializable()")
    if not isinstance(found, keras.optimizers.schedules.LearningRateSchedule):
        raise _refusal(config, "its learning_rate is not a keras.optimizers.schedules."
                       "LearningRateSchedule, a function of the iteration that "
                       "rewinding replays")
    return found


def build(config, lr_schedule):
    """The Keras optimizer of `config` driven by `lr_schedule`."""
    given = config.to_dict()
    inner = dict(given.get("config", {}), learning_rate=lr_schedule)
    inner.pop("name", None)  # Keras numbers names per process: not identity
    try:
        optimizer = keras.optimizers.deserialize(dict(given, config=inner))
    except Exception as e:  # whatever the class's from_config raises
        optimizer = e
    # Keras gives back the class's name for a class it cannot find.
    if not isinstance(optimizer, keras.optimizers.Optimizer):
        why = _first_line(optimizer) if isinstance(optimizer, Exception) else "unknown class"
        raise _refusal(config, f"Keras cannot rebuild it from its config ({why}); a "
                       "rewind rebuilds it so: register its class with "
                       "@keras.saving.register_keras_serializable()")
    return optimizer


def canonical(recipe):
    """`recipe` with its Keras optimizer's config as Keras writes it in full
    (defaults included, so equal optimizers make equal runs), after the
    checks that a rewind could rebuild it and replay its LR.

    Raises:
        LotteryError: one line naming what cannot be rewound and why.
    """
    if not recipe.keras_optimizer:
        return recipe
    config = recipe.optimizer
    lr_schedule = schedule(config)
    check_function_of_iteration(config, lr_schedule, recipe.steps)
    optimizer = build(config, lr_schedule)
    if optimizer.gradient_accumulation_steps:
        raise _refusal(config, "gradient_accumulation_steps makes iterations that "
                       "are not batches (checkpoints, LR and data order count "
                       "batches); use a larger batch_size")
    written = _config_of(optimizer)
    lost = _lost(config.to_dict().get("config", {}), written["config"])
    if lost:
        raise _refusal(config, f"the optimizer built from its config does not give it "
                       f"back ({lost}); its from_config and get_config must keep "
                       "every argument, since a rewind rebuilds it so")
    rate = config.to_dict().get("config", {}).get("learning_rate")
    written["config"]["learning_rate"] = (
        _float32(lr_schedule.learning_rate) if isinstance(lr_schedule, ConstantSchedule)
        and not isinstance(rate, dict) else keras.saving.serialize_keras_object(lr_schedule))
    return dataclasses.replace(recipe, optimizer=written)


def check_function_of_iteration(config, lr_schedule, steps):
    """Refuses a schedule whose value at a step is not the same from a
    copy rebuilt from its config, evaluated in another order."""
    points = sorted({0, 1, steps // 2, max(steps - 1, 0), steps})
    try:
        copy = type(lr_schedule).from_config(lr_schedule.get_config())
    except Exception as e:  # NotImplementedError from the base class, ...
        raise _refusal(config, f"its learning-rate schedule has no config to rebuild "
                       f"it from ({type(e).__name__}); give it get_config") from None
    first = [value(lr_schedule, g) for g in points]
    again = [value(copy, g) for g in reversed(points)][::-1]
    if first != again or first != [value(lr_schedule, g) for g in points]:
        raise _refusal(config, "its learning-rate schedule is not a function of the "
                       f"iteration (at steps {points} it gave {first}, then {again}); "
                       "rewinding replays the LR from k, so it must be")


def value(lr_schedule, step):
    """The LR `lr_schedule` gives the update at iteration `step`, a float."""
    step = keras.ops.convert_to_tensor(int(step), "int32")  # JAX has no int64 by default
    return float(keras.ops.convert_to_numpy(lr_schedule(step)))


def lr_function(recipe, lr=None):
    """step -> the LR of the update at that iteration: the constant `lr`,
    the built-in recipe's schedule, or the Keras optimizer's."""
    if lr is not None:
        return lambda step: lr
    if not recipe.keras_optimizer:
        return recipe.lr_at
    lr_schedule = schedule(recipe.optimizer)
    return lambda step: value(lr_schedule, step)


def final_lr(recipe):
    """The LR of a base run's last update: fine-tuning's default constant LR
    (for the built-in recipes, the last value of their step schedule)."""
    if not recipe.keras_optimizer:
        return recipe.lr_values[-1]
    found = _float32(value(schedule(recipe.optimizer), recipe.steps - 1))
    if not found > 0:
        raise LotteryError(f"the schedule's last value is {found}; give a positive "
                           "constant learning rate", param="lr", value=None)
    return found


def _config_of(optimizer):
    written = keras.optimizers.serialize(optimizer)
    written["config"].pop("name", None)
    return written


def _lost(given, written):
    """'name given != rebuilt' for the first argument the rebuilt optimizer's
    config does not give back, else None."""
    for name, value in given.items():
        if name in ("name", "learning_rate"):
            continue
        back = written.get(name)
        same = (math.isclose(value, back, rel_tol=1e-6) if checks.is_number(value)
                and checks.is_number(back) else value == back)
        if not same:
            return f"{name} {value!r} != {back!r}"
    return None


def _default_rate(given):
    inner = {k: v for k, v in given.get("config", {}).items() if k != "learning_rate"}
    try:
        optimizer = keras.optimizers.deserialize(dict(given, config=inner))
    except Exception:  # reported with its reason when built
        return 1e-3
    return _float32(keras.ops.convert_to_numpy(optimizer.learning_rate))


def _float32(number):
    """The shortest decimal of a float32 (0.001, not 0.0010000000474974513)."""
    return float(str(np.float32(number)))


def _first_line(error):
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0] if text else ''}"[:200]


def _refusal(config, message):
    return LotteryError(message, param="optimizer", value=config.class_name)
