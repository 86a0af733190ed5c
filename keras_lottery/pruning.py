"""Magnitude pruning over the masked kernels of a model.

The core is a pure function, `magnitude_masks(weights, masks, density)`, on
dicts of numpy arrays; the model-level functions (`prune`, `get_masks`,
`set_masks`, `density`, `sparsity_report`) read and write masked layers.

Density is always absolute: the fraction of all prunable weights (every masked
kernel not excluded) that survive, relative to the unpruned model. Exactly
`round(density * N)` weights are kept, ranked by |kernel * mask|, ties broken
by (currently unmasked first, then flat position in model order), so
already-pruned weights stay pruned and masks nest across rounds.

Masks are keyed by layer name, or by "<layer>/<kernel>" for each kernel of a
layer with several (a separable convolution's "sep/depthwise_kernel" and
"sep/pointwise_kernel"); see `mask_key`.
"""

import collections
import math
import numbers
import warnings

import keras
import numpy as np

from keras_lottery.masking import MaskedKernelLayer
from keras_lottery.slots import slot_variables
from keras_lottery.slots import zero_where

SCOPES = ("global", "layerwise")


def check_density(density):
    """Returns `density` as a float, or raises if it is not in (0, 1]."""
    if (
        isinstance(density, bool)
        or not isinstance(density, numbers.Real)
        or not math.isfinite(density)
        or not 0 < density <= 1
    ):
        raise ValueError(
            f"density must be a fraction in (0, 1], got {density!r} "
            "(for 80 % write 0.8)."
        )
    return float(density)


def kept_count(density, total):
    """Number of weights kept at `density` out of `total`: round(d * N)."""
    return int(round(check_density(density) * total))


def random_masks(masks, density, *, seed):
    """Random pruning to an absolute density: the paper's control.

    Pure function. Keeps exactly `round(density * N)` weights, chosen
    uniformly at random among the currently unmasked ones (so iterative
    rounds nest), N counted over all of `masks`.

    Example:

    >>> m = {"a": np.ones((2, 2)), "b": np.ones(4)}
    >>> new = random_masks(m, 0.5, seed=0)
    >>> int(sum(v.sum() for v in new.values()))
    4

    Args:
        masks: dict name -> current 0/1 mask, in model order.
        density: fraction in (0, 1] of all weights to keep.
        seed: seed of the random choice (a non-negative integer).

    Returns:
        dict name -> new 0/1 mask (float32).
    """
    rng = np.random.default_rng([int(seed), 0x52414E44])  # "RAND"
    scores = {
        name: rng.uniform(1.0, 2.0, size=np.shape(mask)) for name, mask in masks.items()
    }
    return magnitude_masks(scores, masks, density)


def magnitude_masks(weights, masks, density, *, scope="global", layer_densities=None):
    """Computes magnitude-pruning masks at an absolute density.

    Pure function: nothing is modified.

    Example:

    >>> w = {"a": np.array([[0.1, -3.0]]), "b": np.array([2.0, 0.5])}
    >>> m = {"a": np.ones((1, 2)), "b": np.ones(2)}
    >>> magnitude_masks(w, m, 0.5)
    {'a': array([[0., 1.]]), 'b': array([1., 0.])}

    Args:
        weights: dict name -> kernel array, in model order.
        masks: dict name -> current 0/1 mask (same keys and shapes).
        density: fraction in (0, 1] of all weights in `weights` to keep
            (`scope="global"`) or of each layer's weights (`"layerwise"`).
        scope: "global" ranks all layers together, "layerwise" each alone.
        layer_densities: with "layerwise", {name: density} for the layers
            pruned to a density of their own (the others get `density`).

    Returns:
        dict name -> new 0/1 mask (float32). A weight whose current mask is
        0 is never kept while fewer than all current survivors are kept.
    """
    check_density(density)
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}.")
    if list(weights) != list(masks):
        raise ValueError("weights and masks must have the same keys in order.")
    layer_densities = dict(layer_densities or {})
    if layer_densities and scope != "layerwise":
        raise ValueError("layer_densities need scope='layerwise'.")
    unknown = sorted(set(layer_densities) - set(weights))
    if unknown:
        raise ValueError(f"layer_densities name no layer: {unknown}.")
    if scope == "layerwise":
        new = {}
        for name in weights:
            own = check_density(layer_densities.get(name, density))
            new.update(_keep_top({name: weights[name]}, {name: masks[name]}, own))
        return new
    return _keep_top(weights, masks, density)


def _keep_top(weights, masks, density):
    shapes = {name: np.shape(w) for name, w in weights.items()}
    for name in weights:
        if np.shape(masks[name]) != shapes[name]:
            raise ValueError(
                f"Mask for '{name}' has shape {np.shape(masks[name])}, "
                f"weights have {shapes[name]}."
            )
    flat_w = np.concatenate(
        [np.ravel(np.asarray(w, np.float64)) for w in weights.values()]
    )
    flat_m = np.concatenate(
        [np.ravel(np.asarray(m, np.float64)) for m in masks.values()]
    )
    # Masks only shrink: never keep more than the current survivors.
    keep = min(kept_count(density, flat_w.size), int(np.count_nonzero(flat_m)))
    score = np.abs(flat_w * flat_m)
    # Ascending stable sort of -score; masked entries get +1 (> any -score)
    # so they come after every unmasked one, and equal keys keep flat order.
    key = np.where(flat_m > 0, -score, 1.0)
    order = np.argsort(key, kind="stable")
    flat_new = np.zeros(flat_w.size, np.float32)
    flat_new[order[:keep]] = 1.0
    new, start = {}, 0
    for name, shape in shapes.items():
        size = int(np.prod(shape))
        new[name] = flat_new[start : start + size].reshape(shape)
        start += size
    return new


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


def _kernels(model):
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


def prune(model, density, *, scope="global", exclude=(), layer_densities=None):
    """Prunes a model in place by weight magnitude to an absolute density.

    Ranks |kernel * mask| over all masked kernels together (or per kernel
    with `scope="layerwise"`) and keeps exactly `round(density * N)` of
    them, N being the prunable weights of the kernels not excluded.
    Already-pruned weights stay pruned; the stored kernel (and the
    optimizer's momentum) is zeroed where the new mask is 0.

    Example:

    >>> model = keras_lottery.models.build("resnet20")
    >>> keras_lottery.prune(model, 0.8)   # keep 80 % of all kernel weights
    >>> keras_lottery.prune(model, 0.64)  # a second round nests inside it

    Args:
        model: a model with masked layers (see `keras_lottery.masked`).
        density: fraction in (0, 1] of prunable weights to keep; absolute,
            i.e. relative to the unpruned model, not to the current density.
        scope: "global" (one ranking over all layers, as the paper) or
            "layerwise" (each kernel to the same density).
        exclude: masked layer names (all their kernels) or mask keys
            ("sep/depthwise_kernel") to leave untouched and uncounted.
        layer_densities: with `scope="layerwise"`, {layer name or mask key:
            density} for kernels pruned to a density of their own.

    Returns:
        dict mask key -> new mask (numpy), for the kernels that were ranked.
    """
    check_density(density)
    entries = masked_kernels(model)
    excluded = _excluded_keys(exclude, entries)
    masks = get_masks(model)
    kernels = _kernels(model)
    names = [n for n in masks if n not in excluded]
    if not names:
        raise ValueError("exclude leaves no layer to prune.")
    current = {n: masks[n] for n in names}
    own = {}
    for item, value in (layer_densities or {}).items():
        for key in _excluded_keys((item,), entries):
            own[key] = value
    new = magnitude_masks(
        {n: kernels[n] for n in names}, current, density, scope=scope,
        layer_densities={k: v for k, v in own.items() if k in current},
    )
    removed = sum(int(current[n].sum() - new[n].sum()) for n in names)
    if removed == 0:
        kept = sum(int(m.sum()) for m in current.values())
        total = sum(m.size for m in current.values())
        warnings.warn(
            f"Nothing pruned: density {density:g} is not below the current "
            f"{kept / total:.6g} of the ranked layers.",
            stacklevel=2,
        )
    set_masks(model, new)
    return new


LayerDensity = collections.namedtuple(
    "LayerDensity", ["name", "shape", "total", "remaining", "density"]
)


class SparsityReport:
    """Per-layer and total counts of prunable weights; `print()` it.

    Attributes:
        rows: list of `LayerDensity(name, shape, total, remaining, density)`,
            one per masked layer, in model order.
        total: a `LayerDensity` named "total" over all masked layers.
    """

    def __init__(self, rows):
        self.rows = list(rows)
        total = sum(r.total for r in self.rows)
        remaining = sum(r.remaining for r in self.rows)
        self.total = LayerDensity(
            "total", None, total, remaining, remaining / total
        )

    def __iter__(self):
        return iter(self.rows + [self.total])

    def __str__(self):
        header = ("layer", "shape", "total", "remaining", "density")
        lines = [
            (
                r.name,
                "" if r.shape is None else "x".join(map(str, r.shape)),
                f"{r.total:,}",
                f"{r.remaining:,}",
                f"{r.density:.4f}",
            )
            for r in self
        ]
        widths = [max(len(x) for x in col) for col in zip(header, *lines)]

        def fmt(cells):
            left = f"{cells[0]:<{widths[0]}}  {cells[1]:<{widths[1]}}"
            right = "  ".join(
                f"{c:>{w}}" for c, w in zip(cells[2:], widths[2:])
            )
            return f"{left}  {right}"

        rule = "-" * len(fmt(header))
        return "\n".join(
            [fmt(header), rule] + [fmt(c) for c in lines[:-1]]
            + [rule, fmt(lines[-1])]
        )

    def __repr__(self):
        return str(self)


def sparsity_report(model):
    """Returns a `SparsityReport` of the model's masked kernels (one row per
    mask key, see `get_masks`).

    Example:

    >>> print(keras_lottery.sparsity_report(model))
    layer     shape        total  remaining  density
    ...
    """
    rows = []
    for name, mask in get_masks(model).items():
        remaining = int(np.count_nonzero(mask))
        rows.append(
            LayerDensity(
                name, tuple(mask.shape), mask.size, remaining,
                remaining / mask.size,
            )
        )
    return SparsityReport(rows)
