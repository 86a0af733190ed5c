"""Conv-2/4/6 and LeNet-300-100 against Frankle & Carbin 2019, Figure 2.

Prunable-weight counts are computed here from the architecture as the paper
describes it, independently of the builders, and set beside the paper's
rounded figures.
"""

import math

import keras
import numpy as np
import pytest

import keras_lottery as kl
from keras_lottery import MaskedConv2D
from keras_lottery import MaskedDense
from keras_lottery import models

CONVS = ("conv2", "conv4", "conv6")
MODULE_FILTERS = (64, 128, 256)
CIFAR = (32, 32, 3)
MNIST = (28, 28, 1)
# Figure 2's "All/Conv Weights" row (LeNet: all only), as printed, each with
# the unit of its last printed digit: 38K is (38e3, 1e3), 4.3M (4.3e6, 1e5).
PAPER = {
    "lenet300": ((266e3, 1e3), None),
    "conv2": ((4.3e6, 1e5), (38e3, 1e3)),
    "conv4": ((2.4e6, 1e5), (260e3, 1e4)),
    "conv6": ((1.7e6, 1e5), (1.1e6, 1e5)),
}


def _fresh(name, seed=0, **kwargs):
    keras.utils.set_random_seed(seed)
    return models.build(name, **kwargs)


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _conv_counts(depth, input_shape=CIFAR, num_classes=10):
    """(conv, all) kernel weights of Conv-`depth`: 3×3 SAME convs in pairs,
    a 2×2/2 pool after each pair, dense 256-256-classes."""
    side, width, cin = input_shape[0], input_shape[1], input_shape[2]
    conv = 0
    for filters in MODULE_FILTERS[: depth // 2]:
        conv += 9 * cin * filters + 9 * filters * filters
        cin = filters
        side, width = side // 2, width // 2
    fc = [side * width * cin, 256, 256, num_classes]
    return conv, conv + sum(a * b for a, b in zip(fc, fc[1:]))


def _lenet_count(inputs):
    return inputs * 300 + 300 * 100 + 100 * 10


def _agrees(count, printed):
    """`count` is within one unit of the printed figure's last digit (the
    paper rounds some counts and truncates others: 38,592 is "38K")."""
    value, unit = printed
    return abs(count - value) < unit


def test_counts_at_cifar_shape_beside_the_paper():
    counts = {f"conv{d}": _conv_counts(d) for d in (2, 4, 6)}
    assert counts == {
        "conv2": (38_592, 4_300_992),
        "conv4": (259_776, 2_425_024),
        "conv6": (1_144_512, 2_261_184),
    }
    assert _lenet_count(784) == 266_200
    # Conv-2, Conv-4 and LeNet agree with Figure 2 as printed, and so does
    # every conv-only count...
    for name in ("conv2", "conv4"):
        assert _agrees(counts[name][1], PAPER[name][0]), name
    for name in CONVS:
        assert _agrees(counts[name][0], PAPER[name][1]), name
    assert _agrees(_lenet_count(784), PAPER["lenet300"][0])
    # ...but Conv-6's total does not: 4·4·256 = 4,096 inputs to the first
    # dense layer give 1.12M dense weights, the paper's 1.7M implies ~0.6M.
    assert not _agrees(counts["conv6"][1], PAPER["conv6"][0])
    assert counts["conv6"][1] - PAPER["conv6"][0][0] > 500_000


@pytest.mark.parametrize("depth", [2, 4, 6])
@pytest.mark.parametrize("input_shape", [CIFAR, MNIST])
def test_conv_model_counts_match_the_computed_ones(depth, input_shape):
    model = _fresh(f"conv{depth}", input_shape=input_shape)
    conv, total = _conv_counts(depth, input_shape)
    report = kl.sparsity_report(model)
    assert report.total.total == total
    assert report.total.remaining == total
    masks = kl.get_masks(model)
    assert len(masks) == depth + 3
    assert sum(m.size for k, m in masks.items() if k.startswith("conv_")) == conv


def test_lenet300_on_mnist_has_the_papers_266200():
    model = _fresh("lenet300", input_shape=MNIST)
    assert kl.sparsity_report(model).total.total == 266_200
    assert tuple(kl.get_masks(model)["fc_1"].shape) == (784, 300)


@pytest.mark.parametrize("depth", [2, 4, 6])
def test_conv_layers_names_and_shapes(depth):
    model = _fresh(f"conv{depth}")
    modules = depth // 2
    expected = ["image"]
    for m in range(1, modules + 1):
        expected += [f"conv_{2 * m - 1}", f"conv_{2 * m}", f"pool_{m}"]
    expected += ["flatten"] + [f"fc_{k}" for k in range(depth + 1, depth + 4)]
    assert [layer.name for layer in model.layers] == expected
    assert model.name == f"conv{depth}"

    side = 32 // 2**modules
    filters = MODULE_FILTERS[modules - 1]
    flat = model.get_layer("flatten").output.shape
    assert tuple(flat) == (None, side * side * filters)
    widths = [3] + [f for f in MODULE_FILTERS[:modules] for _ in range(2)]
    for k in range(1, depth + 1):
        layer = model.get_layer(f"conv_{k}")
        assert isinstance(layer, MaskedConv2D)
        assert tuple(layer.kernel.shape) == (3, 3, widths[k - 1], widths[k])
        assert layer.padding == "same" and layer.strides == (1, 1)
        assert layer.activation is keras.activations.relu
    for m in range(1, modules + 1):
        pool = model.get_layer(f"pool_{m}")
        assert isinstance(pool, keras.layers.MaxPooling2D)
        assert pool.pool_size == (2, 2) and pool.strides == (2, 2)
    fcs = [model.get_layer(f"fc_{k}") for k in range(depth + 1, depth + 4)]
    assert [tuple(f.kernel.shape) for f in fcs] == [
        (side * side * filters, 256), (256, 256), (256, 10)
    ]
    assert [f.activation for f in fcs] == [
        keras.activations.relu, keras.activations.relu, keras.activations.linear
    ]
    # Nothing but the masked layers carries weights: no BN, no dropout.
    for layer in model.layers:
        if layer.weights:
            assert isinstance(layer, (MaskedConv2D, MaskedDense)), layer.name
    assert not any(isinstance(l, keras.layers.Dropout) for l in model.layers)


def test_conv_init_is_gaussian_glorot_with_zero_biases():
    model = _fresh("conv4", seed=3)
    layers = [l for l in model.layers if isinstance(l, (MaskedConv2D, MaskedDense))]
    assert len(layers) == 7
    for layer in layers:
        assert isinstance(layer.kernel_initializer, keras.initializers.GlorotNormal)
        assert layer.use_bias, layer.name
        np.testing.assert_array_equal(_np(layer.bias), np.zeros(layer.bias.shape))
    # std sqrt(2 / (fan_in + fan_out)), fans counting the 3×3 receptive field.
    for name, fans in (("conv_4", 9 * (128 + 128)), ("fc_5", 8 * 8 * 128 + 256)):
        kernel = _np(model.get_layer(name).kernel).astype(np.float64)
        target = math.sqrt(2 / fans)
        assert abs(kernel.std() / target - 1) < 0.05, name
        assert abs(kernel.mean()) < 0.05 * target, name
        # Truncated at two standard deviations of the underlying normal.
        assert np.abs(kernel).max() <= 2 * target / 0.87962566 + 1e-6, name


@pytest.mark.parametrize("name", CONVS)
def test_conv_nets_default_to_no_weight_decay(name):
    model = _fresh(name, input_shape=MNIST)
    assert models.default_weight_decay(name) == 0
    assert model.losses == []
    for layer in model.layers:
        for attr in ("kernel_regularizer", "bias_regularizer"):
            assert getattr(layer, attr, None) is None, (layer.name, attr)


def test_conv_trains_on_digits():
    from keras_lottery import data

    ds = data.load("digits")
    model = _fresh("conv2", input_shape=ds.image_shape, num_classes=ds.num_classes)
    model.compile(
        optimizer=keras.optimizers.Adam(2e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="top1")],
    )
    test = data.EvalBatches(ds.x_test, ds.y_test, 360)
    batches = data.TrainBatches(
        ds.x_train, ds.y_train, 64, seed=0, num_steps=60, augment=ds.augment
    )
    model.fit(batches, epochs=1, verbose=0)
    _, top1 = model.evaluate(test, verbose=0)
    assert top1 > 0.8
