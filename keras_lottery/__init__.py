"""keras_lottery: lottery-ticket pruning, rewinding and fine-tuning in Keras 3.

The public API:

- layers: `MaskedConv1D`/`2D`/`3D`, their `...Transpose` twins,
  `MaskedDepthwiseConv1D`/`2D`, `MaskedSeparableConv1D`/`2D`,
  `MaskedEinsumDense`, `MaskedDense`, and the attention layers
  `MaskedMultiHeadAttention`, `MaskedGroupQueryAttention`;
- pruning: `prune`, `density`, `get_masks`, `get_kernels`, `set_masks`,
  `sparsity_report`, the pure `magnitude_masks` and `random_masks`, and
  `register_pruner` (a pruning criterion of your own);
- structured pruning: `prune_filters` (L1-norm filters, the paper's
  configurations or your own) and `thin` (a plain model without the pruned
  filters: fewer parameters and FLOPs);
- your own models: `masked`, `strip`, `load_model` (a `.keras` file with
  masked layers; plain `keras.models.load_model` works too after
  `import keras_lottery`);
- optimizers: `MomentumSGD` (TF1 momentum update) and `LossScaleOptimizer`
  (float16 loss scaling in which a skipped step still counts);
- architectures: `keras_lottery.models.build(name)`, `models.available()`;
- runs: `train`, `rewind`, `rewind_lr`, `finetune`, the controls
  `lowlr_rewind`, `random_prune`, `reinit`, `branch` (a copy from k,
  unpruned), each returning a `Run`, and `iterate` (rounds of any that
  prunes); `Run.open(path)` and its typed `RunSpec` and `RunRecord`
  (run.json); the `IterationCheckpoint` callback; `compile_model` (how
  every run compiles); `save_state`/`load_state` (full training state, momentum
  included, checked); `recipe.make`;
- results: `keras_lottery.report` (tables) and `keras_lottery.plot`
  (figures, needs matplotlib);
- analyses: `stability` (instability analysis: linear mode connectivity of
  copies trained from k) and `mask_overlap`; `keras_lottery.analysis` also
  has per-layer densities and the figures.

Names are imported on first use, so `import keras_lottery` (and the
`lottery` command's help) does not load TensorFlow until something needs it.
"""

import importlib

from keras_lottery import saving
from keras_lottery.version import __version__  # noqa: F401  (the package attribute)

# Public name -> the module that defines it.
_PUBLIC = {
    "IterationCheckpoint": "training.callbacks",
    "LossScaleOptimizer": "training.optimizer",
    "LotteryError": "errors",
    "MaskedConv1D": "sparse.layers",
    "MaskedConv2D": "sparse.layers",
    "MaskedConv3D": "sparse.layers",
    "MaskedConv1DTranspose": "sparse.layers",
    "MaskedConv2DTranspose": "sparse.layers",
    "MaskedConv3DTranspose": "sparse.layers",
    "MaskedDepthwiseConv1D": "sparse.layers",
    "MaskedDepthwiseConv2D": "sparse.layers",
    "MaskedSeparableConv1D": "sparse.layers",
    "MaskedSeparableConv2D": "sparse.layers",
    "MaskedEinsumDense": "sparse.layers",
    "MaskedDense": "sparse.layers",
    "MaskedGroupQueryAttention": "sparse.layers",
    "MaskedMultiHeadAttention": "sparse.layers",
    "MomentumSGD": "training.optimizer",
    "Run": "runs.run",
    "RunRecord": "spec.record",
    "RunSpec": "spec.runspec",
    "branch": "procedures",
    "compile_model": "training.compile",
    "density": "sparse.pruning",
    "finetune": "procedures",
    "get_kernels": "sparse.pruning",
    "get_masks": "sparse.pruning",
    "iterate": "procedures",
    "load_model": "saving",
    "load_state": "training.state",
    "lowlr_rewind": "procedures",
    "magnitude_masks": "sparse.ranking",
    "mask_overlap": "analysis",
    "masked": "sparse.conversion",
    "prune": "sparse.pruners",
    "prune_filters": "sparse.structured",
    "random_masks": "sparse.ranking",
    "random_prune": "procedures",
    "register_pruner": "sparse.pruners",
    "reinit": "procedures",
    "rewind": "procedures",
    "rewind_lr": "procedures",
    "save_state": "training.state",
    "set_masks": "sparse.pruning",
    "sparsity_report": "sparse.report",
    "stability": "analysis",
    "strip": "sparse.conversion",
    "thin": "sparse.thinning",
    "train": "procedures",
}
# Public submodule name -> the module it is.
_SUBMODULES = {"analysis": "analysis", "data": "data", "models": "models",
               "plot": "results.figures", "recipe": "spec.recipe",
               "report": "results.tables"}

__all__ = sorted([*_PUBLIC, *_SUBMODULES])

# Saved models with masked layers load once Keras is imported, without a
# keras_lottery name being touched first (and without importing Keras here).
saving.register_when_keras_loads()


def __getattr__(name):
    if name in _PUBLIC:
        value = getattr(_import(_PUBLIC[name]), name)
    elif name in _SUBMODULES:
        value = _import(_SUBMODULES[name])
    else:
        raise AttributeError(f"module 'keras_lottery' has no attribute {name!r}")
    globals()[name] = value  # later lookups skip this function
    return value


def _import(module):
    try:
        return importlib.import_module(f"keras_lottery.{module}")
    except ImportError as e:  # TensorFlow is not a hard requirement
        from keras_lottery import backends

        problem = backends.missing()
        if problem is None:
            raise
        raise ImportError(problem) from e


def __dir__():
    return sorted(set(globals()) | set(__all__))
