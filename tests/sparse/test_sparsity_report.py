"""sparsity_report's filters kept per convolution and FLOPs (multiply-
accumulates of kept weights, per example), beside the unchanged columns."""

import keras
import numpy as np
import pytest

import keras_lottery as kl
from keras_lottery import models
from keras_lottery.sparse import flops
from keras_lottery.sparse.report import SparsityReport


def _resnet8():
    keras.utils.set_random_seed(0)
    return models.build("resnet8")


def _resnet8_macs():
    """Per kernel: weights × output positions (32², 16², 8² by stage)."""
    stages = [(32 * 32, [(3, 16)] + [(16, 16)] * 2 + [("proj", 16, 16)]),
              (16 * 16, [(16, 32), (32, 32), ("proj", 16, 32)]),
              (8 * 8, [(32, 64), (64, 64), ("proj", 32, 64)])]
    total = 64 * 10
    for positions, convs in stages:
        for conv in convs:
            weights = conv[1] * conv[2] if conv[0] == "proj" else 9 * conv[0] * conv[1]
            total += weights * positions
    return total


def test_the_report_counts_filters_and_flops_and_keeps_its_columns():
    model = _resnet8()
    before = kl.sparsity_report(model)
    assert before.flops == (_resnet8_macs(), _resnet8_macs()) == (12_763_776,) * 2
    assert before.layer_flops["conv_1"] == (27 * 16 * 1024, 27 * 16 * 1024)
    assert before.layer_flops["dense"] == (640, 640)
    kl.prune_filters(model, {"conv_2": 0.5, "conv_4": 0.25})
    after = kl.sparsity_report(model)
    assert [tuple(r) for r in after.rows] == [
        (name, shape, total, int(np.count_nonzero(m)), np.count_nonzero(m) / total)
        for (name, shape, total, _, _), m in zip(before.rows, kl.get_masks(model).values())]
    assert after.filters["conv_2"] == (8, 16) and after.filters["conv_4"] == (24, 32)
    assert after.filters["conv_3"] == (16, 16) and "dense" not in after.filters
    lost = (8 * 9 * 16 + 8 * 9 * 16) * 1024 + (8 * 9 * 16 + 8 * 9 * 32) * 256
    assert after.flops == (_resnet8_macs() - lost, _resnet8_macs())
    assert after.layer_flops["conv_3"] == (9 * 8 * 16 * 1024, 9 * 16 * 16 * 1024)
    lines = str(after).splitlines()
    assert lines[0].split() == ["layer", "shape", "total", "remaining", "density",
                                "filters", "flops"]
    conv_2 = next(line for line in lines if line.startswith("conv_2 "))
    assert conv_2.split()[-2:] == ["8/16", f"{9 * 16 * 8 * 1024:,}"]
    assert lines[-1].split()[-1] == f"{_resnet8_macs() - lost:,}"


def test_flops_follow_the_convention_for_every_kernel_layer():
    x = image = keras.Input((10, 10, 4))
    x = keras.layers.Conv2D(6, 3, strides=2, padding="same", name="strided")(x)  # 5x5
    x = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, name="depthwise")(x)  # 3x3x12
    x = keras.layers.SeparableConv2D(5, 3, padding="same", name="separable")(x)
    x = keras.layers.Conv2DTranspose(2, 2, strides=2, name="transposed")(x)  # 6x6
    x = keras.layers.Dense(7, name="dense")(x)  # on 6x6x2: 36 positions
    plain = keras.Model(image, x)
    want = {"strided": 3 * 3 * 4 * 6 * 25, "depthwise": 3 * 3 * 6 * 2 * 9,
            "separable": 3 * 3 * 12 * 9 + 12 * 5 * 9,
            "transposed": 2 * 2 * 2 * 5 * 9,  # at each of its 3x3 input positions
            "dense": 2 * 7 * 36}
    for name, macs in want.items():
        assert flops.layer_flops(plain.get_layer(name)) == (macs, macs), name
    assert flops.model_flops(plain) == (sum(want.values()),) * 2
    masked = kl.masked(plain)
    masks = kl.get_masks(masked)
    masks["separable/pointwise_kernel"][0, 0, :6] = 0
    kl.set_masks(masked, masks)
    assert flops.model_flops(masked) == (sum(want.values()) - 6 * 5 * 9, sum(want.values()))


def test_unknown_sizes_give_no_flops():
    image = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(4, 3, name="conv")(image)
    model = kl.masked(keras.Model(image, keras.layers.GlobalAveragePooling2D()(x)))
    report = kl.sparsity_report(model)
    assert report.flops == (None, None) and report.filters == {"conv": (4, 4)}
    assert str(report).splitlines()[-1].split()[-1] == "1.0000"


def test_a_report_from_masks_alone_has_the_columns_it_always_had():
    # As keras_lottery.analysis makes one, from the masks of a run.
    report = SparsityReport(kl.sparsity_report(_resnet8()).rows)
    assert report.filters is None and report.flops is None
    assert str(report).splitlines()[0].split() == ["layer", "shape", "total", "remaining",
                                                   "density"]


def test_resnet56_has_li_et_als_flops():
    keras.utils.set_random_seed(0)
    report = kl.sparsity_report(models.build("resnet56"))
    # Li et al. (2017) give 1.25e8 FLOPs for ResNet-56 (without its three
    # projection shortcuts and the classifier, which these count).
    assert report.flops.kept == pytest.approx(1.25e8, rel=0.01)
