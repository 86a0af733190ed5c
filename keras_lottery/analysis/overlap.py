"""How much the masks of runs agree: `mask_overlap(runs)`.

For two masks A and B (the sets of surviving weights) of a layer, or of the
whole network ("total"), the Jaccard index is |A ∩ B| / |A ∪ B| (1: the same
mask, 0: disjoint), and the fraction of B's survivors that A keeps is
|A ∩ B| / |B|. A layer where the fraction is undefined (nothing survives in
B, or in either) reports None.
"""

import dataclasses
import itertools

import numpy as np

from keras_lottery.analysis import masks as masks_lib
from keras_lottery.runs import sources
from keras_lottery.errors import LotteryError

TOTAL = "total"
COLUMNS = ("run_a", "run_b", "layer", "kept_a", "kept_b", "shared",
           "jaccard", "b_kept_by_a", "a_kept_by_b")


def counts(a, b):
    """{layer: (|A|, |B|, |A ∩ B|, |A ∪ B|)} of two dicts of 0/1 masks of
    the same keys and shapes, with their sum under "total"."""
    found = {}
    for key, mask in a.items():
        x, y = np.asarray(mask) != 0, np.asarray(b[key]) != 0
        found[key] = (int(x.sum()), int(y.sum()), int((x & y).sum()), int((x | y).sum()))
    found[TOTAL] = tuple(int(sum(c[i] for c in found.values())) for i in range(4))
    return found


def measures(kept_a, kept_b, shared, union):
    """{"kept_a", "kept_b", "shared", "jaccard", "b_kept_by_a",
    "a_kept_by_b"} of one layer's counts."""
    return {"kept_a": kept_a, "kept_b": kept_b, "shared": shared,
            "jaccard": _ratio(shared, union), "b_kept_by_a": _ratio(shared, kept_b),
            "a_kept_by_b": _ratio(shared, kept_a)}


def _ratio(part, whole):
    return part / whole if whole else None


@dataclasses.dataclass
class MaskOverlap:
    """The overlap of every pair of runs' masks.

    Attributes:
        runs: the `Run`s compared.
        iteration: the checkpoint whose masks were read.
        layers: the mask keys, in model order.
        pairs: {(i, j): {layer or "total": `measures`}} for i < j; A is run
            i and B run j.
    """

    runs: list
    iteration: object
    layers: list
    pairs: dict

    def matrix(self, measure="jaccard", layer=TOTAL):
        """A len(runs) × len(runs) list of lists of one measure: `M[i][j]` is
        "jaccard" of runs i and j, or "kept" (the fraction of run j's
        survivors that run i keeps); 1 on the diagonal."""
        n = len(self.runs)
        found = [[1.0 if i == j else None for j in range(n)] for i in range(n)]
        for (i, j), layers in self.pairs.items():
            m = layers[layer]
            if measure == "jaccard":
                found[i][j] = found[j][i] = m["jaccard"]
            else:
                found[i][j], found[j][i] = m["b_kept_by_a"], m["a_kept_by_b"]
        return found

    def rows(self, per_layer=False):
        """Table rows (`COLUMNS`): the total of each pair, and with
        `per_layer` every layer's first."""
        names = [str(run.path) for run in self.runs]
        found = []
        for (i, j), layers in self.pairs.items():
            shown = (self.layers if per_layer else []) + [TOTAL]
            found += [dict(run_a=names[i], run_b=names[j], layer=layer, **layers[layer])
                      for layer in shown]
        return found

    def collapsed(self):
        """{run path: [mask keys]} of the runs whose masks keep no weight
        of some kernel (layer collapse), in order."""
        found = {}
        for (i, j), layers in self.pairs.items():
            for layer in self.layers:
                for index, kept in ((i, "kept_a"), (j, "kept_b")):
                    if layers[layer][kept] == 0:
                        found.setdefault(index, set()).add(layer)
        return {str(self.runs[i].path): [k for k in self.layers if k in keys]
                for i, keys in sorted(found.items())}

    def to_dict(self):
        """The whole result as JSON-ready values."""
        return {"runs": [str(run.path) for run in self.runs],
                "iteration": self.iteration, "layers": self.layers,
                "pairs": [{"a": i, "b": j, "layers": layers}
                          for (i, j), layers in self.pairs.items()],
                "collapsed": self.collapsed()}


def mask_overlap(runs, iteration="final"):
    """The overlap of the masks of every pair of runs, per layer and total.

    Compare masks from different k, rewinding against fine-tuning, seeds,
    or rounds of `iterate`: the Jaccard index and the fraction of one run's
    survivors that the other keeps.

    Example:

    >>> result = keras_lottery.mask_overlap(["runs/lenet300/rewind-k20-d20-s0",
    ...                                      "runs/lenet300/finetune-k20-d20-s0"])
    >>> result.pairs[(0, 1)]["total"]["jaccard"]
    0.71

    Args:
        runs: two or more `Run`s, run directories, folders of runs or study
            files (their runs), of one architecture.
        iteration: whose masks: "final", or a checkpoint iteration every
            run saved.

    Returns:
        A `MaskOverlap`.

    Raises:
        LotteryError: fewer than two runs, runs of different
            architectures, or an iteration a run did not save.
    """
    opened = sources.expand(runs)
    if len(opened) < 2:
        raise LotteryError(
            f"need two or more runs to compare masks, got {len(opened)}; name "
            "more runs, or a study", param="runs",
            value=[str(run.path) for run in opened],
        )
    found = masks_lib.masks_of(opened, iteration)
    pairs = {}
    for i, j in itertools.combinations(range(len(opened)), 2):
        pairs[(i, j)] = {layer: measures(*c) for layer, c in counts(found[i], found[j]).items()}
    return MaskOverlap(opened, iteration, list(found[0]), pairs)
