"""Convert a user's Keras model to masked layers and back.

`masked(model)` swaps every plain `Conv2D` and `Dense` for its masked twin
(weights copied, all masks ones, outputs identical); `strip(model)` does the
reverse, folding kernel × mask into plain layers for export. Both work on
Sequential and Functional models, nested ones included; subclassed models
must use `MaskedConv2D` / `MaskedDense` in their own definition.
"""

import keras

from keras_lottery.layers import MASKED_LAYERS
from keras_lottery.layers import FusedBatchNormalization
from keras_lottery.layers import MaskedConv2D
from keras_lottery.layers import MaskedDense
from keras_lottery.pruning import iter_layers

_TO_MASKED = {keras.layers.Conv2D: MaskedConv2D, keras.layers.Dense: MaskedDense}
_TO_PLAIN = {
    MaskedConv2D: keras.layers.Conv2D,
    MaskedDense: keras.layers.Dense,
    FusedBatchNormalization: keras.layers.BatchNormalization,
}


def masked(model):
    """Returns a copy of `model` whose Conv2D and Dense layers are masked.

    Weights are copied and every mask is all ones, so the copy computes
    exactly what the original does. Other layers (including other
    convolution types) are copied unchanged and never pruned.

    Example:

    >>> model = keras.Sequential([keras.Input((28, 28, 1)),
    ...     keras.layers.Conv2D(8, 3), keras.layers.Flatten(),
    ...     keras.layers.Dense(10)])
    >>> model = keras_lottery.masked(model)
    >>> keras_lottery.prune(model, 0.5)

    Args:
        model: a built Sequential or Functional model.
    """
    return _convert(model, _TO_MASKED, "masked")


def strip(model):
    """Returns a plain Keras copy of `model` with kernel × mask folded in.

    The copy has no mask variables, computes exactly what `model` does, and
    loads anywhere Keras does (no custom objects needed).

    Args:
        model: a built Sequential or Functional model with masked layers.
    """
    return _convert(model, _TO_PLAIN, "strip")


def _convert(model, mapping, verb):
    if not isinstance(model, keras.Model) or type(model).__name__ not in (
        "Functional",
        "Sequential",
    ):
        raise TypeError(
            f"keras_lottery.{verb}() supports Sequential and Functional "
            f"models, got {type(model).__name__}; in a subclassed model use "
            "keras_lottery.MaskedConv2D / MaskedDense directly."
        )
    if not model.built or not model.inputs:
        raise ValueError(
            f"keras_lottery.{verb}() needs a built model with known inputs: "
            "start a Sequential with keras.Input(shape) or call build()."
        )

    def clone_layer(layer):
        target = mapping.get(type(layer), type(layer))
        return target.from_config(layer.get_config())

    clone = keras.models.clone_model(
        model, clone_function=clone_layer, recursive=True
    )
    for old, new in zip(_weighted_layers(model), _weighted_layers(clone)):
        if old.name != new.name:
            raise RuntimeError(
                f"Layer order changed while cloning ({old.name} vs "
                f"{new.name}); please report this model."
            )
        if isinstance(new, keras.Model):
            continue  # its layers are visited on their own
        if type(old) in mapping and hasattr(old, "_kernel"):
            _copy_kernel_layer(old, new)
        else:
            new.set_weights(old.get_weights())
    return clone


def _weighted_layers(model):
    # clone_model renames unnamed Inputs after their tensors; they hold no
    # weights, so pair up everything else.
    return [l for l in iter_layers(model) if not isinstance(l, keras.layers.InputLayer)]


def _copy_kernel_layer(old, new):
    if isinstance(old, MASKED_LAYERS):  # strip: fold the mask in
        kernel = keras.ops.convert_to_numpy(old._kernel)
        kernel = kernel * keras.ops.convert_to_numpy(old.mask)
    else:
        kernel = keras.ops.convert_to_numpy(old._kernel)
    new._kernel.assign(kernel)
    if old.use_bias:
        new.bias.assign(old.bias)
