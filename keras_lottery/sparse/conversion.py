"""Convert a user's Keras model to masked layers and back.

`masked(model)` swaps every plain layer that has a masked twin for that
twin (weights copied, all masks ones, outputs identical), wherever Keras
tracks it: in the model, in nested Sequential and Functional models, in
attention layers (their query, key, value and output projections) and in
layers of your own (the layers their `__init__` makes; see
`keras_lottery.sparse.held`); it warns once about the layers that hold a
kernel and stay unmasked. `strip(model)` does the reverse, folding kernel ×
mask into plain layers for export; it also rebuilds a subclassed model
written with masked layers as plain Keras. `masked()` takes Sequential and
Functional models; a subclassed model uses the masked layers in its own
definition.
"""

import warnings

import keras
import numpy as np

from keras_lottery.sparse import held
from keras_lottery.sparse.layers import ATTENTION_TWINS
from keras_lottery.sparse.layers import MASKED_TWINS
from keras_lottery.sparse.layers import FusedBatchNormalization
from keras_lottery.sparse.masking import MaskedKernelLayer
from keras_lottery.sparse.masking import constructing_plain
from keras_lottery.sparse.masking import mask_name
from keras_lottery.sparse.pruning import iter_layers
from keras_lottery.sparse.pruning import walk

# What `masked()` converts, by exact type (a user's subclass of Dense is
# not converted, since its `call` may differ), and what `strip()` undoes.
TO_MASKED = {**MASKED_TWINS, **ATTENTION_TWINS}
_TO_PLAIN = {masked: plain for plain, masked in TO_MASKED.items()}
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

    Every layer of a type in `TO_MASKED` (Conv*, Conv*Transpose,
    DepthwiseConv*, SeparableConv*, EinsumDense, Dense; MultiHeadAttention
    and GroupQueryAttention, whose projections are masked; exact types, not
    subclasses) becomes its masked twin, wherever Keras tracks it: in the
    model, in nested models, and in layers of your own that make it in
    their `__init__`. Weights are copied and every mask is all ones, so the
    copy computes exactly what the original does. Other layers are copied
    unchanged and never pruned; if any of them holds a kernel (an LSTM, an
    Embedding, a subclass of Dense; not scales and shifts such as batch
    normalization), one `UserWarning` lists them and the number of weights
    left out of pruning.

    Example:

    >>> model = keras.Sequential([keras.Input((28, 28, 1)),
    ...     keras.layers.Conv2D(8, 3), keras.layers.Flatten(),
    ...     keras.layers.Dense(10)])
    >>> model = keras_lottery.masked(model)
    >>> keras_lottery.prune(model, 0.5)

    Args:
        model: a built Sequential or Functional model.
    """
    clone = _convert(model, TO_MASKED, "masked")
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
        + ", ".join(plain.__name__ for plain in TO_MASKED) + "."
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
    loads anywhere Keras does (no custom objects needed). A subclassed
    model is rebuilt from its config (`get_config`) as an instance of its
    class in which every masked layer its code makes is the plain Keras
    layer (`MaskedDense(...)` makes a `Dense`): for `model.export`,
    quantization, or `save_weights` into your class written with plain
    layers. (Saved as `.keras`, it reloads as its class's code builds it,
    masked layers included.)

    Args:
        model: a built model with masked layers.
    """
    if isinstance(model, keras.Model) and type(model).__name__ not in (
            "Functional", "Sequential"):
        return _strip_subclassed(model)
    with constructing_plain():  # your own layers may make masked ones
        return _convert(model, _TO_PLAIN, "strip")


def _strip_subclassed(model):
    name = type(model).__name__
    build = model.get_build_config() if model.built else None
    if build is None:
        raise ValueError(f"keras_lottery.strip() needs a built model: call {name} "
                         "on data (or build it) first.")
    try:
        config = model.get_config()
        with constructing_plain():
            copy = type(model).from_config(config)
    except Exception as e:  # your class's own get_config / __init__
        raise TypeError(
            f"keras_lottery.strip() rebuilds a subclassed model from its config, "
            f"and {name}.from_config(model.get_config()) failed ({type(e).__name__}); "
            f"give {name} a get_config() returning its __init__ arguments, or "
            "copy the weights yourself: keras_lottery.get_kernels(model) holds "
            "each kernel with its mask folded in where pruned."
        ) from None
    copy.build_from_config(build)
    copy.built = True  # as Keras's own loader does after build_from_config
    held.copy_weights(model, copy)
    return copy


def plain_class(layer):
    """The class `strip` gives `layer`: Keras's own for a masked layer or a
    fused batch norm, else the layer's own class."""
    return _TO_PLAIN.get(type(layer), type(layer))


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
        new = target.from_config(layer.get_config())
        held.convert_held(new, mapping)
        return new

    clone = keras.models.clone_model(
        model, clone_function=clone_layer, recursive=True
    )
    for old, new in zip(_weighted_layers(model), _weighted_layers(clone)):
        if old.name != new.name:
            raise RuntimeError(
                f"Layer order changed while cloning ({old.name} vs "
                f"{new.name}); please report this model."
            )
        if not isinstance(new, keras.Model):  # a model's layers come on their own
            held.copy_weights(old, new)
    return clone


def _weighted_layers(model):
    # clone_model renames unnamed Inputs after their tensors; they hold no
    # weights, so pair up everything else that a model holds.
    return [
        l for _, inside, l in walk(model)
        if not inside and not isinstance(l, keras.layers.InputLayer)
    ]


def values_by_name(layer):
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
