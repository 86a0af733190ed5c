"""SGD with momentum using TensorFlow 1's update rule.

TF1's `MomentumOptimizer` accumulates raw gradients and applies the learning
rate afterwards::

    accum <- momentum * accum + g
    w     <- w - lr * accum

Keras's `SGD` folds the learning rate into the velocity instead
(`v <- momentum * v - lr * g; w <- w + v`). The two agree while the learning
rate is constant, but differ after a learning-rate drop and after a momentum
slot is restored from another point of the schedule — exactly what the
paper's rewinding and fine-tuning runs do. This optimizer reproduces TF1.
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_lottery")
class MomentumSGD(keras.optimizers.Optimizer):
    """SGD with (non-Nesterov) momentum and TF1's update rule.

    Example:

    >>> schedule = keras.optimizers.schedules.PiecewiseConstantDecay(
    ...     [35546, 53125], [0.1, 0.01, 0.001])
    >>> model.compile(optimizer=MomentumSGD(schedule, momentum=0.9), ...)

    Args:
        learning_rate: a float or a `keras.optimizers.schedules` schedule.
            Prefer a schedule (a constant one too): a float adds a
            `learning_rate` variable to the optimizer state, so checkpoints
            made with a schedule and with a float do not load into each other.
        momentum: float in [0, 1), the accumulator's decay.
        name: optimizer name.
        **kwargs: other `keras.optimizers.Optimizer` arguments.
    """

    def __init__(
        self, learning_rate=0.1, momentum=0.9, name="momentum_sgd", **kwargs
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        if isinstance(momentum, bool) or not 0 <= momentum < 1:
            raise ValueError(f"`momentum` must be in [0, 1), got {momentum}.")
        self.momentum = float(momentum)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self.momentums = [
            self.add_variable_from_reference(v, name="momentum")
            for v in var_list
        ]

    def update_step(self, gradient, variable, learning_rate):
        learning_rate = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        accum = self.momentums[self._get_variable_index(variable)]
        momentum = ops.cast(self.momentum, variable.dtype)
        self.assign(accum, ops.add(ops.multiply(accum, momentum), gradient))
        self.assign_sub(variable, ops.multiply(learning_rate, accum))

    def slot(self, variable):
        """Returns the momentum accumulator of a model variable."""
        return self.momentums[self._get_variable_index(variable)]

    def get_config(self):
        config = super().get_config()
        config["momentum"] = self.momentum
        return config
