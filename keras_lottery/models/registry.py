"""The named architectures: builder, default weight decay, inputs, one-liner.

`build` checks its arguments before any layer exists, so a wrong shape or
class count fails at once with a message a CLI can show as it is.
"""

from typing import Callable
from typing import NamedTuple

from keras_lottery import checks
from keras_lottery.models import conv
from keras_lottery.models import decay
from keras_lottery.models import imagenet
from keras_lottery.models import inputs
from keras_lottery.models import lenet
from keras_lottery.models import resnet
from keras_lottery.models import vgg


class Architecture(NamedTuple):
    """One registered name. `build` takes num_classes, input_shape and
    weight_decay; `family` is the module whose `WEIGHT_DECAY` is the
    default; `num_classes` and `input_shape` are what `models.build` gives
    when it is given none (CIFAR-10's, ImageNet's for `resnet34`)."""

    build: Callable
    family: object
    input_rule: object
    description: str
    num_classes: int = 10
    input_shape: tuple = (32, 32, 3)


def _resnet(depth, description):
    return Architecture(
        lambda **kw: resnet.resnet(depth, **kw), resnet, resnet.INPUT_RULE,
        description,
    )


def _conv(depth, widths):
    return Architecture(
        lambda **kw: conv.conv_net(depth, **kw), conv, conv.input_rule(depth),
        f"Conv-{depth} (Frankle & Carbin 2019): 3x3 convs {widths} with a "
        "2x2 max-pool after each pair, dense 256-256, linear classifier",
    )


ARCHITECTURES = {
    "conv2": _conv(2, "64-64"),
    "conv4": _conv(4, "64-64-128-128"),
    "conv6": _conv(6, "64-64-128-128-256-256"),
    "lenet300": Architecture(
        lenet.lenet300, lenet, lenet.INPUT_RULE,
        "LeNet-300-100 (Frankle & Carbin 2019): flatten, dense 300-100, "
        "linear classifier; any input shape",
    ),
    "resnet8": _resnet(
        8, "CIFAR ResNet-8 v1, one block per stage: a small net for tests "
        "and demos"),
    "resnet20": _resnet(
        20, "CIFAR ResNet-20 v1 (He et al. 2016), as in Renda et al. 2020"),
    "resnet56": _resnet(
        56, "CIFAR ResNet-56 v1 (He et al. 2016), as in Renda et al. 2020"),
    "resnet110": _resnet(
        110, "CIFAR ResNet-110 v1 (He et al. 2016), as in Renda et al. 2020"),
    "resnet34": Architecture(
        imagenet.resnet34, imagenet, imagenet.INPUT_RULE,
        "ImageNet ResNet-34 v1 (He et al. 2016) for the structured "
        "configurations; 224x224 and 1000 classes unless given",
        imagenet.NUM_CLASSES, imagenet.INPUT_SHAPE),
    "vgg16": Architecture(
        lambda **kw: vgg.vgg16(fc=True, **kw), vgg, vgg.INPUT_RULE,
        "VGG-16 with batch norm and two 4096-unit dense layers (dropout "
        "0.5); images of at least 32x32",
    ),
    "vgg16_nofc": Architecture(
        lambda **kw: vgg.vgg16(fc=False, **kw), vgg, vgg.INPUT_RULE,
        "VGG-16 with batch norm and one linear classifier, the VGG-16 of "
        "Renda et al. 2020; images of at least 32x32",
    ),
}



def available():
    """Names accepted by `build`, sorted."""
    return sorted(ARCHITECTURES)


def lookup(name):
    """The `Architecture` registered as `name`.

    Raises:
        ValueError: unknown name; the message lists the available ones.
    """
    if name not in ARCHITECTURES:
        raise ValueError(
            f"Unknown architecture {name!r}; available: "
            f"{', '.join(available())}."
        )
    return ARCHITECTURES[name]


def check_input(name, input_shape):
    """Checks that `name` can take examples of `input_shape`, building nothing.

    Returns:
        `input_shape` as a tuple of ints.

    Raises:
        ValueError: unknown name, or a one-line message naming the
            architecture, the shape received and what it needs.
    """
    return inputs.check(name, input_shape, lookup(name).input_rule)


def check_num_classes(name, num_classes):
    """`num_classes` as an int, or a ValueError naming `name`."""
    if not checks.is_count(num_classes, 1):
        raise ValueError(
            f"{name} needs num_classes to be a positive integer, got "
            f"{num_classes!r}."
        )
    return int(num_classes)


def check_weight_decay(name, weight_decay):
    """The weight decay `build` would apply to `name`."""
    try:
        return decay.resolve(weight_decay, lookup(name).family.WEIGHT_DECAY)
    except ValueError as e:
        raise ValueError(f"{name}: {e}") from None
