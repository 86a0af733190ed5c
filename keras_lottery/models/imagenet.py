"""ImageNet ResNet-34 v1 (He et al. 2016), the official TensorFlow model's.

For the paper's structured ImageNet configurations (`resnet34-A`/`-B`):
a 7×7 stride-2 stem convolution with 64 filters, batch norm and ReLU,
a 3×3 stride-2 max-pool, basic blocks (64, 3), (128, 4), (256, 6),
(512, 3) with a 1×1 projection in the first block of every stage, global
average pooling and a dense 512 → classes layer: 21,783,744 prunable weights
with 1000 classes. Layers, padding, initialization and names are the CIFAR
ResNets' (`keras_lottery.models.resnet`): `conv_1` is the stem, `conv_k` the
3×3 convolutions, `proj_<k>_<j>` the projections, `dense` the classifier.
Any image size builds (the head pools globally), so tests can use 32×32.
"""

import keras

from keras_lottery.models import decay
from keras_lottery.models import inputs
from keras_lottery.models import resnet

# He et al.'s ImageNet weight decay (the official model's 1e-4).
WEIGHT_DECAY = 1e-4
STAGES = ((64, 3), (128, 4), (256, 6), (512, 3))
NUM_CLASSES = 1000
INPUT_SHAPE = (224, 224, 3)
INPUT_RULE = inputs.Image()


def resnet34(num_classes=NUM_CLASSES, input_shape=INPUT_SHAPE, weight_decay=None):
    """Builds ImageNet ResNet-34 v1 with every kernel masked.

    Args:
        num_classes: classifier outputs (1000 for ImageNet).
        input_shape: image shape, channels last (224×224×3; any size builds).
        weight_decay: `wd` of wd·Σv²/2 on every trainable variable; None is
            `WEIGHT_DECAY`, 0 adds no regularizer.
    """
    input_shape = inputs.check("resnet34", input_shape, INPUT_RULE)
    layers = resnet.Layers(decay.regularizer(decay.resolve(weight_decay, WEIGHT_DECAY)))
    image = keras.Input(shape=input_shape, name="image")
    name = layers.names.conv()
    x = layers.conv(image, 64, 7, 2, name)
    x = keras.layers.ReLU(name=f"{name}_relu")(layers.bn(x, name))
    x = keras.layers.MaxPooling2D(3, 2, padding="same", name=f"{name}_pool")(x)
    x = layers.stages(x, STAGES)
    return keras.Model(image, layers.head(x, num_classes), name="resnet34")
