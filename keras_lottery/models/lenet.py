"""LeNet-300-100, the fully-connected network of the lottery-ticket paper.

Frankle & Carbin (2019) prune it on MNIST: flatten the image, two hidden
layers of 300 and 100 ReLU units, a linear classifier (LeCun et al. 1998).
Here it serves small real datasets such as the bundled 8×8 digits, and works
on any input shape: MNIST's 28×28×1 (266,200 prunable weights, the paper's
266K), 32×32×3, or flat `(D,)` vectors. Kernels use Gaussian Glorot init as
in the paper (Keras's `GlorotNormal`, truncated at two standard deviations),
biases start at zero. There is no normalization layer: images arrive standardized
per image from the data pipeline, as for the ResNets. Names: `fc_1`, `fc_2`,
`fc_3`, following VGG's `fc_<k>`.
"""

import keras

from keras_lottery.sparse.layers import MaskedDense
from keras_lottery.models import decay
from keras_lottery.models import inputs

# The paper trains LeNet without weight decay (Adam, 50K iterations on
# 60K MNIST images). Here it trains with the CIFAR recipe's SGD and momentum
# on far fewer images (1,437 digits), so a light L2 (half ResNet's 2e-4) damps
# overfitting; it is the `wd` of wd * sum(v**2) / 2, as for the other nets.
WEIGHT_DECAY = 1e-4
HIDDEN_UNITS = (300, 100)
# Flatten makes any shape a vector; on a flat (N, D) input it is a no-op.
INPUT_RULE = inputs.AnyShape()


def lenet300(num_classes=10, input_shape=(32, 32, 3), weight_decay=None):
    """Builds LeNet-300-100 with every kernel masked.

    Example:

    >>> model = lenet300(input_shape=(8, 8, 1))
    >>> [layer.name for layer in model.layers]
    ['image', 'flatten', 'fc_1', 'fc_2', 'fc_3']

    Args:
        num_classes: classifier outputs (logits).
        input_shape: any shape of one example: an image, channels last, or
            `(D,)` for flat vectors.
        weight_decay: `wd` of wd·Σv²/2 on kernels and biases; None is
            `WEIGHT_DECAY`, 0 adds no regularizer.

    Returns:
        A functional `keras.Model` named `"lenet300"`.
    """
    input_shape = inputs.check("lenet300", input_shape, INPUT_RULE)
    l2 = decay.regularizer(decay.resolve(weight_decay, WEIGHT_DECAY))
    image = keras.Input(shape=input_shape, name="image")
    x = keras.layers.Flatten(name="flatten")(image)
    for k, units in enumerate(HIDDEN_UNITS + (num_classes,), start=1):
        last = k == len(HIDDEN_UNITS) + 1
        x = MaskedDense(
            units,
            activation=None if last else "relu",
            kernel_initializer=keras.initializers.GlorotNormal(),
            kernel_regularizer=l2,
            bias_regularizer=l2,
            name=f"fc_{k}",
        )(x)
    return keras.Model(image, x, name="lenet300")
