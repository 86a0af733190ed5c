"""The masks of a model: reading, setting and counting them.

The ranking is pure (`keras_lottery.sparse.ranking`); these functions read
and write the masked layers of a model (`prune`, `get_masks`, `set_masks`,
`density`), and `keras_lottery.sparse.pruners` holds the pruning criteria.

Density is always absolute: the fraction of all prunable weights (every masked
kernel not excluded) that survive, relative to the unpruned model. Exactly
`round(density * N)` weights are kept, ranked by |kernel * mask|, ties broken
by (currently unmasked first, then flat position in model order), so
already-pruned weights stay pruned and masks nest across rounds.

Masks are keyed by the position of their layer in the model (`layer_keys`):

- a layer of the model, or of a Sequential or Functional model nested in
  it, is keyed by its name ("conv_1"), saved in the model's config; where
  two masked layers share a name (two towers built by one function: Keras
  scopes names per sub-model), by its path instead, the names of the
  sub-models that hold it and its own ("tower_a/dense", "tower_b/dense");
- a layer held by another layer (the projections of a MultiHeadAttention,
  the layers of a layer of your own) is keyed by its path, the holder's
  key then the attribute that holds it ("mha/query_dense",
  "block/ffn/dense_1": inside a layer, names are generated anew each time
  it is built, so positions stand in for them, as in Keras's own weight
  files: a model's layers there are numbered by type, "dense", "dense_1").

Keys are the same for every model built from one config, so they survive
save/load and every rebuild of a run. A layer with several kernels (a
separable convolution) has a key per kernel, "<key>/<kernel>"
("sep/depthwise_kernel", "sep/pointwise_kernel"); see `mask_key`.
"""

import re

import keras
import numpy as np

from keras_lottery.sparse.masking import MaskedKernelLayer
from keras_lottery.sparse.slots import slot_variables
from keras_lottery.sparse.slots import zero_where


def masked_layers(model):
    """Returns the masked layers of a model, nested ones included, in order.

    Raises:
        ValueError: if the model has no masked layers, or one is not built.
    """
    return [layer for _, layer in layer_keys(model)]


def layer_keys(model):
    """[(key, layer)] of the masked layers of `model`, in model order: the
    layer's name, or its path where the name is not unique or the layer is
    held by another layer (see the module's docstring).

    Raises:
        ValueError: if the model has no masked layers, or one is not built.
    """
    found = [(path, held, layer) for path, held, layer in walk(model)
             if isinstance(layer, MaskedKernelLayer)]
    if not found:
        raise ValueError(
            f"Model '{model.name}' has no masked layers: build it with "
            "keras_lottery.models.build(...) or convert it with "
            "keras_lottery.masked(model)."
        )
    names = [path[-1] for path, held, _ in found if not held]
    keys = [path[-1] if not held and names.count(path[-1]) == 1 else "/".join(path)
            for path, held, _ in found]
    for (_, _, layer), key in zip(found, keys):
        if not layer.built:
            raise ValueError(
                f"Layer '{key}' is not built yet: call the model on "
                "data (or build it with an input shape) before pruning."
            )
    return list(zip(keys, (layer for _, _, layer in found)))


def iter_layers(model):
    """Yields every layer of a model: its own, those of nested models and
    those held by other layers (attention projections, your own layers)."""
    for _, _, layer in walk(model):
        yield layer


def walk(model, held=False):
    """Yields (path, held, layer) for every layer of `model`, depth first in
    model order, each once: `path` is a tuple of steps from the model (names
    in models, positions inside layers), `held` whether an ancestor is a
    layer rather than a model (its name then is not in any config). With
    `held=True`, `model`'s own layers are stepped by position too."""
    seen = set()
    stack = list(reversed(children(model, (), held)))
    while stack:
        path, inside, current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield path, inside, current
        stack.extend(reversed(children(current, path, inside)))


# Attributes in which Keras and TensorFlow keep their own records of a
# layer's sublayers: the sublayers are found under their own attributes.
_RECORDS = ("_layers",)
_RECORD_PREFIX = "_self_"


def holding_attributes(layer):
    """[(attribute, value)] of the attributes of a layer (not a model) that
    may hold the layers it tracks: a layer, or a list, tuple or dict."""
    return [(attribute, value) for attribute, value in layer.__dict__.items()
            if attribute not in _RECORDS and not attribute.startswith(_RECORD_PREFIX)
            and isinstance(value, (keras.layers.Layer, list, tuple, dict))]


def children(layer, path=(), held=False):
    """(path, held, child) of the layers `layer` holds directly."""
    if isinstance(layer, keras.Model):
        steps = _positions(layer.layers) if held else [c.name for c in layer.layers]
        return [((*path, step), held, c) for step, c in zip(steps, layer.layers)]
    found = []
    for attribute, value in holding_attributes(layer):
        step = attribute.lstrip("_")
        if isinstance(value, keras.layers.Layer):
            found.append(((*path, step), True, value))
            continue
        items = value.items() if isinstance(value, dict) else enumerate(value)
        found += [((*path, step, str(i)), True, v) for i, v in items
                  if isinstance(v, keras.layers.Layer)]
    return found


def _positions(layers):
    """Names made from the layers' types and order, as Keras's weight files
    name a model's layers: "dense", "dense_1", "conv2d"."""
    steps, used = [], {}
    for layer in layers:
        kind = type(layer).__name__
        if isinstance(layer, MaskedKernelLayer):
            kind = kind.removeprefix("Masked")
        kind = re.sub(r"([a-z])([A-Z])", r"\1_\2",
                      re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", kind)).lower()
        count = used.get(kind, -1) + 1
        used[kind] = count
        steps.append(kind if count == 0 else f"{kind}_{count}")
    return steps


def mask_key(layer, kernel_name, key=None):
    """The key of a layer's kernel in `get_masks` and the other functions.

    `key` is the layer's key (`layer_keys`; default its name). A layer with
    one kernel is keyed by it ("conv_1"); one with several (a separable
    convolution) by it and the kernel ("sep/depthwise_kernel",
    "sep/pointwise_kernel").
    """
    key = layer.name if key is None else key
    if len(layer.kernel_names) == 1:
        return key
    return f"{key}/{kernel_name}"


def masked_kernels(model):
    """Returns {mask key: (layer, `MaskedKernel`)} of a model, in order."""
    return {
        mask_key(layer, kernel.name, key): (layer, kernel)
        for key, layer in layer_keys(model)
        for kernel in layer.masked_kernels()
    }


def get_masks(model):
    """Returns the masks of a model as {mask key: numpy 0/1 array}.

    A mask key is the layer's name, or "<layer>/<kernel>" for each kernel of
    a layer with several (see `mask_key`).
    """
    return {
        key: keras.ops.convert_to_numpy(kernel.mask)
        for key, (_, kernel) in masked_kernels(model).items()
    }


def get_kernels(model):
    """Returns the stored (raw) kernels as {mask key: numpy array}."""
    return {
        key: keras.ops.convert_to_numpy(kernel.raw)
        for key, (_, kernel) in masked_kernels(model).items()
    }


def set_masks(model, masks):
    """Assigns masks by key; zeroes pruned kernel and optimizer-slot entries.

    Kernels not named in `masks` keep theirs. The stored kernel and, if the
    model's optimizer is built, every slot variable it keeps for that kernel
    (momentum, Adam's moments; through any `LossScaleOptimizer` too) are
    zeroed where the new mask is 0, so nothing can move a pruned weight.

    Example:

    >>> masks = keras_lottery.get_masks(model)
    >>> masks["dense"][:, 0] = 0  # cut every input to the first unit
    >>> keras_lottery.set_masks(model, masks)

    Args:
        model: a model with masked layers.
        masks: dict mask key (see `get_masks`) -> array of the kernel's
            shape holding 0 and 1.
    """
    entries = masked_kernels(model)
    unknown = sorted(set(masks) - set(entries))
    if unknown:
        raise ValueError(_unknown_keys_message(unknown, entries))
    optimizer = getattr(model, "optimizer", None)
    variables = model.variables
    slots = {
        key: slot_variables(optimizer, entries[key][1].raw, variables)
        for key in masks
    }
    for key, mask in masks.items():
        layer, kernel = entries[key]
        layer.set_mask(mask, kernel.name)
        zero_where(slots[key], np.asarray(mask))


def _unknown_keys_message(unknown, entries):
    keys, layers = {}, {}
    for key, (layer, _) in entries.items():
        keys.setdefault(layer.name, []).append(key)
        layers.setdefault(layer.name, set()).add(id(layer))
    hints = [
        f"layer '{name}' has several kernels, name one of {keys[name]}"
        if len(layers[name]) == 1 else
        f"'{name}' names several layers, name one of {keys[name]}"
        for name in unknown
        if name in keys
    ]
    return (
        f"No masked layer named {unknown}; "
        + ("; ".join(hints) + "; " if hints else "")
        + f"mask keys are {list(entries)}."
    )


def density(model, exclude=()):
    """Fraction of the model's prunable weights that survive (0 to 1),
    counted over the kernels not in `exclude` (names or mask keys)."""
    excluded = _excluded_keys(exclude, masked_kernels(model)) if exclude else set()
    masks = [m for key, m in get_masks(model).items() if key not in excluded]
    kept = sum(int(np.count_nonzero(m)) for m in masks)
    return kept / sum(m.size for m in masks)


def excluded_keys(model, exclude):
    """The mask keys that `exclude` (layer names or mask keys) names.

    Raises:
        ValueError: a name matches no masked layer or kernel.
    """
    return _excluded_keys(exclude, masked_kernels(model))


def _excluded_keys(exclude, entries):
    """The mask keys `exclude` names: keys, or layer names (all kernels)."""
    if isinstance(exclude, str):
        exclude = (exclude,)
    keys, unknown = set(), []
    for item in exclude:
        found = [
            key for key, (layer, _) in entries.items()
            if key == item or layer.name == item
        ]
        if not found:
            unknown.append(item)
        keys.update(found)
    if unknown:
        raise ValueError(
            f"exclude names no masked layer or kernel: {sorted(unknown)}; "
            f"mask keys are {list(entries)}."
        )
    return keys
