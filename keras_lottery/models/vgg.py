"""CIFAR VGG-16 (configuration D) with batch norm, as the original code.

Every conv is 3×3, stride 1, SAME, no bias, followed by BN and ReLU; a 2×2
max-pool ends each stage, leaving 1×1×512. `vgg16_nofc` (the paper's
"VGG-16") has a single 512→classes classifier; `vgg16` has two 4096-unit
hidden layers with dropout 0.5 (inactive at evaluation: the original's
eval-time dropout bug is not copied). Names: `conv_1..conv_13`, then `fc_14`…
"""

import keras

from keras_lottery.sparse.layers import FusedBatchNormalization
from keras_lottery.sparse.layers import MaskedConv2D
from keras_lottery.sparse.layers import MaskedDense
from keras_lottery.models import decay
from keras_lottery.models import inputs

WEIGHT_DECAY = 5e-4
STAGES = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512),
          (512, 512, 512))
# At least 32×32, so the five pools leave 1×1 (a larger image leaves more,
# and the classifier's fan-in grows with it).
INPUT_RULE = inputs.Image(pools=len(STAGES))


def vgg16(fc=False, num_classes=10, input_shape=(32, 32, 3), weight_decay=None):
    """Builds VGG-16 for CIFAR: `fc=False` is `vgg16_nofc`, True `vgg16`.

    `weight_decay` is the `wd` of wd·Σv²/2 on every trainable variable; None
    is `WEIGHT_DECAY`, 0 adds no regularizer.
    """
    name = "vgg16" if fc else "vgg16_nofc"
    input_shape = inputs.check(name, input_shape, INPUT_RULE)
    l2 = decay.regularizer(decay.resolve(weight_decay, WEIGHT_DECAY))
    dense_init = keras.initializers.RandomNormal(0.0, 0.01)
    image = keras.Input(shape=input_shape, name="image")
    x, k = image, 0
    for stage, widths in enumerate(STAGES, start=1):
        for filters in widths:
            k += 1
            x = MaskedConv2D(
                filters,
                3,
                padding="same",
                use_bias=False,
                kernel_initializer=keras.initializers.LecunNormal(),
                kernel_regularizer=l2,
                name=f"conv_{k}",
            )(x)
            x = FusedBatchNormalization(
                momentum=0.997,
                epsilon=1e-5,
                beta_regularizer=l2,
                gamma_regularizer=l2,
                name=f"conv_{k}_bn",
            )(x)
            x = keras.layers.ReLU(name=f"conv_{k}_relu")(x)
        x = keras.layers.MaxPooling2D(2, name=f"pool_{stage}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    for units in (4096, 4096) if fc else ():
        k += 1
        x = MaskedDense(
            units,
            activation="relu",
            kernel_initializer=dense_init,
            kernel_regularizer=l2,
            bias_regularizer=l2,
            name=f"fc_{k}",
        )(x)
        x = keras.layers.Dropout(0.5, name=f"fc_{k}_dropout")(x)
    k += 1
    outputs = MaskedDense(
        num_classes,
        kernel_initializer=dense_init,
        kernel_regularizer=l2,
        bias_regularizer=l2,
        name=f"fc_{k}",
    )(x)
    return keras.Model(image, outputs, name=name)
