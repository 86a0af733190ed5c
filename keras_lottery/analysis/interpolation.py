"""Networks on the straight line between two trained ones.

The state of a network on the path is `(1 − α)·A + α·B` for every variable
of the model (kernels, biases, batch-norm γ and β and its moving
statistics), except where A and B agree, which keeps their common value: so
α = 0 is exactly A, α = 1 exactly B, identical copies give identical points,
and weights pruned in both (zero in both) stay exactly zero. The masks of A
and B must be identical; they are set again after each interpolation
(`set_masks` zeroes the stored kernel wherever the mask is 0).

`reestimate_bn` replaces the interpolated batch-norm moving statistics by
ones measured on training batches, for the `reset_bn` variant of
instability analysis.
"""

import dataclasses

import keras
import numpy as np

from keras_lottery.sparse import pruning
from keras_lottery.errors import LotteryError


@dataclasses.dataclass(frozen=True)
class State:
    """The variables of a model (`model.weights`, in order) as numpy
    arrays, and its masks (`pruning.get_masks`)."""

    arrays: tuple
    masks: dict


def state_of(model):
    """The `State` of `model` now."""
    return State(tuple(keras.ops.convert_to_numpy(v) for v in model.weights),
                 pruning.get_masks(model))


def check_same_masks(states, names):
    """Raises unless every state has the masks of the first.

    Args:
        states: `State`s.
        names: what to call each state in the message (run paths).
    """
    first = states[0].masks
    for state, name in zip(states[1:], names[1:]):
        same = state.masks.keys() == first.keys() and all(
            np.array_equal(state.masks[k], first[k]) for k in first)
        if not same:
            raise LotteryError(
                f"the masks of {names[0]} and {name} differ; interpolation "
                "needs copies with identical masks (copies of one run from "
                "one iteration, pruned to one density)"
            )


def interpolate(a, b, alpha):
    """The arrays of the point `alpha` in [0, 1] between `State`s a and b.

    Floating-point variables are interpolated, `(1 − α)·a + α·b` in their
    own dtype, keeping the common value where a and b agree; any other
    variable (an integer counter) must agree and is kept.
    """
    mixed = []
    for x, y in zip(a.arrays, b.arrays):
        if not np.issubdtype(x.dtype, np.floating):
            if not np.array_equal(x, y):
                raise LotteryError(
                    f"a non-floating variable (dtype {x.dtype}) differs "
                    "between the networks; it cannot be interpolated"
                )
            mixed.append(x)
            continue
        line = ((1.0 - alpha) * x.astype(np.float64)
                + alpha * y.astype(np.float64)).astype(x.dtype)
        mixed.append(np.where(x == y, x, line))
    return mixed


def assign(model, arrays, masks):
    """Sets `model`'s variables to `arrays` and its masks to `masks`."""
    for variable, value in zip(model.weights, arrays):
        variable.assign(value)
    pruning.set_masks(model, masks)


def assign_interpolated(model, a, b, alpha):
    """Puts `model` at the point `alpha` between `State`s a and b (whose
    masks must be identical, see `check_same_masks`)."""
    assign(model, interpolate(a, b, alpha), a.masks)


def batch_norm_layers(model):
    """The batch-normalization layers of `model`, nested ones included."""
    return [layer for layer in pruning.iter_layers(model)
            if isinstance(layer, keras.layers.BatchNormalization)]


def reestimate_bn(model, batches):
    """Re-estimates every batch-norm layer's moving statistics on `batches`.

    Each moving mean and variance becomes the average over the batches of
    the batch mean and (biased) batch variance its layer sees in a
    training-mode forward pass (each layer normalizing with its batch's
    statistics, as in training), via the layers' own moving-average update
    with momentum (t − 1)/t at the t-th batch; the momentum is restored
    after. No weight changes (no optimizer step), but layers that behave
    differently in training (dropout) do so during these passes.

    Args:
        model: a Keras model.
        batches: a list of `(images, labels)` batches, already normalized.

    Returns:
        The number of batch-norm layers re-estimated (0: nothing to do).
    """
    layers = batch_norm_layers(model)
    if not layers:
        return 0
    saved = [layer.momentum for layer in layers]
    try:
        for t, (images, _) in enumerate(batches):
            for layer in layers:
                layer.momentum = t / (t + 1)
            model(images, training=True)
    finally:
        for layer, momentum in zip(layers, saved):
            layer.momentum = momentum
    return len(layers)
