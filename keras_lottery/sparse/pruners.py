"""Pruners: the criteria that choose which weights a pruning run keeps.

A pruner is a function `pruner(model, density, **options) -> {mask key:
0/1 array}`: it reads the masked model at the prune point (its weights,
masks and layers; `keras_lottery.get_masks`, `get_kernels`) and returns
the new masks of the kernels it prunes (a kernel left out keeps its mask).
Global and layerwise magnitude (`magnitude`, the paper's), uniform
random pruning (`random`, the paper's control), L1-norm filter pruning
(`l1-filters`, the paper's structured pruning) and its random control
(`random-filters`), and the original code's other families (`zscore`,
`conv-global`; `keras_lottery.sparse.original`) are registered here; your
own is one call:

>>> def snip_like(model, density, *, exclude=()):
...     ...
...     return masks
>>> keras_lottery.register_pruner("snip_like", snip_like)
>>> keras_lottery.rewind(parent, iteration=20, density=0.2, pruner="snip_like")

or, without registering, "package.module:function" (`--pruner
mycriteria:snip_like` on the command line).

The options a pruner declares as keyword arguments are given to it:
`exclude` (the mask keys left unpruned and out of the density), `seed`
(the run's seed), `scope`, `layer_densities` and `min_per_layer`, and any
of your own.

Global pruning can leave a kernel with no weight at all (layer collapse:
MobileNetV2's depthwise kernels, DenseNet's stem at density 0.2), which
disconnects the network; `prune` and every run that prunes warn in one line
naming them (`collapse_warning`), and `min_per_layer=` (magnitude pruning)
keeps at least that many weights of every kernel.
What is checked here, once for every pruner: the masks' keys, shapes and
0/1 values; that masks only shrink (no pruned weight revives); that the
excluded kernels are untouched; that no more weights are kept than the
density asks (one weight of rounding per kernel aside).

A pruner that chooses how much it prunes itself (`l1-filters`: its
configuration and level say) declares `density=None` and is called without
a density; the count is then not checked.
"""

import inspect
import warnings

import numpy as np

from keras_lottery import plugins
from keras_lottery.errors import LotteryError
from keras_lottery.sparse import original
from keras_lottery.sparse import pruning
from keras_lottery.sparse import ranking
from keras_lottery.sparse import structured

# Options every pruning run offers; given to a pruner that declares them.
# A value other than the default, for a pruner that does not, is an error.
OFFERED = {"exclude": (), "seed": None, "scope": "global", "layer_densities": None,
           "min_per_layer": 0}
# Offered only: a pruner that has no use for the seed need not take it.
SILENT = ("seed",)
_PRUNERS = {}


def register_pruner(name, function):
    """Registers `function(model, density, **options) -> {mask key: 0/1
    array}` as the pruner `name`, for `prune`, the procedures (`pruner=`),
    the command line (`--pruner`) and study files (`pruner = "..."`).

    Registering a name again replaces your own pruner of that name; the
    built-in ones cannot be replaced.
    """
    if not isinstance(name, str) or not name or ":" in name:
        raise LotteryError("expected a name without ':' (that spelling is "
                           "package.module:function)", param="name", value=name)
    if name in BUILT_IN:
        raise LotteryError("is a built-in pruner; register yours under another "
                           "name", param="name", value=name)
    if not callable(function):
        raise LotteryError("expected a function (model, density, **options) -> "
                           "masks", param="function", value=function)
    _PRUNERS[name] = function


def available():
    """The names of the registered pruners, built-in ones first."""
    return list(_PRUNERS)


def get(name):
    """The pruner `name` (registered, or "package.module:function"); a
    function is its own pruner (outside runs, which record pruners by name)."""
    if callable(name):
        return name
    if plugins.is_reference(name):
        return plugins.load(name, param="pruner",
                            what="returns masks (model, density, **options)")
    if name not in _PRUNERS:
        raise LotteryError(
            f"is not a registered pruner; choose one of {', '.join(_PRUNERS)}, "
            "register yours with keras_lottery.register_pruner(name, function), "
            "or give package.module:function", param="pruner", value=name)
    return _PRUNERS[name]


def new_masks(model, density=None, *, pruner="magnitude", exclude=(), seed=None,
              scope="global", layer_densities=None, min_per_layer=0, **options):
    """The masks `pruner` chooses for `model` at `density`, checked.

    Args:
        model: a model with masked layers, at the prune point.
        density: the fraction in (0, 1] of the prunable weights (of the
            kernels not excluded) to keep; absolute. None for a pruner that
            chooses how much it prunes (it declares `density=None`).
        pruner: a registered pruner's name or "package.module:function".
        exclude: masked layer names or mask keys to leave unpruned.
        seed, scope, layer_densities, min_per_layer, **options: given to the
            pruner when it takes them.

    Returns:
        {mask key: new 0/1 mask (float32)} of the kernels the pruner set.

    Raises:
        LotteryError: the pruner takes an option given to it under no
            name, or returns masks that fail a check (naming which).
    """
    function = get(pruner)
    _check_density(density, function, pruner)
    current = pruning.get_masks(model)
    excluded = tuple(k for k in current if k in pruning.excluded_keys(model, exclude))
    offered = dict(exclude=excluded, seed=seed, scope=scope,
                   layer_densities=layer_densities, min_per_layer=min_per_layer, **options)
    result = function(model, density, **_accepted(function, pruner, offered, options))
    # With densities of their own, some kernels keep more than `density`.
    asked = None if layer_densities else density
    return _checked(result, current, excluded, asked, pruner)


def chooses_amount(function):
    """Whether a pruner chooses how much it prunes: it declares `density=None`."""
    try:
        parameter = inspect.signature(function).parameters.get("density")
    except (TypeError, ValueError):  # a builtin without a signature
        return False
    return parameter is not None and parameter.default is None


def _check_density(density, function, pruner):
    if density is not None:
        ranking.check_density(density)
    elif not chooses_amount(function):
        raise LotteryError(
            f"the pruner {pruner!r} needs a density, the fraction in (0, 1] of "
            "the weights to keep (0.8 keeps 80 %)", param="density", value=density)


def _accepted(function, pruner, offered, own):
    """The options `function` declares, refusing one given that it lacks."""
    parameters = inspect.signature(function).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return offered
    names = {p.name for p in parameters}
    for key, value in offered.items():
        given = key in own or (key not in SILENT and value not in (OFFERED[key], {}))
        if key not in names and given:
            raise LotteryError(
                f"takes no {key}= (its options: "
                f"{', '.join(sorted(names - {'model', 'density'})) or 'none'}); "
                f"leave {key} out or choose another pruner", param="pruner",
                value=pruner)
    return {k: v for k, v in offered.items() if k in names}


def _checked(result, current, excluded, density, pruner):
    """`result` as float32 masks, or the first check it fails; `density`
    None skips the count (kernels with densities of their own)."""
    def bad(problem):
        raise LotteryError(f"returned masks that {problem}", param="pruner", value=pruner)

    if not hasattr(result, "items"):
        bad(f"are a {type(result).__name__}, not {{mask key: 0/1 array}}")
    new = {}
    for key, mask in result.items():
        if key not in current:
            bad(f"name {key!r}, which is no masked kernel (mask keys: "
                f"{', '.join(list(current)[:6])}{', ...' if len(current) > 6 else ''})")
        mask = np.asarray(mask)
        if mask.shape != current[key].shape:
            bad(f"give {key!r} the shape {mask.shape}, not its kernel's "
                f"{current[key].shape}")
        if not np.isin(mask, (0, 1)).all():
            bad(f"hold values other than 0 and 1 (in {key!r})")
        if np.any((mask > 0) & (current[key] == 0)):
            bad(f"revive pruned weights of {key!r}; masks only shrink")
        if key in excluded and np.any(mask != current[key]):
            bad(f"change {key!r}, which is excluded")
        new[key] = mask.astype(np.float32)
    ranked = [k for k in current if k not in excluded]
    kept = sum(int(np.count_nonzero(new.get(k, current[k]))) for k in ranked)
    before = sum(int(np.count_nonzero(current[k])) for k in ranked)
    total = sum(current[k].size for k in ranked)
    asked = None if density is None else ranking.kept_count(density, total)
    if asked is not None and asked + len(ranked) < kept < before:
        bad(f"keep {kept:,} weights where density {density:g} asks for {asked:,}")
    return new


def magnitude(model, density, *, exclude=(), scope="global", layer_densities=None,
              min_per_layer=0):
    """Magnitude pruning (the paper's): keeps the round(density × N) largest
    |kernel × mask| over all ranked kernels together (`scope="global"`) or
    each kernel to the density ("layerwise"; `layer_densities`, {layer or
    mask key: density}, for kernels with a density of their own). With
    `min_per_layer`, global pruning keeps at least that many weights of
    every kernel (its largest) within the same total."""
    masks, kernels = pruning.get_masks(model), pruning.get_kernels(model)
    names = [n for n in masks if n not in exclude]
    if not names:
        raise ValueError("exclude leaves no layer to prune.")
    own = {}
    for item, value in (layer_densities or {}).items():
        for key in pruning.excluded_keys(model, (item,)):
            own[key] = value
    try:
        return ranking.magnitude_masks(
            {n: kernels[n] for n in names}, {n: masks[n] for n in names}, density,
            scope=scope, layer_densities={k: v for k, v in own.items() if k in names},
            min_per_layer=min_per_layer)
    except ValueError as e:  # each names the argument and the value at fault
        if not min_per_layer:
            raise
        raise LotteryError(str(e).rstrip(".")) from None


def random_pruning(model, density, *, exclude=(), seed):
    """Random pruning (the paper's control): keeps round(density × N)
    weights chosen uniformly among the unpruned ones, seeded by `seed`."""
    masks = {k: m for k, m in pruning.get_masks(model).items() if k not in exclude}
    return ranking.random_masks(masks, density, seed=seed)


BUILT_IN = {"magnitude": magnitude, "random": random_pruning,
            "l1-filters": structured.l1_filters, "random-filters": structured.random_filters,
            "zscore": original.zscore, "conv-global": original.conv_global}
_PRUNERS.update(BUILT_IN)


def prune(model, density=None, *, scope="global", exclude=(), layer_densities=None,
          pruner="magnitude", min_per_layer=0, **options):
    """Prunes a model in place to an absolute density.

    By default by weight magnitude: ranks |kernel * mask| over all masked
    kernels together (or per kernel with `scope="layerwise"`) and keeps
    exactly `round(density * N)` of them, N being the prunable weights of
    the kernels not excluded. Already-pruned weights stay pruned; the
    stored kernel (and the optimizer's momentum) is zeroed where the new
    mask is 0. A kernel left with no weight (layer collapse) is named in a
    one-line warning.

    Example:

    >>> model = keras_lottery.models.build("resnet20")
    >>> keras_lottery.prune(model, 0.8)   # keep 80 % of all kernel weights
    >>> keras_lottery.prune(model, 0.64)  # a second round nests inside it

    Args:
        model: a model with masked layers (see `keras_lottery.masked`).
        density: fraction in (0, 1] of prunable weights to keep; absolute,
            i.e. relative to the unpruned model, not to the current density.
            None for a pruner that chooses how much it prunes
            (`pruner="l1-filters", config=..., level=...`).
        scope: "global" (one ranking over all layers, as the paper) or
            "layerwise" (each kernel to the same density).
        exclude: masked layer names (all their kernels) or mask keys
            ("sep/depthwise_kernel") to leave untouched and uncounted.
        layer_densities: with `scope="layerwise"`, {layer name or mask key:
            density} for kernels pruned to a density of their own.
        pruner: the criterion: "magnitude", "random", "l1-filters",
            "zscore", "conv-global", one you registered (`register_pruner`)
            or "package.module:function".
        min_per_layer: keep at least this many weights of every kernel
            (magnitude pruning, global scope), so that none collapses.
        **options: the pruner's own options (`seed=` for "random",
            `config=` and `level=` for "l1-filters").

    Returns:
        dict mask key -> new mask (numpy), for the kernels that were ranked.
    """
    new = new_masks(model, density, pruner=pruner, exclude=exclude, scope=scope,
                    layer_densities=layer_densities, min_per_layer=min_per_layer,
                    **options)
    current = pruning.get_masks(model)
    ranked = {k: new.get(k, m) for k, m in current.items()
              if k not in pruning.excluded_keys(model, exclude)}
    if all(np.array_equal(current[k], m) for k, m in new.items()):
        kept = sum(int(m.sum()) for m in ranked.values())
        total = sum(m.size for m in ranked.values())
        why = ("the pruner changed no mask; the density stays" if density is None
               else f"density {density:g} is not below the current")
        warnings.warn(f"Nothing pruned: {why} {kept / total:.6g} of the ranked "
                      "layers.", stacklevel=2)
    pruning.set_masks(model, new)
    message = collapse_warning(ranked, current, density)
    if message:
        warnings.warn(message, stacklevel=2)
    return new


def collapse_warning(masks, before, density):
    """The one-line warning about the kernels that `masks` ({mask key:
    mask}, the ranked ones after pruning) leave with no weight and that had
    some `before` (their masks until then); None if none."""
    empty = [key for key, mask in masks.items()
             if np.size(mask) and not np.any(mask) and np.any(before[key])]
    if not empty:
        return None
    shown = ", ".join(empty[:4]) + (", ..." if len(empty) > 4 else "")
    return (f"pruning to density {density:g} left {len(empty)} kernel(s) with no "
            f"weight ({shown}); their layers output only their bias: keep some "
            "with min_per_layer=1 (or more)")
