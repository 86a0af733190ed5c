"""Ranking weights into masks: pure functions on dicts of numpy arrays.

Density is always absolute: the fraction of all weights ranked that
survive. Exactly `round(density * N)` weights are kept, ranked by
|kernel * mask|, ties broken by (currently unmasked first, then flat
position in model order), so already-pruned weights stay pruned and masks
nest across rounds. `keras_lottery.sparse.pruning` applies them to models.
"""


import numpy as np

from keras_lottery import checks

SCOPES = ("global", "layerwise")


def check_density(density):
    """Returns `density` as a float, or raises if it is not in (0, 1]."""
    if not checks.is_number(density) or not 0 < density <= 1:
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


def magnitude_masks(weights, masks, density, *, scope="global", layer_densities=None,
                    min_per_layer=0):
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
        min_per_layer: with "global", keep at least this many weights of
            each layer (its largest; all it has left, if fewer), within
            the same total: global pruning without layer collapse.

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
    if not checks.is_count(min_per_layer):
        raise ValueError(f"min_per_layer must be an integer >= 0, got {min_per_layer!r}.")
    if min_per_layer and scope != "global":
        raise ValueError("min_per_layer applies to scope='global'; layerwise pruning "
                         "keeps each layer's own share.")
    if scope == "layerwise":
        new = {}
        for name in weights:
            own = check_density(layer_densities.get(name, density))
            new.update(_keep_top({name: weights[name]}, {name: masks[name]}, own))
        return new
    return _keep_top(weights, masks, density, min_per_layer)


def _keep_top(weights, masks, density, min_per_layer=0):
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
    if min_per_layer:
        floors = _floors(key, flat_m, shapes, min_per_layer)
        if floors.size > keep:
            raise ValueError(
                f"min_per_layer={min_per_layer} keeps at least {floors.size:,} "
                f"weights ({len(shapes)} layers), more than the {keep:,} of density "
                f"{density:g}; lower min_per_layer or raise the density.")
        flat_new[floors] = 1.0
        order = order[flat_new[order] == 0][: keep - floors.size]
    flat_new[order[:keep]] = 1.0
    new, start = {}, 0
    for name, shape in shapes.items():
        size = int(np.prod(shape))
        new[name] = flat_new[start : start + size].reshape(shape)
        start += size
    return new


def _floors(key, flat_m, shapes, minimum):
    """Flat indices of the `minimum` best-ranked surviving weights of each
    layer (all its survivors, if fewer)."""
    found, start = [], 0
    for shape in shapes.values():
        size = int(np.prod(shape))
        n = min(minimum, int(np.count_nonzero(flat_m[start : start + size])))
        found.append(start + np.argsort(key[start : start + size], kind="stable")[:n])
        start += size
    return np.concatenate(found) if found else np.zeros(0, np.int64)
