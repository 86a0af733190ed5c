"""The original code's other pruning functions, as registered pruners.

The original (Renda et al.'s released code) chose a pruning function by a
name (`--lottery_pruning_method`); each family is a
registered pruner or argument here, and `keras_lottery.spec.pruning_methods`
reads a name into them (`--pruning-method` on the command line):

| name | here |
|---|---|
| `prune_all_to_global_<p>` (the paper's) | pruner "magnitude", density p % |
| `zprune_all_to_global_<p>` | pruner "zscore", density p % |
| `prune_global_<p>[_fc]` | pruner "conv-global", remove=p % [fc=True] |
| `zprune_global_<p>[_fc]` | pruner "conv-global", remove=p %, zscore=True |
| `prune_<net>_<A|B>[_<i>]` | filters "<net>-<A|B>", level i (default 1) |

What differs from the original: counts are exact (the k smallest scores,
ties in model order) where it thresholded at an interpolated percentile
(within a weight or two of it); `_fc` does not leak between calls.
"""

import numpy as np

from keras_lottery.errors import LotteryError
from keras_lottery.sparse import pruning
from keras_lottery.sparse import ranking

def zscores(kernel, mask):
    """|z| of the masked kernel's absolute weights, standardised per layer as
    the original does: for a 4-D kernel along the output channels at each
    (kh, kw, cin) position, for a 2-D one over the whole matrix; pruned
    entries score 0."""
    magnitude = np.abs(np.asarray(kernel, np.float64) * mask)
    axis = -1 if magnitude.ndim == 4 else None
    mean = magnitude.mean(axis=axis, keepdims=axis is not None)
    std = magnitude.std(axis=axis, keepdims=axis is not None)
    z = np.abs((magnitude - mean) / np.where(std > 0, std, 1.0))
    return z * (mask > 0)


def zscore(model, density, *, exclude=()):
    """`zprune_all_to_global_<p>`: magnitude pruning to `density` over all
    ranked kernels together, scored by the z-scores of their absolute
    weights (`zscores`), so the very small weights score high as well."""
    masks, kernels = pruning.get_masks(model), pruning.get_kernels(model)
    names = [k for k in masks if k not in exclude]
    scores = {k: zscores(kernels[k], masks[k]) for k in names}
    return ranking.magnitude_masks(scores, {k: masks[k] for k in names}, density)


def conv_global(model, density=None, *, remove, fc=False, zscore=False, exclude=()):
    """`prune_global_<p>[_fc]` (and `zprune_global_...` with `zscore`):
    removes the fraction `remove` of the weights still unpruned in the
    layers whose name holds "conv" (with `fc`, also "fc"), the smallest by
    |w| (or z-score); a relative amount, so it takes no density."""
    if density is not None:
        raise LotteryError("is not used by the pruner conv-global (remove= says how "
                           "much it prunes); leave density out", param="density",
                           value=density)
    if not 0 < remove < 1:
        raise LotteryError("expected a fraction in (0, 1) of the unpruned weights",
                           param="remove", value=remove)
    masks, kernels = pruning.get_masks(model), pruning.get_kernels(model)
    words = ("conv", "fc") if fc else ("conv",)
    names = [k for k in masks if k not in exclude and any(w in k for w in words)]
    if not names:
        raise LotteryError(f"no masked layer's name holds {' or '.join(words)}",
                           param="pruner", value="conv-global")
    alive = sum(int(np.count_nonzero(masks[k])) for k in names)
    total = sum(masks[k].size for k in names)
    keep = (alive - round(remove * alive)) / total
    scores = {k: zscores(kernels[k], masks[k]) if zscore else kernels[k] for k in names}
    return ranking.magnitude_masks(scores, {k: masks[k] for k in names}, keep)
