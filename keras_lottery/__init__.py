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
  `lowlr_rewind`, `random_prune`, `reinit`, each returning a `Run`, and
  `iterate` (rounds of any of them); `Run.open(path)`; the
  `IterationCheckpoint` callback; `save_state`/`load_state` (full training
  state, momentum included, checked); `recipe.make`;
- results: `keras_lottery.report` (tables) and `keras_lottery.plot`
  (figures, needs matplotlib; imported on use).
"""

__version__ = "0.1.0"

from keras_lottery import models
from keras_lottery import recipe
from keras_lottery.callbacks import IterationCheckpoint
from keras_lottery.conversion import masked
from keras_lottery.conversion import strip
from keras_lottery.layers import MaskedConv1D
from keras_lottery.layers import MaskedConv2D
from keras_lottery.layers import MaskedConv3D
from keras_lottery.layers import MaskedConv1DTranspose
from keras_lottery.layers import MaskedConv2DTranspose
from keras_lottery.layers import MaskedConv3DTranspose
from keras_lottery.layers import MaskedDepthwiseConv1D
from keras_lottery.layers import MaskedDepthwiseConv2D
from keras_lottery.layers import MaskedSeparableConv1D
from keras_lottery.layers import MaskedSeparableConv2D
from keras_lottery.layers import MaskedEinsumDense
from keras_lottery.layers import MaskedDense
from keras_lottery.errors import LotteryError
from keras_lottery.optimizer import LossScaleOptimizer
from keras_lottery.optimizer import MomentumSGD
from keras_lottery.procedures import finetune
from keras_lottery.procedures import iterate
from keras_lottery.procedures import lowlr_rewind
from keras_lottery.procedures import random_prune
from keras_lottery.procedures import reinit
from keras_lottery.procedures import rewind
from keras_lottery.procedures import rewind_lr
from keras_lottery.procedures import train
from keras_lottery.pruning import density
from keras_lottery.pruning import get_masks
from keras_lottery.pruning import magnitude_masks
from keras_lottery.pruning import prune
from keras_lottery.pruning import random_masks
from keras_lottery.pruning import set_masks
from keras_lottery.pruning import sparsity_report
from keras_lottery.runs import Run
from keras_lottery.state import load_state
from keras_lottery.state import save_state

__all__ = [
    "IterationCheckpoint",
    "LossScaleOptimizer",
    "LotteryError",
    "MaskedConv1D",
    "MaskedConv1DTranspose",
    "MaskedConv2D",
    "MaskedConv2DTranspose",
    "MaskedConv3D",
    "MaskedConv3DTranspose",
    "MaskedDense",
    "MaskedDepthwiseConv1D",
    "MaskedDepthwiseConv2D",
    "MaskedEinsumDense",
    "MaskedSeparableConv1D",
    "MaskedSeparableConv2D",
    "MomentumSGD",
    "Run",
    "density",
    "finetune",
    "get_masks",
    "iterate",
    "load_state",
    "lowlr_rewind",
    "magnitude_masks",
    "masked",
    "models",
    "prune",
    "random_masks",
    "random_prune",
    "recipe",
    "reinit",
    "rewind",
    "rewind_lr",
    "save_state",
    "set_masks",
    "sparsity_report",
    "strip",
    "train",
]
