"""Convert a user's Keras model to masked layers and back.

`masked(model)` swaps every plain layer that has a masked twin (Conv1D/2D/3D,
their transposes, DepthwiseConv1D/2D, SeparableConv1D/2D, EinsumDense and
Dense; see `keras_lottery.sparse.layers.MASKED_TWINS`) for that twin (weights
copied, all masks ones, outputs identical) and warns once about the layers
with weights that stay unmasked; `strip(model)` does the reverse, folding
kernel × mask into plain layers for export. Both work on Sequential and
Functional models, nested ones included; subclassed models must use the
masked layers in their own definition.
"""

import warnings

import keras
import numpy as np

from keras_lottery.sparse.layers import MASKED_TWINS
from keras_lottery.sparse.layers import FusedBatchNormalization
from keras_lottery.sparse.masking import MaskedKernelLayer
from keras_lottery.sparse.masking import mask_name
from keras_lottery.sparse.pruning import iter_layers
from keras_lottery.sparse.pruning import walk

_TO_MASKED = dict(MASKED_TWINS)
_TO_PLAIN = {masked: plain for plain, masked in MASKED_TWINS.items()}
_TO_PLAIN[FusedBatchNormalization] = keras.layers.BatchNormalization

# Layers with weights but no kernel that multiplies their input (they scale,
# shift or normalize it): `masked()` does not list them as left unmasked.
NO_KERNEL_LAYERS = tuple(
    getattr(keras.layers, name)
    for name in (
        "BatchNormalization", "LayerNormalization", "GroupNormalization",
        "RMSNormalization", "UnitNormalization", "Normalization", "PReLU",
    )
    if hasattr(keras.layers, name)
)
_NOT_LISTED = (keras.Model, MaskedKernelLayer) + NO_KERNEL_LAYERS


def masked(model):
    """Returns a copy of `model` whose kernel layers are masked.

    Every layer of a type in `keras_lottery.sparse.layers.MASKED_TWINS` (Conv*,
    Conv*Transpose, DepthwiseConv*, SeparableConv*, EinsumDense, Dense;
    exact types, not subclasses) becomes its masked twin. Weights are copied
    and every mask is all ones, so the copy computes exactly what the
    original does. Other layers are copied unchanged and never pruned; if
    any of them holds weights (an LSTM, an Embedding, a subclass of Dense;
    not the `NO_KERNEL_LAYERS`, such as batch normalization), one
    `UserWarning` lists them and the number of weights left out of pruning.

    Example:

    >>> model = keras.Sequential([keras.Input((28, 28, 1)),
    ...     keras.layers.Conv2D(8, 3), keras.layers.Flatten(),
    ...     keras.layers.Dense(10)])
    >>> model = keras_lottery.masked(model)
    >>> keras_lottery.prune(model, 0.5)

    Args:
        model: a built Sequential or Functional model.
    """
    clone = _convert(model, _TO_MASKED, "masked")
    message = unmasked_warning(clone)
    if message:
        warnings.warn(message, UserWarning, stacklevel=2)
    return clone


def unmasked_warning(model):
    """The warning `masked()` gives about `model`'s unmasked layers that
    hold a kernel (None if there are none)."""
    left = unmasked_layers(model)
    if not left:
        return None
    listed = ", ".join(
        f"'{layer.name}' ({type(layer).__name__}, {count:,} weights)"
        for layer, count in left
    )
    total = sum(count for _, count in left)
    return (
        f"keras_lottery.masked(): {len(left)} layer(s) with weights stay "
        f"unmasked and are never pruned: {listed}. That leaves {total:,} "
        "weights out of pruning and out of density. Masked layer types: "
        + ", ".join(plain.__name__ for plain in MASKED_TWINS) + "."
    )


def unmasked_layers(model):
    """[(layer, weights)]: the outermost layers of `model` that hold a
    kernel (a weight of rank 2 or more: an Embedding's, an LSTM's) outside
    masked layers, and how many float weights they leave out of pruning.
    Scales and shifts (batch normalization, a LayerScale) are not listed."""
    left, inside = [], set()
    for layer in iter_layers(model):
        if id(layer) in inside or isinstance(layer, _NOT_LISTED):
            continue
        held = list(iter_layers(layer))
        inside.update(map(id, held))
        skipped = {id(v) for sub in held if isinstance(sub, _NOT_LISTED)
                   for v in sub.weights}
        weights = [v for v in layer.weights if id(v) not in skipped
                   and keras.backend.is_float_dtype(v.dtype)]
        if any(len(v.shape) >= 2 for v in weights):
            left.append((layer, sum(int(np.prod(v.shape)) for v in weights)))
    return left


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
            "the masked layers (keras_lottery.MaskedConv2D, ...) directly."
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
        if type(old) in mapping:
            _copy_by_name(old, new)
        else:
            new.set_weights(old.get_weights())
    return clone


def _weighted_layers(model):
    # clone_model renames unnamed Inputs after their tensors; they hold no
    # weights, so pair up everything else that a model holds.
    return [
        l for _, held, l in walk(model)
        if not held and not isinstance(l, keras.layers.InputLayer)
    ]


def _values_by_name(layer):
    """{variable name: value} of a layer, kernel × mask folded in and the
    masks left out for a masked layer."""
    values = {v.name: v for v in layer.weights}
    if isinstance(layer, MaskedKernelLayer):
        for kernel in layer.masked_kernels():
            del values[mask_name(kernel.name)]
            values[kernel.name] = keras.ops.convert_to_numpy(
                kernel.raw
            ) * keras.ops.convert_to_numpy(kernel.mask)
    return values


def _copy_by_name(old, new):
    """Copies weights between a layer and its (un)masked twin, by name."""
    values = _values_by_name(old)
    targets = {v.name: v for v in new.weights}
    if isinstance(new, MaskedKernelLayer):
        for name in new.kernel_names:
            del targets[mask_name(name)]  # stays all ones
    if sorted(values) != sorted(targets):
        raise RuntimeError(
            f"Layer '{old.name}': weights {sorted(values)} do not match its "
            f"converted twin's {sorted(targets)}; please report this model."
        )
    for name, target in targets.items():
        target.assign(values[name])
