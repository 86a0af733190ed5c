"""keras_lottery: lottery-ticket pruning, rewinding and fine-tuning in Keras 3.

The public API:

- layers: `MaskedConv1D`/`2D`/`3D`, their `...Transpose` twins,
  `MaskedDepthwiseConv1D`/`2D`, `MaskedSeparableConv1D`/`2D`,
  `MaskedEinsumDense`, `MaskedDense`;
- pruning: `prune`, `density`, `get_masks`, `set_masks`, `sparsity_report`,
  and the pure `magnitude_masks` and `random_masks`;
- your own models: `masked`, `strip`;
- optimizers: `MomentumSGD` (TF1 momentum update) and `LossScaleOptimizer`
  (float16 loss scaling in which a skipped step still counts);
- architectures: `keras_lottery.models.build(name)`, `models.available()`;
- runs: `train`, `rewind`, `rewind_lr`, `finetune`, the controls
  `lowlr_rewind`, `random_prune`, `reinit`, `branch` (a copy from k,
  unpruned), each returning a `Run`, and `iterate` (rounds of any that
  prunes); `Run.open(path)` and its typed
  `RunSpec`; the `IterationCheckpoint` callback; `compile_model` (how every
  run compiles); `save_state`/`load_state` (full training state, momentum
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

from keras_lottery.version import __version__  # noqa: F401  (the package attribute)

# Public name -> the module that defines it.
_PUBLIC = {
    "IterationCheckpoint": "callbacks",
    "LossScaleOptimizer": "optimizer",
    "LotteryError": "errors",
    "MaskedConv1D": "layers",
    "MaskedConv2D": "layers",
    "MaskedConv3D": "layers",
    "MaskedConv1DTranspose": "layers",
    "MaskedConv2DTranspose": "layers",
    "MaskedConv3DTranspose": "layers",
    "MaskedDepthwiseConv1D": "layers",
    "MaskedDepthwiseConv2D": "layers",
    "MaskedSeparableConv1D": "layers",
    "MaskedSeparableConv2D": "layers",
    "MaskedEinsumDense": "layers",
    "MaskedDense": "layers",
    "MomentumSGD": "optimizer",
    "Run": "runs",
    "RunSpec": "spec",
    "branch": "procedures",
    "compile_model": "training",
    "density": "pruning",
    "finetune": "procedures",
    "get_masks": "pruning",
    "iterate": "procedures",
    "load_state": "state",
    "lowlr_rewind": "procedures",
    "magnitude_masks": "pruning",
    "mask_overlap": "analysis",
    "masked": "conversion",
    "prune": "pruning",
    "random_masks": "pruning",
    "random_prune": "procedures",
    "reinit": "procedures",
    "rewind": "procedures",
    "rewind_lr": "procedures",
    "save_state": "state",
    "set_masks": "pruning",
    "sparsity_report": "pruning",
    "stability": "analysis",
    "strip": "conversion",
    "train": "procedures",
}
_SUBMODULES = ("analysis", "data", "models", "plot", "recipe", "report")

__all__ = sorted([*_PUBLIC, *_SUBMODULES])


def __getattr__(name):
    if name in _PUBLIC:
        module = importlib.import_module(f"keras_lottery.{_PUBLIC[name]}")
        value = getattr(module, name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"keras_lottery.{name}")
    else:
        raise AttributeError(f"module 'keras_lottery' has no attribute {name!r}")
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
