"""How every run compiles: its optimizer, LR schedule, loss and metrics.

The recipe (`keras_lottery.spec.recipe.Recipe`) holds the numbers; here
they become Keras objects: the LR schedule (`schedule_for`), the optimizer
(`optimizer_for`) and the compiled model (`compile_model`).
"""

import keras

from keras_lottery.models import heads
from keras_lottery.sparse import pruning
from keras_lottery.spec.execution import Execution
from keras_lottery.training import keras_optimizers
from keras_lottery.training import schedules
from keras_lottery.training.optimizer import LossScaleOptimizer
from keras_lottery.training.optimizer import MomentumSGD


def schedule_for(recipe):
    """The recipe's LR schedule, a Keras schedule keyed on optimizer.iterations
    (a Keras optimizer's own, from its config)."""
    if recipe.keras_optimizer:
        return keras_optimizers.schedule(recipe.optimizer)
    return schedules.piecewise(recipe.lr_drops, recipe.lr_values, recipe.warmup_steps)


def optimizer_for(recipe, schedule):
    """The recipe's Keras optimizer, driven by `schedule`."""
    if recipe.keras_optimizer:
        return keras_optimizers.build(recipe.optimizer, schedule)
    if recipe.optimizer == "momentum":
        return MomentumSGD(schedule, momentum=recipe.momentum)
    if recipe.optimizer == "adam":
        return keras.optimizers.Adam(schedule, beta_1=recipe.beta_1,
                                     beta_2=recipe.beta_2, epsilon=recipe.epsilon)
    return keras.optimizers.SGD(schedule, momentum=recipe.momentum,
                                nesterov=recipe.optimizer == "nesterov")


def compile_model(model, recipe, execution=None, *, lr=None, loss=None):
    """Compiles `model` as every run does, and builds its optimizer.

    The optimizer is the recipe's (`MomentumSGD`, TF1's momentum rule, in
    the paper's; or a Keras optimizer's config, rebuilt) driven by the
    recipe's LR schedule (or the Keras optimizer's), or by a constant `lr`
    (still a schedule object, so checkpoints load either way); float16
    models get the loss scaler that counts skipped steps. Metrics are `top1`
    and `top5`; the loss is sparse categorical cross-entropy, on logits or,
    for a model that ends in a softmax, on its probabilities
    (`keras_lottery.models.heads`).

    Example:

    >>> model = keras_lottery.models.build("resnet20")
    >>> keras_lottery.compile_model(model, keras_lottery.spec.recipe.make(steps=500))

    Args:
        model: a Keras classifier that outputs logits or a softmax (a
            sigmoid output is refused).
        recipe: a `keras_lottery.spec.recipe.Recipe`.
        execution: a `keras_lottery.spec.execution.Execution` (XLA, precision,
            steps per execution); default: Keras's defaults.
        lr: a constant learning rate instead of the recipe's schedule.
        loss: a loss of your own instead; a cross-entropy whose
            `from_logits` contradicts the model's output is refused.

    Raises:
        LotteryError: the model ends in a sigmoid, or `loss` expects the
            other kind of output.
    """
    if loss is None:
        loss = keras.losses.SparseCategoricalCrossentropy(
            from_logits=heads.from_logits(model))
    else:
        heads.check_loss(model, loss)
    execution = execution or Execution()
    schedule = schedule_for(recipe) if lr is None else schedules.ConstantSchedule(lr)
    optimizer = optimizer_for(recipe, schedule)
    if execution.precision == "fp16" or _computes_in_float16(model):
        # Keras's own wrapper would not count skipped steps.
        optimizer = LossScaleOptimizer(optimizer)
    model.compile(
        **execution.compile_kwargs(),
        optimizer=optimizer,
        loss=loss,
        metrics=[
            keras.metrics.SparseCategoricalAccuracy(name="top1"),
            # Cast: TF's in_top_k takes float32 only (logits are bfloat16
            # under a mixed policy).
            keras.metrics.MeanMetricWrapper(_top5, name="top5"),
        ],
    )
    model.optimizer.build(model.trainable_variables)


def _computes_in_float16(model):
    # Layer by layer: a model of the user's own built under mixed_float16
    # and rebuilt from model.json has float16 layers in a float32 container
    # (Keras restores the layers' policies, not the Sequential's).
    layers = [model, *pruning.iter_layers(model)]
    return any(layer.dtype_policy.compute_dtype == "float16" for layer in layers)


# Registered, so a compiled model saved as .keras loads again.
@keras.saving.register_keras_serializable(package="keras_lottery", name="top5")
def _top5(y_true, y_pred):
    return keras.metrics.sparse_top_k_categorical_accuracy(
        y_true, keras.ops.cast(y_pred, "float32"), k=5
    )
