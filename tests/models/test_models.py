"""The registered architectures against SPEC §4.1-4.3 (the original's code).

Big networks (ResNet-56/110, VGG-16) are built once per module and only
read; tests that change weights build their own small `resnet8`.
"""

import functools
import math

import keras
import numpy as np
import pytest

import keras_lottery as kl
from keras_lottery.sparse import pruning
from keras_lottery import MaskedConv2D
from keras_lottery import MaskedDense
from keras_lottery import models

ALL_ARCHS = (
    "conv2", "conv4", "conv6", "lenet300", "resnet8", "resnet20", "resnet34",
    "resnet56", "resnet110", "vgg16", "vgg16_nofc",
)
RESNET_WD = 2e-4
VGG_WD = 5e-4
LENET_WD = 1e-4
IMAGENET_WD = 1e-4  # He et al.'s ImageNet ResNets
CONV_WD = 0.0  # Frankle & Carbin train Conv-2/4/6 without weight decay
# The 0.87962566 of TF1 / Keras truncated normal: std of N(0, 1) cut at ±2.
TRUNC_STD = 0.87962566103423978


@functools.lru_cache(maxsize=None)
def _shared(name):
    """A model built once per test session; tests must NOT modify it."""
    keras.utils.set_random_seed(1234)
    return models.build(name)


def _fresh(name, seed=0, **kwargs):
    keras.utils.set_random_seed(seed)
    return models.build(name, **kwargs)


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _parents(layer, model):
    """Layers of `model` whose outputs feed `layer`, in input order."""
    inputs = layer.input if isinstance(layer.input, (list, tuple)) else [layer.input]
    return [next(p for p in model.layers if p.output is t) for t in inputs]


def _consumers(model):
    consumers = {layer.name: [] for layer in model.layers}
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        for parent in _parents(layer, model):
            consumers[parent.name].append(layer)
    return consumers


def _of_type(model, cls):
    return [layer for layer in model.layers if isinstance(layer, cls)]


def _masked_convs(model):
    return _of_type(model, MaskedConv2D)


# --------------------------------------------------------------------------
# Registry.


def test_available_lists_every_architecture():
    assert models.available() == sorted(ALL_ARCHS)


def test_unknown_name_raises_with_available_names():
    with pytest.raises(ValueError) as info:
        models.build("resnet18")
    message = str(info.value)
    assert "resnet18" in message
    for name in ALL_ARCHS:
        assert name in message


def _family_wd(name):
    if name.startswith("lenet"):
        return LENET_WD
    if name.startswith("conv"):
        return CONV_WD
    if name == "resnet34":
        return IMAGENET_WD
    return VGG_WD if name.startswith("vgg") else RESNET_WD


def test_default_weight_decay_is_the_family_s_and_the_one_built():
    for name in ALL_ARCHS:
        wd = models.default_weight_decay(name)
        assert wd == pytest.approx(_family_wd(name), rel=1e-12)
        # ... and what build(name) puts on its kernels: wd·Σv²/2 is L2(wd/2).
        model = models.build(name, input_shape=(32, 32, 3))
        first = next(layer for layer in model.layers if hasattr(layer, "raw_kernel"))
        if wd:
            assert first.kernel_regularizer.get_config()["l2"] == pytest.approx(wd / 2)
        else:
            assert first.kernel_regularizer is None


@pytest.mark.parametrize(
    "call", [models.describe, models.default_weight_decay,
             lambda name: models.check_input(name, (32, 32, 3))],
)
def test_every_lookup_rejects_unknown_names(call):
    with pytest.raises(ValueError, match="'resnet18'.*available: conv2, conv4"):
        call("resnet18")


def test_describe_gives_one_line_per_architecture():
    lines = {name: models.describe(name) for name in ALL_ARCHS}
    for name, line in lines.items():
        assert isinstance(line, str) and 20 < len(line) < 160, name
        assert "\n" not in line, name
    assert len(set(lines.values())) == len(lines)  # each says something of its own
    assert "Conv-6" in lines["conv6"] and "LeNet-300-100" in lines["lenet300"]


# --------------------------------------------------------------------------
# Prunable-weight counts and names.


@pytest.mark.parametrize(
    "name, total, tensors",
    [
        ("resnet20", 271_152, 23),
        ("resnet56", 851_760, 59),
        ("resnet110", 1_722_672, 113),
        ("vgg16_nofc", 14_715_584, 14),
        ("vgg16", 33_625_792, 16),
    ],
)
def test_prunable_weight_counts_match_spec(name, total, tensors):
    report = kl.sparsity_report(_shared(name))
    assert report.total.total == total
    assert report.total.remaining == total  # fresh model: nothing pruned
    assert len(report.rows) == tensors
    assert len(kl.get_masks(_shared(name))) == tensors


def _resnet_count(depth, num_classes=10):
    """Kernel weights of CIFAR ResNet v1 from SPEC §4.2's description."""
    blocks = (depth - 2) // 6
    total = 3 * 3 * 3 * 16  # stem
    cin = 16
    for cout in (16, 32, 64):
        total += 1 * 1 * cin * cout  # projection of the stage's first block
        total += 3 * 3 * cin * cout  # first 3x3 of the stage
        total += (2 * blocks - 1) * 3 * 3 * cout * cout  # the other 3x3s
        cin = cout
    return total + 64 * num_classes  # dense 64 -> classes


def _vgg_count(fc):
    stages = [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512],
              [512, 512, 512]]
    total, cin = 0, 3
    for stage in stages:
        for cout in stage:
            total += 3 * 3 * cin * cout
            cin = cout
    widths = [512, 4096, 4096, 10] if fc else [512, 10]
    return total + sum(a * b for a, b in zip(widths, widths[1:]))


def test_counts_cross_checked_from_architecture():
    assert _resnet_count(20) == 271_152
    assert _resnet_count(56) == 851_760
    assert _resnet_count(110) == 1_722_672
    assert _vgg_count(False) == 14_715_584
    assert _vgg_count(True) == 33_625_792
    # And against the models: resnet8 is the same family with one block.
    assert kl.sparsity_report(_shared("resnet8")).total.total == _resnet_count(8)
    assert kl.sparsity_report(_shared("resnet20")).total.total == _resnet_count(20)


def test_resnet20_kernel_shapes_by_name():
    expected = {"conv_1": (3, 3, 3, 16)}
    expected.update({f"conv_{k}": (3, 3, 16, 16) for k in range(2, 8)})
    expected["conv_8"] = (3, 3, 16, 32)
    expected.update({f"conv_{k}": (3, 3, 32, 32) for k in range(9, 14)})
    expected["conv_14"] = (3, 3, 32, 64)
    expected.update({f"conv_{k}": (3, 3, 64, 64) for k in range(15, 20)})
    expected["proj_2_2"] = (1, 1, 16, 16)
    expected["proj_8_9"] = (1, 1, 16, 32)
    expected["proj_14_16"] = (1, 1, 32, 64)
    expected["dense"] = (64, 10)
    # Stem 3·3·3·16 = 432, ..., dense 640: the SPEC's 271,152.
    assert sum(math.prod(s) for s in expected.values()) == 271_152

    masks = kl.get_masks(_shared("resnet20"))
    assert {name: tuple(m.shape) for name, m in masks.items()} == expected
    for name, mask in masks.items():
        np.testing.assert_array_equal(mask, np.ones(expected[name]))


@pytest.mark.parametrize(
    "name, projections",
    [
        ("resnet20", ["proj_2_2", "proj_8_9", "proj_14_16"]),
        ("resnet56", ["proj_2_2", "proj_20_21", "proj_38_40"]),
        ("resnet110", ["proj_2_2", "proj_38_39", "proj_74_76"]),
    ],
)
def test_resnet_layer_names_follow_original(name, projections):
    depth = int(name[len("resnet"):])
    model = _shared(name)
    names = [layer.name for layer in pruning.masked_layers(model)]
    expected = {f"conv_{k}" for k in range(1, depth)} | set(projections) | {"dense"}
    assert len(names) == len(set(names))
    assert set(names) == expected
    one_by_one = [l.name for l in _masked_convs(model) if l.kernel_size == (1, 1)]
    assert sorted(one_by_one) == sorted(projections)
    assert names[-1] == "dense"


@pytest.mark.parametrize(
    "name, fcs", [("vgg16_nofc", ["fc_14"]), ("vgg16", ["fc_14", "fc_15", "fc_16"])]
)
def test_vgg_layer_names_follow_original(name, fcs):
    names = [layer.name for layer in pruning.masked_layers(_shared(name))]
    assert names == [f"conv_{k}" for k in range(1, 14)] + fcs


# --------------------------------------------------------------------------
# ResNet structure.


def test_projection_in_first_block_of_every_stage_only():
    model = _shared("resnet20")
    consumers = _consumers(model)
    projections = [l for l in _masked_convs(model) if l.kernel_size == (1, 1)]
    shapes = [tuple(p.kernel.shape) for p in projections]
    strides = [p.strides for p in projections]
    assert shapes == [(1, 1, 16, 16), (1, 1, 16, 32), (1, 1, 32, 64)]
    assert strides == [(1, 1), (2, 2), (2, 2)]

    for proj in projections:
        assert not proj.use_bias and proj.bias is None
        # conv -> BN -> Add, no ReLU on the shortcut.
        (bn,) = consumers[proj.name]
        assert isinstance(bn, keras.layers.BatchNormalization)
        (add,) = consumers[bn.name]
        assert isinstance(add, keras.layers.Add)
        # Both branches start from the same tensor (the previous output).
        (source,) = _parents(proj, model)
        main_branch = [
            c for c in consumers[source.name]
            if c is not proj and not isinstance(c, keras.layers.Add)
        ]
        assert len(main_branch) == 1
        first = main_branch[0]
        if isinstance(first, keras.layers.ZeroPadding2D):
            (first,) = consumers[first.name]
        assert isinstance(first, MaskedConv2D) and first.kernel_size == (3, 3)
        assert first.strides == proj.strides

    # 9 blocks: 3 add a projection, the other 6 the identity (a ReLU output).
    adds = _of_type(model, keras.layers.Add)
    assert len(adds) == 9
    projection_bns = {consumers[p.name][0].name for p in projections}
    kinds = []
    for add in adds:
        parents = _parents(add, model)
        assert len(parents) == 2
        if any(p.name in projection_bns for p in parents):
            kinds.append("projection")
        else:
            assert any(isinstance(p, keras.layers.ReLU) for p in parents)
            kinds.append("identity")
    assert kinds == ["projection"] + ["identity"] * 2 + (
        ["projection"] + ["identity"] * 2
    ) * 2


def test_stride_two_convs_pad_symmetrically_then_valid():
    model = _shared("resnet20")
    stride2 = []
    for conv in _masked_convs(model):
        (parent,) = _parents(conv, model)
        if conv.strides == (1, 1):
            assert conv.padding == "same", conv.name
            assert not isinstance(parent, keras.layers.ZeroPadding2D), conv.name
            continue
        assert conv.strides == (2, 2)
        assert conv.padding == "valid", conv.name
        stride2.append(conv.name)
        if conv.kernel_size == (3, 3):
            assert isinstance(parent, keras.layers.ZeroPadding2D), conv.name
            assert tuple(map(tuple, parent.padding)) == ((1, 1), (1, 1))
            # 32 -> 34 -> 16 (or 16 -> 18 -> 8): the symmetric pad.
            size = parent.input.shape[1]
            assert parent.output.shape[1:3] == (size + 2, size + 2)
        else:
            assert conv.kernel_size == (1, 1)
            assert not isinstance(parent, keras.layers.ZeroPadding2D), conv.name
    assert sorted(stride2) == sorted(["conv_8", "proj_8_9", "conv_14", "proj_14_16"])


def test_resnet_feature_map_sizes():
    model = _shared("resnet20")
    stages = {
        (32, 16): ["conv_1", "proj_2_2"] + [f"conv_{k}" for k in range(2, 8)],
        (16, 32): ["proj_8_9"] + [f"conv_{k}" for k in range(8, 14)],
        (8, 64): ["proj_14_16"] + [f"conv_{k}" for k in range(14, 20)],
    }
    for (size, channels), names in stages.items():
        for name in names:
            shape = tuple(model.get_layer(name).output.shape)
            assert shape == (None, size, size, channels), name
    assert tuple(model.get_layer("pool").output.shape) == (None, 64)
    assert tuple(model.output.shape) == (None, 10)


def test_stride_two_padding_is_symmetric_numerically():
    # Symmetric pad 1 + "valid": output i sees input rows 2i-1..2i+1, so a
    # delta at (2, 2) reaches output (1, 1) only. Keras's stride-2 "same"
    # pads 0 before / 1 after (rows 2i..2i+2) and would also reach (0, 0).
    model = _fresh("resnet8")
    layer = model.get_layer("conv_4")
    pad = model.get_layer("conv_4_pad")
    sub = keras.Model(pad.input, layer.output)
    layer.raw_kernel.assign(np.ones(layer.raw_kernel.shape, "float32"))
    x = np.zeros((1, 32, 32, 16), "float32")
    x[0, 2, 2, 0] = 1.0
    y = _np(sub(x))
    assert y.shape == (1, 16, 16, 32)
    np.testing.assert_allclose(y[0, 1, 1], np.ones(32))
    assert np.count_nonzero(y) == 32


# --------------------------------------------------------------------------
# Bias, outputs, arguments.


@pytest.mark.parametrize("name", ["resnet20", "vgg16"])
def test_convs_have_no_bias_classifier_has_bias(name):
    model = _shared(name)
    for conv in _masked_convs(model):
        assert not conv.use_bias and conv.bias is None, conv.name
        assert len(conv.trainable_weights) == 1
    for dense in _of_type(model, MaskedDense):
        assert dense.use_bias and dense.bias is not None, dense.name
        assert tuple(dense.bias.shape) == (dense.units,)
    assert model.layers[-1].units == 10


def test_num_classes_and_input_shape_are_honoured():
    model = _fresh("resnet8", num_classes=7, input_shape=(16, 16, 3))
    assert tuple(model.input_shape) == (None, 16, 16, 3)
    assert tuple(model.output_shape) == (None, 7)
    assert tuple(model.get_layer("dense").kernel.shape) == (64, 7)
    y = model.predict(np.zeros((3, 16, 16, 3), "float32"), verbose=0)
    assert y.shape == (3, 7)
    # Stage sizes halve from the given input: 16 -> 8 -> 4.
    assert tuple(model.get_layer("conv_6").output.shape) == (None, 4, 4, 64)
    assert kl.sparsity_report(model).total.total == _resnet_count(8, 7)


@pytest.mark.parametrize("name", ["vgg16_nofc", "vgg16"])
def test_vgg_structure(name):
    model = _shared(name)
    for conv in _masked_convs(model):
        assert conv.kernel_size == (3, 3) and conv.strides == (1, 1)
        assert conv.padding == "same" and not conv.use_bias
    pools = _of_type(model, keras.layers.MaxPooling2D)
    assert len(pools) == 5
    assert all(p.pool_size == (2, 2) and p.strides == (2, 2) for p in pools)
    assert tuple(model.get_layer("flatten").output.shape) == (None, 512)
    assert tuple(model.output_shape) == (None, 10)
    if name == "vgg16":
        assert tuple(model.get_layer("fc_14").kernel.shape) == (512, 4096)
        assert tuple(model.get_layer("fc_15").kernel.shape) == (4096, 4096)
        assert tuple(model.get_layer("fc_16").kernel.shape) == (4096, 10)
        assert model.get_layer("fc_14").activation is keras.activations.relu
        assert model.get_layer("fc_15").activation is keras.activations.relu
    else:
        assert tuple(model.get_layer("fc_14").kernel.shape) == (512, 10)
    assert model.layers[-1].activation is keras.activations.linear


@pytest.mark.parametrize("name", ALL_ARCHS)
def test_every_conv_and_dense_is_masked(name):
    model = _shared(name)
    kernel_layers = [
        layer for layer in pruning.iter_layers(model)
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense))
    ]
    assert kernel_layers
    for layer in kernel_layers:
        assert isinstance(layer, (MaskedConv2D, MaskedDense)), layer.name
    # No other kind of kernel layer that would escape pruning.
    others = (keras.layers.Conv1D, keras.layers.Conv3D,
              keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D,
              keras.layers.Conv2DTranspose, keras.layers.EinsumDense)
    assert not any(isinstance(l, others) for l in model.layers)
    assert len(kl.get_masks(model)) == len(kernel_layers)


# --------------------------------------------------------------------------
# Initialisation.


def _check_lecun_truncated(initializer):
    assert isinstance(initializer, keras.initializers.VarianceScaling)
    assert initializer.scale == 1.0
    assert initializer.mode == "fan_in"
    assert initializer.distribution == "truncated_normal"


@pytest.mark.parametrize("name", ["resnet20", "vgg16"])
def test_initializer_configs(name):
    model = _shared(name)
    for conv in _masked_convs(model):
        _check_lecun_truncated(conv.kernel_initializer)
    for dense in _of_type(model, MaskedDense):
        init = dense.kernel_initializer
        assert isinstance(init, keras.initializers.RandomNormal), dense.name
        assert init.mean == 0.0 and init.stddev == pytest.approx(0.01)
        assert isinstance(dense.bias_initializer, keras.initializers.Zeros)


def _check_conv_kernel_statistics(kernel):
    kernel = np.asarray(kernel, np.float64)
    fan_in = np.prod(kernel.shape[:-1])
    target = math.sqrt(1.0 / fan_in)
    assert abs(kernel.std() / target - 1) < 0.10, (kernel.std(), target)
    assert abs(kernel.mean()) < 0.1 * target
    # Truncated at two standard deviations of the underlying normal.
    assert np.abs(kernel).max() <= 2 * target / TRUNC_STD + 1e-6
    # ...and the truncation point is actually approached (not a narrower law).
    assert np.abs(kernel).max() > 1.8 * target / TRUNC_STD


def test_resnet_init_statistics():
    model = _fresh("resnet8", seed=3, num_classes=100)
    convs = _masked_convs(model)
    for conv in convs:
        kernel = _np(conv.kernel)
        fan_in = np.prod(kernel.shape[:-1])
        assert np.abs(kernel).max() <= 2 * math.sqrt(1 / fan_in) / TRUNC_STD + 1e-6
    biggest = max(convs, key=lambda c: math.prod(c.kernel.shape))
    assert tuple(biggest.kernel.shape) == (3, 3, 64, 64)
    _check_conv_kernel_statistics(_np(biggest.kernel))

    dense = model.get_layer("dense")
    kernel = _np(dense.kernel)
    assert kernel.shape == (64, 100)
    assert abs(kernel.std() / 0.01 - 1) < 0.15
    assert abs(kernel.mean()) < 0.002
    np.testing.assert_array_equal(_np(dense.bias), np.zeros(100))

    bns = _of_type(model, keras.layers.BatchNormalization)
    assert len(bns) == len(convs)
    for bn in bns:
        channels = bn.gamma.shape[0]
        np.testing.assert_array_equal(_np(bn.gamma), np.ones(channels))
        np.testing.assert_array_equal(_np(bn.beta), np.zeros(channels))
        np.testing.assert_array_equal(_np(bn.moving_mean), np.zeros(channels))
        np.testing.assert_array_equal(_np(bn.moving_variance), np.ones(channels))


def test_vgg_init_statistics():
    model = _shared("vgg16")
    _check_conv_kernel_statistics(_np(model.get_layer("conv_13").kernel))
    _check_conv_kernel_statistics(_np(model.get_layer("conv_2").kernel))
    for name in ("fc_14", "fc_16"):
        layer = model.get_layer(name)
        kernel = _np(layer.kernel)
        assert abs(kernel.std() / 0.01 - 1) < 0.15, name
        np.testing.assert_array_equal(_np(layer.bias), np.zeros(layer.units))


# --------------------------------------------------------------------------
# Batch norm.


@pytest.mark.parametrize("name", ["resnet20", "resnet110", "vgg16_nofc", "vgg16"])
def test_batch_norm_hyperparameters(name):
    model = _shared(name)
    bns = _of_type(model, keras.layers.BatchNormalization)
    # One BN after every conv.
    assert len(bns) == len(_masked_convs(model))
    for bn in bns:
        assert bn.momentum == pytest.approx(0.997, abs=1e-12), bn.name
        assert bn.epsilon == pytest.approx(1e-5, rel=1e-9), bn.name
        assert bn.center and bn.scale
    consumers = _consumers(model)
    for conv in _masked_convs(model):
        (after,) = consumers[conv.name]
        assert isinstance(after, keras.layers.BatchNormalization), conv.name


# --------------------------------------------------------------------------
# Weight decay.


def _regularization_loss(model):
    return float(sum(np.sum(_np(loss), dtype=np.float64) for loss in model.losses))


def _expected_decay(model, wd):
    return wd / 2 * sum(
        np.sum(np.square(_np(v).astype(np.float64))) for v in model.trainable_variables
    )


def _randomize_trainables(model, seed=0):
    # Beta and the dense bias start at zero, so without this a missing
    # regulariser on them would not change the loss.
    rng = np.random.default_rng(seed)
    for v in model.trainable_variables:
        v.assign(rng.normal(0.0, 0.1, v.shape).astype("float32"))


def _expected_trainables(model):
    expected = []
    for layer in model.layers:
        if isinstance(layer, (MaskedConv2D, MaskedDense)):
            expected.append(layer.raw_kernel)
            if layer.use_bias:
                expected.append(layer.bias)
        elif isinstance(layer, keras.layers.BatchNormalization):
            expected += [layer.gamma, layer.beta]
    return expected


@pytest.mark.parametrize(
    "name, wd",
    [("resnet8", RESNET_WD), ("vgg16_nofc", VGG_WD), ("lenet300", LENET_WD)],
)
def test_weight_decay_on_every_trainable_variable(name, wd):
    model = _fresh(name)
    trainable = model.trainable_variables
    # Exactly kernels, classifier biases and BN gamma/beta are trainable.
    assert {id(v) for v in trainable} == {id(v) for v in _expected_trainables(model)}
    assert not any(v.path.endswith("mask") for v in trainable)
    assert len(model.losses) == len(trainable)

    _randomize_trainables(model)
    np.testing.assert_allclose(
        _regularization_loss(model), _expected_decay(model, wd), rtol=1e-5
    )
    # The L2 coefficient itself is wd / 2 on each kind of variable.
    for layer in model.layers:
        regularizers = []
        if isinstance(layer, (MaskedConv2D, MaskedDense)):
            regularizers.append(layer.kernel_regularizer)
            if layer.use_bias:
                regularizers.append(layer.bias_regularizer)
        elif isinstance(layer, keras.layers.BatchNormalization):
            regularizers += [layer.gamma_regularizer, layer.beta_regularizer]
        for reg in regularizers:
            assert isinstance(reg, keras.regularizers.L2), layer.name
            assert reg.get_config()["l2"] == pytest.approx(wd / 2), layer.name


def test_weight_decay_at_init_matches_formula():
    model = _fresh("resnet8", seed=5)
    loss = _regularization_loss(model)
    np.testing.assert_allclose(loss, _expected_decay(model, RESNET_WD), rtol=1e-5)
    # If the (all-ones) masks were regularised the loss would be far larger.
    mask_term = RESNET_WD / 2 * sum(m.size for m in kl.get_masks(model).values())
    assert loss < mask_term


def test_weight_decay_ignores_masks_and_acts_on_raw_kernel():
    model = _fresh("resnet8", seed=7)
    _randomize_trainables(model, seed=1)

    # A mask written directly (kernel left intact): the penalty still sees the
    # raw kernel, not kernel * mask (SPEC §7.4).
    conv = model.get_layer("conv_5")
    raw = _np(conv.raw_kernel).copy()
    conv.mask.assign(np.zeros(conv.mask.shape, "float32"))
    np.testing.assert_array_equal(_np(conv.raw_kernel), raw)
    assert np.sum(raw**2) > 0
    np.testing.assert_allclose(
        _regularization_loss(model), _expected_decay(model, RESNET_WD), rtol=1e-5
    )

    # set_mask zeroes the stored kernel, so its penalty share goes away.
    before = _regularization_loss(model)
    dense = model.get_layer("dense")
    dense_raw = _np(dense.raw_kernel).astype(np.float64)
    mask = np.zeros(dense.mask.shape, "float32")
    mask[:, :3] = 1
    dense.set_mask(mask)
    after = _regularization_loss(model)
    np.testing.assert_allclose(after, _expected_decay(model, RESNET_WD), rtol=1e-5)
    np.testing.assert_allclose(
        before - after, RESNET_WD / 2 * np.sum((dense_raw * (1 - mask)) ** 2), rtol=1e-4
    )

    # After a global prune the formula still holds on the actual values.
    kl.prune(model, 0.3)
    assert len(model.losses) == len(model.trainable_variables)
    np.testing.assert_allclose(
        _regularization_loss(model), _expected_decay(model, RESNET_WD), rtol=1e-5
    )


# --------------------------------------------------------------------------
# Dropout.


def test_vgg16_dropout_only_in_training():
    model = _shared("vgg16")
    dropouts = _of_type(model, keras.layers.Dropout)
    assert [d.name for d in dropouts] == ["fc_14_dropout", "fc_15_dropout"]
    assert all(d.rate == 0.5 for d in dropouts)
    consumers = _consumers(model)
    assert consumers["fc_14"] == [dropouts[0]]
    assert consumers["fc_15"] == [dropouts[1]]

    # Training-mode calls move the BN statistics of this shared model: restore.
    saved = [_np(v).copy() for v in model.non_trainable_variables]
    try:
        _check_dropout_only_in_training(model)
    finally:
        for v, value in zip(model.non_trainable_variables, saved):
            v.assign(value)


def _check_dropout_only_in_training(model):
    x = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype("float32")
    a = _np(model(x, training=False))
    b = _np(model(x, training=False))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(model.predict(x, verbose=0), model.predict(x, verbose=0))
    # ...while in training the two dropout layers do act.
    c = _np(model(x, training=True))
    d = _np(model(x, training=True))
    assert not np.allclose(c, d)


def test_vgg16_nofc_has_no_dropout():
    model = _shared("vgg16_nofc")
    assert not _of_type(model, keras.layers.Dropout)
    x = np.random.default_rng(1).normal(size=(2, 32, 32, 3)).astype("float32")
    np.testing.assert_array_equal(
        _np(model(x, training=False)), _np(model(x, training=False))
    )


# --------------------------------------------------------------------------
# LeNet-300-100.


def _lenet_count(inputs, num_classes=10):
    return inputs * 300 + 300 * 100 + 100 * num_classes


@pytest.mark.parametrize(
    "input_shape, num_classes", [((8, 8, 1), 10), ((32, 32, 3), 10), ((8, 8, 1), 4)]
)
def test_lenet300_shape_names_and_counts(input_shape, num_classes):
    model = _fresh("lenet300", input_shape=input_shape, num_classes=num_classes)
    inputs = math.prod(input_shape)
    assert model.name == "lenet300"
    assert tuple(model.input_shape) == (None,) + input_shape
    assert tuple(model.output_shape) == (None, num_classes)
    assert [layer.name for layer in model.layers] == [
        "image", "flatten", "fc_1", "fc_2", "fc_3"
    ]
    names = [layer.name for layer in pruning.masked_layers(model)]
    assert names == ["fc_1", "fc_2", "fc_3"]
    shapes = {name: tuple(m.shape) for name, m in kl.get_masks(model).items()}
    assert shapes == {
        "fc_1": (inputs, 300), "fc_2": (300, 100), "fc_3": (100, num_classes)
    }
    report = kl.sparsity_report(model)
    assert report.total.total == _lenet_count(inputs, num_classes)
    assert report.total.remaining == report.total.total
    if input_shape == (8, 8, 1) and num_classes == 10:
        assert report.total.total == 64 * 300 + 300 * 100 + 100 * 10 == 50_200
    y = model.predict(np.zeros((2,) + input_shape, "float32"), verbose=0)
    assert y.shape == (2, num_classes)


def test_lenet300_layers():
    model = _fresh("lenet300", input_shape=(8, 8, 1), seed=2)
    activations = [model.get_layer(f"fc_{k}").activation for k in (1, 2, 3)]
    assert activations[:2] == [keras.activations.relu] * 2
    assert activations[2] is keras.activations.linear  # logits
    assert not _of_type(model, keras.layers.BatchNormalization)
    for layer in _of_type(model, MaskedDense):
        assert isinstance(layer.kernel_initializer, keras.initializers.GlorotNormal)
        assert layer.use_bias
        np.testing.assert_array_equal(_np(layer.bias), np.zeros(layer.units))
    # Gaussian Glorot: std sqrt(2 / (fan_in + fan_out)), truncated at 2 sigma.
    kernel = _np(model.get_layer("fc_1").kernel).astype(np.float64)
    target = math.sqrt(2 / (64 + 300))
    assert abs(kernel.std() / target - 1) < 0.05
    assert np.abs(kernel).max() <= 2 * target / TRUNC_STD + 1e-6


def test_lenet300_trains_on_digits():
    from keras_lottery import data
    from keras_lottery.training.optimizer import MomentumSGD

    ds = data.load("digits")
    model = _fresh("lenet300", input_shape=ds.image_shape, num_classes=ds.num_classes)
    model.compile(
        optimizer=MomentumSGD(0.05, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="top1")],
    )
    test = data.EvalBatches(ds.x_test, ds.y_test, 360)
    loss_before, _ = model.evaluate(test, verbose=0)
    batches = data.TrainBatches(
        ds.x_train, ds.y_train, 64, seed=0, num_steps=40, augment=ds.augment
    )
    model.fit(batches, epochs=1, verbose=0)
    loss_after, top1 = model.evaluate(test, verbose=0)
    assert loss_before > 2.0  # about ln 10 at init
    assert loss_after < 0.5 * loss_before
    assert top1 > 0.8
