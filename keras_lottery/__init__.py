"""keras_lottery: lottery-ticket pruning, rewinding and fine-tuning in Keras 3.

The public API:

- layers: `MaskedConv2D`, `MaskedDense`;
- pruning: `prune`, `density`, `get_masks`, `set_masks`, `sparsity_report`,
  and the pure `magnitude_masks`;
- your own models: `masked`, `strip`;
- optimizer: `MomentumSGD` (TF1 momentum update);
- architectures: `keras_lottery.models.build(name)`, `models.available()`.
"""

__version__ = "0.1.0"

from keras_lottery import models
from keras_lottery.conversion import masked
from keras_lottery.conversion import strip
from keras_lottery.layers import MaskedConv2D
from keras_lottery.layers import MaskedDense
from keras_lottery.optimizer import MomentumSGD
from keras_lottery.pruning import density
from keras_lottery.pruning import get_masks
from keras_lottery.pruning import magnitude_masks
from keras_lottery.pruning import prune
from keras_lottery.pruning import set_masks
from keras_lottery.pruning import sparsity_report

__all__ = [
    "MaskedConv2D",
    "MaskedDense",
    "MomentumSGD",
    "density",
    "get_masks",
    "magnitude_masks",
    "masked",
    "models",
    "prune",
    "set_masks",
    "sparsity_report",
    "strip",
]
