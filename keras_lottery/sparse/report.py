"""How sparse a model is, layer by layer: `sparsity_report`."""

import collections

import keras
import numpy as np

from keras_lottery.sparse import channels
from keras_lottery.sparse import flops as flops_lib
from keras_lottery.sparse.pruning import masked_kernels


LayerDensity = collections.namedtuple(
    "LayerDensity", ["name", "shape", "total", "remaining", "density"]
)


class SparsityReport:
    """Per-layer and total counts of prunable weights; `print()` it.

    Attributes:
        rows: list of `LayerDensity(name, shape, total, remaining, density)`,
            one per masked layer, in model order.
        total: a `LayerDensity` named "total" over all masked layers.
        filters: {layer name: (filters kept, filters)} of each masked
            convolution (a filter is kept while its mask keeps any weight of
            it), or None for a report made from masks alone.
        layer_flops: {mask key: `Flops(kept, total)`} of each masked kernel:
            multiply-accumulates for one example (see
            `keras_lottery.sparse.flops` for the convention), or None.
        flops: the model's `Flops` (every convolution and dense layer,
            unmasked ones in full), or None.
        collapsed: the names of the rows with no weight left (layer
            collapse: their layers output only their bias); marked
            "no weight" when printed.
    """

    def __init__(self, rows, filters=None, layer_flops=None, flops=None):
        self.rows = list(rows)
        self.collapsed = [r.name for r in self.rows if r.total and not r.remaining]
        total = sum(r.total for r in self.rows)
        remaining = sum(r.remaining for r in self.rows)
        self.total = LayerDensity(
            "total", None, total, remaining, remaining / total
        )
        self.filters = filters
        self.layer_flops = layer_flops
        self.flops = flops

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
            ) + self._extra(r.name)
            for r in self
        ]
        if self.filters is not None:
            header += ("filters", "flops")
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

    def _extra(self, name):
        """The filters and flops cells of a row (none without them)."""
        if self.filters is None:
            return ()
        flops = self.flops if name == "total" else self.layer_flops.get(name)
        kept = "" if flops is None or flops.kept is None else f"{flops.kept:,}"
        filters = self.filters.get(name) if name != "total" else None
        return ("" if filters is None else f"{filters[0]}/{filters[1]}", kept)

    def __repr__(self):
        return str(self)


def sparsity_report(model):
    """Returns a `SparsityReport` of the model's masked kernels (one row per
    mask key, see `get_masks`), with the filters each masked convolution
    keeps and the FLOPs (multiply-accumulates) of each kernel and of the
    model.

    Example:

    >>> print(keras_lottery.sparsity_report(model))
    layer     shape        total  remaining  density  filters      flops
    ...
    >>> report.flops.kept / report.flops.total  # the FLOPs left
    """
    rows, filters, layer_flops = [], {}, {}
    for name, (layer, kernel) in masked_kernels(model).items():
        mask = keras.ops.convert_to_numpy(kernel.mask)
        remaining = int(np.count_nonzero(mask))
        rows.append(
            LayerDensity(
                name, tuple(mask.shape), mask.size, remaining,
                remaining / mask.size,
            )
        )
        layer_flops[name] = flops_lib.kernel_flops(layer, remaining, mask.size)
        if isinstance(layer, channels.CONVOLUTIONS):
            kept = np.any(mask.reshape(-1, mask.shape[-1]) != 0, axis=0)
            filters[name] = (int(kept.sum()), mask.shape[-1])
    return SparsityReport(rows, filters, layer_flops, flops_lib.model_flops(model))
