"""CIFAR ResNet v1 (He et al. 2016) as the paper's original code built it.

Differences from most Keras ResNets, all deliberate (the original's): the first
block of *every* stage has a 1×1 projection shortcut (stage 1's is 16→16,
stride 1); stride-2 convolutions pad symmetrically and then use VALID
padding; conv kernels use truncated LeCun-normal init, the classifier
N(0, 0.01); batch norm has momentum 0.997 and epsilon 1e-5; weight decay is an
L2 penalty on every trainable variable. Layer names follow the original
(`conv_<k>`, `proj_<k>_<j>`, `dense`).
"""

import keras

from keras_lottery.sparse.layers import FusedBatchNormalization
from keras_lottery.sparse.layers import MaskedConv2D
from keras_lottery.sparse.layers import MaskedDense
from keras_lottery.models import decay
from keras_lottery.models import inputs

WEIGHT_DECAY = 2e-4
BN_MOMENTUM = 0.997
BN_EPSILON = 1e-5
# Any image: stride-2 convs pad first, and the head pools globally.
INPUT_RULE = inputs.Image()


def resnet(depth, num_classes=10, input_shape=(32, 32, 3), weight_decay=None):
    """Builds CIFAR ResNet-`depth` v1, depth = 6n + 2.

    Args:
        depth: 8, 20, 56, 110, ... (6n + 2).
        num_classes: classifier outputs.
        input_shape: image shape, channels last.
        weight_decay: `wd` of wd·Σv²/2 on every trainable variable; None is
            `WEIGHT_DECAY`, 0 adds no regularizer.
    """
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(f"ResNet depth must be 6n + 2 >= 8, got {depth}.")
    input_shape = inputs.check(f"resnet{depth}", input_shape, INPUT_RULE)
    blocks = (depth - 2) // 6
    layers = Layers(decay.regularizer(decay.resolve(weight_decay, WEIGHT_DECAY)))
    image = keras.Input(shape=input_shape, name="image")
    name = layers.names.conv()
    x = layers.conv(image, 16, 3, 1, name)
    x = keras.layers.ReLU(name=f"{name}_relu")(layers.bn(x, name))
    x = layers.stages(x, [(filters, blocks) for filters in (16, 32, 64)])
    return keras.Model(image, layers.head(x, num_classes), name=f"resnet{depth}")


class Layers:
    """The layers of the network, named as the original names them, with
    the weight decay `l2` (a regularizer or None)."""

    def __init__(self, l2):
        self.l2 = l2
        self.names = Namer()

    def conv(self, x, filters, size, stride, name):
        if stride > 1:
            pad = (size - 1) // 2
            if pad:
                x = keras.layers.ZeroPadding2D(pad, name=f"{name}_pad")(x)
        return MaskedConv2D(
            filters,
            size,
            strides=stride,
            padding="same" if stride == 1 else "valid",
            use_bias=False,
            kernel_initializer=keras.initializers.LecunNormal(),
            kernel_regularizer=self.l2,
            name=name,
        )(x)

    def bn(self, x, name):
        return FusedBatchNormalization(
            momentum=BN_MOMENTUM,
            epsilon=BN_EPSILON,
            beta_regularizer=self.l2,
            gamma_regularizer=self.l2,
            name=f"{name}_bn",
        )(x)

    def stages(self, x, stages):
        """Residual stages of (filters, blocks); each stage but the first
        halves the size in its first block, which has the projection."""
        for stage, (filters, blocks) in enumerate(stages):
            for block in range(blocks):
                stride = 2 if stage > 0 and block == 0 else 1
                x = self.block(x, filters, stride, projection=block == 0)
        return x

    def head(self, x, num_classes):
        """Global average pooling and the classifier (logits)."""
        x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
        return MaskedDense(
            num_classes,
            kernel_initializer=keras.initializers.RandomNormal(0.0, 0.01),
            kernel_regularizer=self.l2,
            bias_regularizer=self.l2,
            name="dense",
        )(x)

    def block(self, x, filters, stride, projection):
        """A residual block: two 3×3 convs, and a 1×1 projection shortcut
        (made first, as the original) in the first block of a stage."""
        if projection:
            name = self.names.projection()
            shortcut = self.bn(self.conv(x, filters, 1, stride, name), name)
        else:
            shortcut = x
        name = self.names.conv()
        y = self.conv(x, filters, 3, stride, name)
        y = keras.layers.ReLU(name=f"{name}_relu")(self.bn(y, name))
        name = self.names.conv()
        y = self.bn(self.conv(y, filters, 3, 1, name), name)
        x = keras.layers.Add(name=f"{name}_add")([y, shortcut])
        return keras.layers.ReLU(name=f"{name}_out")(x)


class Namer:
    """The original's names: conv_<k> counts 3×3 convs; proj_<k>_<j> takes
    the next 3×3 index k and j = convolutions so far + 1."""

    def __init__(self):
        self.convs = 0
        self.total = 0

    def conv(self):
        self.convs += 1
        self.total += 1
        return f"conv_{self.convs}"

    def projection(self):
        self.total += 1
        return f"proj_{self.convs + 1}_{self.total}"
