"""Learning-rate schedules of the recipes, as Keras schedule objects.

Every run drives its optimizer with a schedule object, a constant LR too,
so the optimizer has the same variables whatever the LR and checkpoints
load both ways.
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_lottery")
class ConstantSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """A constant learning rate as a schedule object (fine-tuning's)."""

    def __init__(self, learning_rate):
        self.learning_rate = float(learning_rate)

    def __call__(self, step):
        return ops.convert_to_tensor(self.learning_rate, "float32")

    def get_config(self):
        return {"learning_rate": self.learning_rate}


@keras.saving.register_keras_serializable(package="keras_lottery")
class LinearWarmup(keras.optimizers.schedules.LearningRateSchedule):
    """`schedule`, scaled by (g + 1)/`steps` for the first `steps` updates.

    Args:
        schedule: the schedule after warmup.
        steps: warmup length W; the update at iteration g < W uses
            (g + 1)/W of `schedule(g)`.
    """

    def __init__(self, schedule, steps):
        self.schedule = schedule
        self.steps = int(steps)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        factor = ops.minimum(1.0, (step + 1.0) / float(self.steps))
        return ops.cast(self.schedule(step), "float32") * factor

    def get_config(self):
        return {"schedule": keras.saving.serialize_keras_object(self.schedule),
                "steps": self.steps}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["schedule"] = keras.saving.deserialize_keras_object(config["schedule"])
        return cls(**config)


def piecewise(drops, values, warmup_steps=0):
    """lr(g) = values[i] for drops[i-1] < g <= drops[i], after a warmup."""
    if drops:
        schedule = keras.optimizers.schedules.PiecewiseConstantDecay(
            list(drops), list(values))
    else:
        schedule = ConstantSchedule(values[0])
    return LinearWarmup(schedule, warmup_steps) if warmup_steps else schedule
