"""The masks of a model: reading, setting and counting them.

The ranking is pure (`keras_lottery.sparse.ranking`); these functions read
and write the masked layers of a model (`prune`, `get_masks`, `set_masks`,
`density`), and `keras_lottery.sparse.pruners` holds the pruning criteria.

Density is always absolute: the fraction of all prunable weights (every masked
kernel not excluded) that survive, relative to the unpruned model. Exactly
`round(density * N)` weights are kept, ranked by |kernel * mask|, ties broken
by (currently unmasked first, then flat position in model order), so
already-pruned weights stay pruned and masks nest across rounds.

Masks are keyed by layer name, or by "<layer>/<kernel>" for each kernel of a
layer with several (a separable convolution's "sep/depthwise_kernel" and
"sep/pointwise_kernel"); see `mask_key`.
"""

import keras
import numpy as np

from keras_lottery.sparse.masking import MaskedKernelLayer
from keras_lottery.sparse.slots import slot_variables
from keras_lottery.sparse.slots import zero_where


def masked_layers(model):
    """Returns the masked layers of a model, nested models included, in order.

    Raises:
        ValueError: if the model has no masked layers, or two share a name.
    """
    layers = [
        l for l in iter_layers(model) if isinstance(l, MaskedKernelLayer)
    ]
    if not layers:
        raise ValueError(
            f"Model '{model.name}' has no masked layers: build it with "
            "keras_lottery.models.build(...) or convert it with "
            "keras_lottery.masked(model)."
        )
    names = [l.name for l in layers]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(
            f"Masked layer names must be unique; repeated: {duplicates}."
        )
    for layer in layers:
        if not layer.built:
            raise ValueError(
                f"Layer '{layer.name}' is not built yet: call the model on "
                "data (or build it with an input shape) before pruning."
            )
    return layers


def iter_layers(model):
    """Yields every layer of a model, nested models and their layers included."""
    seen = set()
    stack = list(reversed(getattr(model, "layers", [])))
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        stack.extend(reversed(getattr(current, "layers", [])))


def mask_key(layer, kernel_name):
    """The key of a layer's kernel in `get_masks` and the other functions.

    A layer with one kernel is keyed by its name ("conv_1"); one with
    several (a separable convolution) by name and kernel
    ("sep/depthwise_kernel", "sep/pointwise_kernel").
    """
    if len(layer.kernel_names) == 1:
        return layer.name
    return f"{layer.name}/{kernel_name}"


def masked_kernels(model):
    """Returns {mask key: (layer, `MaskedKernel`)} of a model, in order."""
    return {
        mask_key(layer, kernel.name): (layer, kernel)
        for layer in masked_layers(model)
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
    layers = {}
    for key, (layer, _) in entries.items():
        layers.setdefault(layer.name, []).append(key)
    hints = [
        f"layer '{name}' has several kernels, name one of {layers[name]}"
        for name in unknown
        if name in layers
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
