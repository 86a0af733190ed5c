"""The paper's CIFAR-10 architectures, every Conv2D/Dense kernel masked.

Plus `lenet300`, the lottery-ticket paper's small fully-connected network,
for small real datasets such as the bundled 8×8 digits.

Example:

>>> from keras_lottery import models
>>> models.available()
['lenet300', 'resnet110', 'resnet20', 'resnet56', 'resnet8', 'vgg16', 'vgg16_nofc']
>>> model = models.build("resnet20")
>>> small = models.build("lenet300", input_shape=(8, 8, 1))
"""

from keras_lottery.models import lenet
from keras_lottery.models import resnet
from keras_lottery.models import vgg

_REGISTRY = {
    "lenet300": lambda **kw: lenet.lenet300(**kw),
    "resnet8": lambda **kw: resnet.resnet(8, **kw),
    "resnet20": lambda **kw: resnet.resnet(20, **kw),
    "resnet56": lambda **kw: resnet.resnet(56, **kw),
    "resnet110": lambda **kw: resnet.resnet(110, **kw),
    "vgg16": lambda **kw: vgg.vgg16(fc=True, **kw),
    "vgg16_nofc": lambda **kw: vgg.vgg16(fc=False, **kw),
}

# Each family's module holds its `WEIGHT_DECAY`, which its builder applies.
_FAMILIES = {"lenet": lenet, "resnet": resnet, "vgg": vgg}

# Weight decay `wd` of the original's loss term wd * sum(v**2) / 2.
WEIGHT_DECAY = {
    name: module.WEIGHT_DECAY
    for name in _REGISTRY
    for family, module in _FAMILIES.items()
    if name.startswith(family)
}


def available():
    """Names accepted by `build`, sorted."""
    return sorted(_REGISTRY)


def build(name, num_classes=10, input_shape=(32, 32, 3)):
    """Builds a registered architecture as an uncompiled Keras model.

    `resnet8` is a tiny member of the ResNet family (one block per stage)
    for tests and demos; `lenet300` is LeNet-300-100 (Frankle & Carbin
    2019), e.g. for the digits dataset (`input_shape=(8, 8, 1)`); the others
    are the paper's networks (SPEC §4).

    Args:
        name: one of `available()`.
        num_classes: size of the classifier output (logits).
        input_shape: image shape, channels last.

    Returns:
        A functional `keras.Model` named `name`.
    """
    if name not in _REGISTRY:
        raise ValueError(
            f"Unknown architecture {name!r}; available: "
            f"{', '.join(available())}."
        )
    return _REGISTRY[name](
        num_classes=num_classes, input_shape=tuple(input_shape)
    )
