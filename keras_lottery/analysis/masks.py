"""The masks of runs, read from their checkpoints, and per-layer density.

Runs compared layer by layer must share an architecture: the same
architecture name (and, for models of your own, the same config) and the
same mask keys and shapes (lenet300 on 8×8 digits and on 32×32 images are
different networks).
"""

import numpy as np

from keras_lottery.sparse import pruning
from keras_lottery.sparse import report
from keras_lottery.runs import sources
from keras_lottery.errors import LotteryError


def check_same_architecture(runs, param="runs"):
    """Raises unless every run's spec has the first one's architecture."""
    first = runs[0].spec
    for run in runs[1:]:
        spec = run.spec
        if (spec.arch, spec.model) != (first.arch, first.model):
            raise _different(runs[0], run, first.arch, spec.arch, param)


def masks_of(runs, iteration="final", param="runs"):
    """[{mask key: 0/1 array}] of each run at `iteration` (a checkpoint
    iteration every run saved, or "final"), checked to share layers."""
    check_same_architecture(runs, param)
    found = [pruning.get_masks(run.load_model(iteration)) for run in runs]
    shapes = {k: v.shape for k, v in found[0].items()}
    for run, masks in zip(runs[1:], found[1:]):
        if {k: v.shape for k, v in masks.items()} != shapes:
            raise _different(runs[0], run, "its layers", "other layers", param)
    return found


def layer_densities(runs, iteration="final"):
    """The `SparsityReport` (per-layer density) of each run's masks.

    Example:

    >>> for report in keras_lottery.analysis.layer_densities(["runs/a", "runs/b"]):
    ...     print(report)

    Args:
        runs: `Run`s, run directories, folders of runs or study files, of
            one architecture.
        iteration: the checkpoint to read the masks of ("final" or an
            iteration every run saved).

    Returns:
        A list of `keras_lottery.sparse.report.SparsityReport`, one per run, in
        the order of `sources.expand(runs)`.
    """
    opened = sources.expand(runs)
    return [_report(masks) for masks in masks_of(opened, iteration)]


def _report(masks):
    rows = [report.LayerDensity(name, tuple(mask.shape), mask.size,
                                 int(np.count_nonzero(mask)),
                                 int(np.count_nonzero(mask)) / mask.size)
            for name, mask in masks.items()]
    return report.SparsityReport(rows)


def _different(a, b, mine, theirs, param):
    return LotteryError(
        f"{a.path} ({mine}) and {b.path} ({theirs}) are different "
        "architectures; compare runs of one architecture",
        param=param, value=[str(a.path), str(b.path)],
    )
