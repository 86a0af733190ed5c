"""The papers' architectures, every Conv2D/Dense kernel masked.

Renda et al.'s CIFAR-10 ResNets and VGG-16, the ImageNet ResNet-34 of their
structured configurations, and the lottery-ticket paper's LeNet-300-100 and
Conv-2/4/6 (Frankle & Carbin 2019).

Example:

>>> from keras_lottery import models
>>> models.available()[:4]
['conv2', 'conv4', 'conv6', 'lenet300']
>>> model = models.build("resnet20")
>>> mnist = models.build("conv6", input_shape=(28, 28, 1))
>>> flat = models.build("lenet300", input_shape=(784,), weight_decay=0)
>>> models.check_input("vgg16", (28, 28, 1))
Traceback (most recent call last):
ValueError: vgg16 cannot take input_shape (28, 28, 1): it needs ...
"""

from keras_lottery.models import conv
from keras_lottery.models import imagenet
from keras_lottery.models import lenet
from keras_lottery.models import registry
from keras_lottery.models import resnet
from keras_lottery.models import vgg
from keras_lottery.models.registry import available
from keras_lottery.models.registry import check_input


def describe(name):
    """One line on architecture `name`, e.g. for a CLI's listing."""
    return registry.lookup(name).description


def default_weight_decay(name):
    """The `wd` (of wd·Σv²/2) `build(name)` applies when given None."""
    return registry.lookup(name).family.WEIGHT_DECAY


def build(name, num_classes=None, input_shape=None, weight_decay=None):
    """Builds a registered architecture as an uncompiled Keras model.

    Every argument is checked before any layer is built. `resnet8` is a tiny
    member of the ResNet family for tests and demos; `describe(name)` says
    what each name is.

    Args:
        name: one of `available()`.
        num_classes: size of the classifier output (logits); None is the
            architecture's own (10; 1000 for `resnet34`).
        input_shape: one example's shape: an image, channels last, or
            `(D,)` for flat vectors (`lenet300` only; `check_input`); None
            is the architecture's own (32x32x3; 224x224x3 for `resnet34`).
        weight_decay: `wd` of the L2 term wd·Σv²/2 (Keras `L2(wd / 2)`) on
            the family's regularized variables. None keeps the family's
            default (`default_weight_decay(name)`); 0 adds no regularizer.

    Returns:
        A functional `keras.Model` named `name`.

    Raises:
        ValueError: a bad name, class count, input shape or weight decay.
    """
    arch = registry.lookup(name)
    input_shape = registry.check_input(
        name, arch.input_shape if input_shape is None else input_shape)
    num_classes = registry.check_num_classes(
        name, arch.num_classes if num_classes is None else num_classes)
    wd = registry.check_weight_decay(name, weight_decay)
    return arch.build(
        num_classes=num_classes, input_shape=input_shape, weight_decay=wd
    )


__all__ = [
    "available",
    "build",
    "check_input",
    "conv",
    "default_weight_decay",
    "describe",
    "imagenet",
    "lenet",
    "resnet",
    "vgg",
]
