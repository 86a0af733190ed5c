"""ImageNet ResNet-34 (SPEC §2.4, last bullet): the official v1 network with
the CIFAR ResNets' names, built once (21.8M weights) and only read."""

import keras
import numpy as np
import pytest

import keras_lottery as kl
from keras_lottery import models

STAGES = ((64, 3), (128, 4), (256, 6), (512, 3))


@pytest.fixture(scope="module")
def resnet34():
    keras.utils.set_random_seed(0)
    return models.build("resnet34")


def _expected_kernels():
    """{name: kernel shape} of every masked kernel, from the description."""
    shapes, k, total, previous = {"conv_1": (7, 7, 3, 64)}, 2, 1, 64
    for width, blocks in STAGES:
        total += 1
        shapes[f"proj_{k}_{total}"] = (1, 1, previous, width)  # made first, as the original
        for block in range(blocks):
            shapes[f"conv_{k}"] = (3, 3, previous if block == 0 else width, width)
            shapes[f"conv_{k + 1}"] = (3, 3, width, width)
            k, total = k + 2, total + 2
        previous = width
    shapes["dense"] = (512, 1000)
    return shapes


def test_it_is_the_official_resnet34_with_the_original_names(resnet34):
    assert tuple(resnet34.input_shape) == (None, 224, 224, 3)
    assert tuple(resnet34.output_shape) == (None, 1000)
    masks = kl.get_masks(resnet34)
    expected = _expected_kernels()
    assert {k: m.shape for k, m in masks.items()} == expected
    convs = [name for name in expected if name.startswith("conv_")]
    assert [name for name in masks if name.startswith("conv_")] == convs  # in order
    assert sum(m.size for m in masks.values()) == 21_783_744
    assert sum(np.prod(s) for s in expected.values()) == 21_783_744


def test_the_stem_halves_twice_and_each_stage_once(resnet34):
    sizes = {name: tuple(resnet34.get_layer(name).output.shape[1:]) for name in (
        "conv_1", "conv_1_pool", "conv_3", "conv_9", "conv_17", "conv_29", "pool")}
    assert sizes == {"conv_1": (112, 112, 64), "conv_1_pool": (56, 56, 64),
                     "conv_3": (56, 56, 64), "conv_9": (28, 28, 128),
                     "conv_17": (14, 14, 256), "conv_29": (7, 7, 512), "pool": (512,)}
    stem = resnet34.get_layer("conv_1")
    assert stem.strides == (2, 2) and stem.padding == "valid"
    assert resnet34.get_layer("conv_1_pad").padding == ((3, 3), (3, 3))
    pool = resnet34.get_layer("conv_1_pool")
    assert (pool.pool_size, pool.strides, pool.padding) == ((3, 3), (2, 2), "same")


def test_it_takes_small_images_and_its_own_weight_decay():
    small = models.build("resnet34", num_classes=10, input_shape=(32, 32, 3))
    assert tuple(small.output_shape) == (None, 10)
    out = small(np.zeros((1, 32, 32, 3), "float32"), training=False)
    assert tuple(out.shape) == (1, 10)
    assert models.default_weight_decay("resnet34") == 1e-4
    l2 = small.get_layer("conv_2").kernel_regularizer.get_config()["l2"]
    assert l2 == pytest.approx(0.5e-4)
    # The CIFAR networks keep CIFAR's defaults when none are given.
    assert tuple(models.build("resnet8").output_shape) == (None, 10)

