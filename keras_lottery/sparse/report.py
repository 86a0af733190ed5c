"""How sparse a model is, layer by layer: `sparsity_report`."""

import collections

import numpy as np

from keras_lottery.sparse.pruning import get_masks


LayerDensity = collections.namedtuple(
    "LayerDensity", ["name", "shape", "total", "remaining", "density"]
)


class SparsityReport:
    """Per-layer and total counts of prunable weights; `print()` it.

    Attributes:
        rows: list of `LayerDensity(name, shape, total, remaining, density)`,
            one per masked layer, in model order.
        total: a `LayerDensity` named "total" over all masked layers.
        collapsed: the names of the rows with no weight left (layer
            collapse: their layers output only their bias); marked
            "no weight" when printed.
    """

    def __init__(self, rows):
        self.rows = list(rows)
        self.collapsed = [r.name for r in self.rows if r.total and not r.remaining]
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
        body = [fmt(c) + ("  no weight" if r.name in self.collapsed else "")
                for c, r in zip(lines[:-1], self.rows)]
        return "\n".join([fmt(header), rule] + body + [rule, fmt(lines[-1])])

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
