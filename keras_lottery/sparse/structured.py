"""L1-norm filter pruning (Li et al. 2017), as the paper's original code does.

`prune_filters(model, config, level=i)` removes from each listed convolution
1 − (1 − f)^i of its filters: those with the smallest L1 norm of the masked
kernel over (kh, kw, cin), filters already zero not counted. How many is
rounded stochastically as the original rounds it: x = filters × fraction
becomes int(x) + (u < x − int(x)), u drawn from Python's `random` seeded
with 0 at each call, the layers taken in the order the network creates them
(a private `random.Random(0)`, so the global generator is left
alone). The model's layer order is the order the paper's networks create
their listed layers in.

Unlike the original, which zeroes the filter only, the channel's readers
(the next convolution's input channels, or the dense rows after a flatten
or a global pooling; `keras_lottery.sparse.channels`) are masked too: the
masked network then computes what the thinned one does (`thin`), and
`density` counts what the paper counts (a removed filter takes its own
kernel slice and the next layer's input slice). A listed layer whose
channels reach a residual `Add`, a `Concatenate` or anything else that is
not channel-wise before a reader is refused.

How it meets the pruning seam (`keras_lottery.sparse.pruners`): the amount
is the configuration's and the level's, not a density, so the procedures
call `structured_masks(model, config, level)`; the same masks are the
registered pruner "l1-filters" (options `config`, `level`), which takes no
density (`new_masks(model, pruner="l1-filters", config=..., level=...)`).
"""

import difflib
import random

import numpy as np

from keras_lottery import checks
from keras_lottery.errors import LotteryError
from keras_lottery.sparse import channels
from keras_lottery.sparse import filter_configs
from keras_lottery.sparse import pruning
from keras_lottery.sparse.layers import MASKED_LAYERS

_WHAT = "prune_filters()"
SEED = 0  # the original's random.seed(0) at each call


def prune_filters(model, config, *, level=1):
    """Prunes whole filters by L1 norm, in place, and their readers' input
    channels with them.

    Example:

    >>> model = keras_lottery.models.build("resnet56")
    >>> keras_lottery.prune_filters(model, "resnet56-B", level=2)
    >>> keras_lottery.prune_filters(model, {"conv_2": 0.5})  # your own

    Args:
        model: a Functional or Sequential model with masked layers.
        config: a configuration of the paper (`resnet56-A`, `resnet56-B`,
            `resnet110-A`, `resnet110-B`, `resnet34-A`, `resnet34-B`,
            `vgg16-A`; `keras_lottery.sparse.filter_configs`) or {layer
            name: fraction of its filters to remove}.
        level: i >= 1; a listed layer loses 1 − (1 − f)^i of its filters
            (the paper's structured points are levels 1 to 5, one shot each
            from the unpruned network).

    Returns:
        dict mask key -> new mask (numpy) of the layers it changed.

    Raises:
        LotteryError: an unknown configuration, a bad level or fraction, a
            listed layer missing, not a masked convolution, or whose
            channels reach an `Add`, a `Concatenate` or the model's output
            before a layer that reads them (one line, naming it).
    """
    new = structured_masks(model, config, level)
    pruning.set_masks(model, new)
    return new


def structured_masks(model, config, level=1, seed=None):
    """The masks `prune_filters` sets, computed without changing `model`;
    with a `seed`, the random control's instead: as many filters of each
    listed layer, chosen uniformly among its nonzero ones.

    Returns:
        {mask key: 0/1 float32 array} of the listed layers and their readers.
    """
    fractions = filter_configs.fractions(config)
    level = checks.count(level, "level", minimum=1,
                         message="expected a level, an integer >= 1")
    groups = _groups(model, fractions, config)
    masks, kernels = pruning.get_masks(model), pruning.get_kernels(model)
    new = {}
    rng = random.Random(SEED)
    chooser = None if seed is None else np.random.default_rng([int(seed), 0x46494C54])
    for group in groups:  # in creation order: it decides the draws
        key = group.layer.name
        fraction = 1.0 - (1.0 - fractions[key]) ** level
        dropped = smallest_filters(kernels[key] * masks[key], fraction, rng, chooser)
        new[key] = new.get(key, masks[key].copy())
        new[key][..., dropped] = 0
        for reader in group.readers:
            name = reader.layer.name
            new[name] = new.get(name, masks[name].copy())
            new[name][..., reader.rows[dropped].reshape(-1), :] = 0
    return {k: m.astype(np.float32) for k, m in new.items()}


def smallest_filters(kernel, fraction, rng, chooser=None):
    """The output filters (last axis) of `kernel` to remove: the smallest
    L1 norms among the nonzero filters, as many as nonzero × `fraction`
    rounded stochastically with one draw of `rng`; sorted indices. With a
    `chooser` (a numpy generator), as many chosen uniformly at random."""
    norms = np.abs(kernel.astype(np.float64)).reshape(-1, kernel.shape[-1]).sum(axis=0)
    alive = np.flatnonzero(norms > 0)
    x = len(alive) * fraction
    count = int(x) + (rng.random() < x - int(x))
    if chooser is not None:
        return np.sort(chooser.choice(alive, size=count, replace=False))
    ranked = alive[np.argsort(norms[alive], kind="stable")]
    return np.sort(ranked[:count])


def l1_filters(model, density=None, *, config=None, level=1):
    """The pruner "l1-filters": `structured_masks(model, config, level)`.

    It chooses how much it prunes (the configuration and the level say), so
    it takes no density: `prune(model, pruner="l1-filters",
    config="resnet56-B", level=2)`.
    """
    if density is not None:
        raise LotteryError(
            "is not used by the pruner l1-filters (its config and level say how "
            "much it prunes); leave density out", param="density", value=density)
    if config is None:
        raise LotteryError("the pruner l1-filters needs config= (a configuration's "
                           "name or {layer name: fraction})", param="config", value=None)
    return structured_masks(model, config, level)


def random_filters(model, density=None, *, config=None, level=1, seed=None):
    """The pruner "random-filters", the random control of filter pruning:
    as many filters as "l1-filters" removes from each listed layer, chosen
    uniformly among its nonzero ones (seeded by `seed`), their readers'
    input channels with them."""
    l1_filters(model, density, config=config, level=level)  # the same checks
    if seed is None:
        raise LotteryError("the pruner random-filters needs seed=", param="seed", value=None)
    return structured_masks(model, config, level, seed=seed)


def _groups(model, fractions, config):
    """The `Group` of each listed layer, in the order the model creates
    them, or the first reason one cannot lose filters."""
    graph = channels.Graph(model, _WHAT)

    def refuse(message):
        raise LotteryError(message, param="config", value=config)

    names = [op.name for op in graph.operations]
    for name in fractions:
        layer = graph.layer(name)
        if layer is None and isinstance(config, str):
            refuse(f"names {name!r}, which is no layer of model {model.name!r}; "
                   f"{config} is a configuration of {config.split('-')[0]}")
        if layer is None:
            close = difflib.get_close_matches(name, names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            refuse(f"names {name!r}, which is no layer of model {model.name!r}{hint}")
        if not isinstance(layer, channels.CONVOLUTIONS) or not channels.is_kernel_layer(layer):
            refuse(f"layer {name!r} is a {type(layer).__name__}: only a "
                   "convolution (channels last, one group) loses filters")
        if not isinstance(layer, MASKED_LAYERS):
            refuse(f"layer {name!r} is not masked; convert the model with "
                   "keras_lottery.masked(model) first")
    groups = [graph.group(op) for op in graph.operations if op.name in fractions]
    for group in groups:
        if group.blocker is not None:
            refuse(f"the channels of layer {group.layer.name!r} reach {group.blocker} "
                   "before a layer that reads them, so its filters cannot go alone "
                   "(only channel-wise layers may come between: batch norm, "
                   "activations, padding, pooling, dropout)")
    return groups
