"""Conv-2, Conv-4 and Conv-6 of the lottery-ticket paper (Frankle & Carbin
2019, Figure 2): VGG-like networks scaled down for CIFAR-10.

`conv<n>` has n/2 modules of two 3×3 SAME ReLU convolutions (64, then 128,
then 256 filters) each followed by a 2×2 max-pool, then dense 256 and 256
(ReLU) and a linear classifier. Kernels use Gaussian Glorot init as the paper
says (Keras's `GlorotNormal`, truncated at two standard deviations), biases
are on and start at zero; there is no batch norm or dropout. Names count the
weight layers as VGG does: `conv_1..conv_<n>`, `pool_<module>`, `flatten`,
then `fc_<n+1>..fc_<n+3>`.
"""

import keras

from keras_lottery.sparse.layers import MaskedConv2D
from keras_lottery.sparse.layers import MaskedDense
from keras_lottery.models import decay
from keras_lottery.models import inputs

# The paper trains these nets with Adam and states no weight decay for them
# (Figure 2 and its appendix give only the optimizer and learning rate).
WEIGHT_DECAY = 0.0
MODULE_FILTERS = (64, 128, 256)
HIDDEN_UNITS = (256, 256)
DEPTHS = (2, 4, 6)


def input_rule(depth):
    """Images big enough for the `depth / 2` max-pools."""
    return inputs.Image(pools=_modules(depth))


def conv_net(depth, num_classes=10, input_shape=(32, 32, 3), weight_decay=None):
    """Builds Conv-`depth` with every kernel masked.

    Example:

    >>> model = conv_net(2, input_shape=(28, 28, 1))
    >>> [layer.name for layer in model.layers]
    ['image', 'conv_1', 'conv_2', 'pool_1', 'flatten', 'fc_3', 'fc_4', 'fc_5']

    Args:
        depth: 2, 4 or 6 convolutions.
        num_classes: classifier outputs (logits).
        input_shape: image shape, channels last, at least 2^(depth/2) a side.
        weight_decay: `wd` of wd·Σv²/2 on kernels and biases; None is
            `WEIGHT_DECAY` (none), 0 adds no regularizer.

    Returns:
        A functional `keras.Model` named `"conv<depth>"`.
    """
    name = f"conv{depth}"
    input_shape = inputs.check(name, input_shape, input_rule(depth))
    l2 = decay.regularizer(decay.resolve(weight_decay, WEIGHT_DECAY))

    def layer_args(k):
        # A fresh initializer per layer, as Keras would make from a string.
        return dict(
            kernel_initializer=keras.initializers.GlorotNormal(),
            kernel_regularizer=l2,
            bias_regularizer=l2,
            name=f"{'conv' if k <= depth else 'fc'}_{k}",
        )

    x = image = keras.Input(shape=input_shape, name="image")
    k = 0
    for module, filters in enumerate(MODULE_FILTERS[: _modules(depth)], 1):
        for _ in range(2):
            k += 1
            x = MaskedConv2D(
                filters, 3, padding="same", activation="relu", **layer_args(k)
            )(x)
        x = keras.layers.MaxPooling2D(2, name=f"pool_{module}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    for units in HIDDEN_UNITS:
        k += 1
        x = MaskedDense(units, activation="relu", **layer_args(k))(x)
    logits = MaskedDense(num_classes, **layer_args(k + 1))(x)
    return keras.Model(image, logits, name=name)


def _modules(depth):
    if depth not in DEPTHS:
        raise ValueError(f"Conv depth must be one of {DEPTHS}, got {depth!r}.")
    return depth // 2
