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


@keras.saving.register_keras_serializable(package="keras_lottery")
class LossScaleOptimizer(keras.optimizers.LossScaleOptimizer):
    """Dynamic loss scaling in which a skipped step still counts.

    Under `mixed_float16`, a step whose scaled gradients overflow is skipped:
    no weight moves and the loss scale halves. Keras 3's
    `LossScaleOptimizer` then leaves `iterations` where it was, so the
    learning-rate schedule, the checkpoint iterations and the data order
    (all functions of the step) drift apart by one per skipped step; TF2's
    tf.keras counted the step. This wrapper counts it too: iteration N is
    always N batches consumed. `compile` keeps it as it is (Keras wraps only
    optimizers that are not loss-scaled already).

    Example:

    >>> keras.config.set_dtype_policy("mixed_float16")
    >>> model = build_model()
    >>> model.compile(optimizer=LossScaleOptimizer(MomentumSGD(schedule)), ...)

    Args:
        inner_optimizer: the optimizer to wrap, without gradient
            accumulation.
        initial_scale: the first loss scale (Keras's default, 2**15).
        dynamic_growth_steps: steps without overflow before the scale
            doubles.
        **kwargs: other `keras.optimizers.LossScaleOptimizer` arguments.
    """

    def __init__(self, inner_optimizer, initial_scale=2.0**15,
                 dynamic_growth_steps=2000, **kwargs):
        if getattr(inner_optimizer, "gradient_accumulation_steps", None):
            raise ValueError(
                "LossScaleOptimizer counts iterations itself; use an inner "
                "optimizer without gradient_accumulation_steps"
            )
        super().__init__(inner_optimizer, initial_scale=initial_scale,
                         dynamic_growth_steps=dynamic_growth_steps, **kwargs)

    def apply(self, grads, trainable_variables=None):
        finite = self.check_finite(grads)
        grads, finite = _share_overflow(grads, finite)
        super().apply(grads, trainable_variables)
        self.inner_optimizer.iterations.assign_add(self._skipped(finite))

    def stateless_apply(self, optimizer_variables, grads, trainable_variables):
        skipped = self._skipped(self.check_finite(grads))
        new_trainable, new_variables = super().stateless_apply(
            optimizer_variables, grads, trainable_variables
        )
        new_variables = list(new_variables)
        counter = self.inner_optimizer.iterations
        i = next(i for i, v in enumerate(self.variables) if v is counter)
        new_variables[i] = ops.add(new_variables[i], skipped)
        return new_trainable, new_variables

    def _skipped(self, finite):
        return ops.cast(ops.logical_not(finite), self.inner_optimizer.iterations.dtype)


def _share_overflow(grads, finite):
    """Makes every replica see an overflow that any replica has.

    Under a TF distribution strategy Keras decides "skip or apply" from the
    first replica's gradients alone, before they are summed; an inf on
    another replica would then reach the weights. Adding NaN to every
    replica's gradients when any replica overflowed makes the decision
    unanimous (and the skipped step is skipped everywhere).

    Returns the gradients and whether they are finite on every replica.
    """
    if keras.backend.backend() != "tensorflow":
        return grads, finite
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return grads, finite
    overflowed = context.all_reduce(
        tf.distribute.ReduceOp.SUM, 1.0 - ops.cast(finite, "float32")
    )
    poison = ops.where(overflowed > 0, float("nan"), 0.0)
    grads = [None if g is None else g + ops.cast(poison, g.dtype) for g in grads]
    return grads, ops.equal(overflowed, 0.0)
