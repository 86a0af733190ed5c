"""thin(): the pruned filters physically removed, the outputs unchanged (in
inference), the parameters and FLOPs fewer; empty layers kept as constants;
a plain Keras model that saves and loads; what it cannot rebuild refused in
one line."""

import keras
import numpy as np
import pytest

import keras_lottery as kl
from error_messages import single_line
from keras_lottery import models
from keras_lottery.errors import LotteryError
from keras_lottery.sparse import flops

EPSILON = 1e-5  # the ResNets' and VGG's batch-norm epsilon


def _build(name, seed=0, **kwargs):
    keras.utils.set_random_seed(seed)
    model = models.build(name, **kwargs)
    _give_batch_norms_statistics(model, seed)
    return model


def _give_batch_norms_statistics(model, seed):
    """Batch norms that are not the identity, as after training."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.gamma.assign(rng.uniform(0.5, 1.5, n))
            layer.beta.assign(rng.normal(0, 0.5, n))
            layer.moving_mean.assign(rng.normal(0, 0.5, n))
            layer.moving_variance.assign(rng.uniform(0.5, 1.5, n))


def _images(shape, n=4, seed=1):
    return np.random.default_rng(seed).normal(size=(n, *shape)).astype("float32")


def _assert_same_outputs(masked, thinned, x):
    want = keras.ops.convert_to_numpy(masked(x, training=False))
    got = keras.ops.convert_to_numpy(thinned(x, training=False))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def _params(model):
    return sum(int(np.prod(v.shape)) for v in model.weights)


def _plain_params(masked):
    """The parameters of `masked` without its masks (what strip() keeps)."""
    return _params(kl.strip(masked))


def _assert_plain(model):
    assert not [layer.name for layer in model.layers
                if type(layer).__module__.startswith("keras_lottery")]


def test_resnet8_thinned_computes_the_same_with_fewer_parameters():
    model = _build("resnet8")
    kl.prune_filters(model, {"conv_2": 0.5, "conv_4": 0.25, "conv_6": 0.75})
    thinned = kl.thin(model)
    _assert_same_outputs(model, thinned, _images((32, 32, 3)))
    _assert_plain(thinned)
    filters = {name: thinned.get_layer(name).filters for name in ("conv_2", "conv_4", "conv_6")}
    assert filters == {"conv_2": 8, "conv_4": 24, "conv_6": 16}
    # Each removed filter takes its kernel slice (9 x cin), its batch norm's
    # four values and the next conv's input slice (9 x cout).
    removed = 8 * (9 * 16 + 4 + 9 * 16) + 8 * (9 * 16 + 4 + 9 * 32) + 48 * (
        9 * 32 + 4 + 9 * 64)
    assert _params(thinned) == _plain_params(model) - removed
    assert flops.model_flops(thinned) == (kl.sparsity_report(model).flops.kept,) * 2
    assert flops.model_flops(thinned).kept < flops.model_flops(model).total


def test_unstructured_zeros_stay_zeros_and_names_stay():
    model = _build("resnet8", seed=2)
    kl.prune(model, 0.5)
    kl.prune_filters(model, {"conv_2": 0.5})
    thinned = kl.thin(model)
    _assert_same_outputs(model, thinned, _images((32, 32, 3)))
    masked = kl.get_kernels(model)["conv_3"] * kl.get_masks(model)["conv_3"]
    kept = np.flatnonzero(kl.get_masks(model)["conv_2"].reshape(-1, 16).any(axis=0))
    assert len(kept) == 8
    kernel = keras.ops.convert_to_numpy(thinned.get_layer("conv_3").kernel)
    np.testing.assert_array_equal(kernel, masked[:, :, kept, :])
    assert (kernel == 0).sum() > 0
    names = {layer.name for layer in model.layers}
    assert {layer.name for layer in thinned.layers} == names


@pytest.fixture(scope="module")
def resnet56_b5():
    model = _build("resnet56", seed=3)
    kl.prune_filters(model, "resnet56-B", level=5)
    return model, kl.thin(model)


def _empty_blocks(model):
    """The k of each block whose first conv, conv_k, lost every filter (its
    second conv then keeps none either: all its inputs are gone)."""
    report = kl.sparsity_report(model)
    empty = [int(name.split("_")[1]) for name, (kept, _) in report.filters.items()
             if kept == 0]
    return [k for k in empty if k % 2 == 0 and k + 1 in empty]


def test_resnet56_level_5_b_keeps_an_empty_blocks_branch_as_its_shift(resnet56_b5):
    model, thinned = resnet56_b5
    empty = _empty_blocks(model)
    assert empty and all(k <= 18 for k in empty)  # stage-1 convs, 16 filters
    _assert_same_outputs(model, thinned, _images((32, 32, 3), n=8))
    names = {layer.name for layer in thinned.layers}
    for k in empty:
        assert not {f"conv_{k}", f"conv_{k + 1}", f"conv_{k + 1}_bn"} & names
        # The branch is batch norm of zeros: beta - gamma * mean / sqrt(var + eps).
        bn = model.get_layer(f"conv_{k + 1}_bn")
        gamma, beta, mean, variance = (keras.ops.convert_to_numpy(v) for v in (
            bn.gamma, bn.beta, bn.moving_mean, bn.moving_variance))
        shift = thinned.get_layer(f"conv_{k + 1}_add")
        assert isinstance(shift, keras.layers.Rescaling)
        np.testing.assert_allclose(shift.offset, beta - gamma * mean / np.sqrt(
            variance + EPSILON), rtol=1e-5, atol=1e-6)


def test_resnet56_thinned_has_the_expected_parameters_and_flops(resnet56_b5):
    model, thinned = resnet56_b5
    masks = kl.get_masks(model)
    expected = _plain_params(model)
    for k in range(2, 56, 2):  # each block's first conv and what reads it
        width, cin = masks[f"conv_{k}"].shape[-1], masks[f"conv_{k}"].shape[-2]
        gone = width - int(masks[f"conv_{k}"][0, 0, 0].sum())
        expected -= gone * (9 * cin + 4 + 9 * width)
        if gone == width:  # the second conv and its batch norm go too
            expected -= 4 * width
    assert _params(thinned) == expected
    report = kl.sparsity_report(model)
    assert flops.model_flops(thinned) == (report.flops.kept, report.flops.kept)
    assert report.flops.total / report.flops.kept > 2


def test_channels_can_be_kept_in_multiples(resnet56_b5):
    model = _build("resnet8", seed=7)
    kl.prune_filters(model, {"conv_2": 0.6, "conv_4": 0.3})
    report = kl.sparsity_report(model).filters
    assert report["conv_2"][0] in (6, 7) and report["conv_4"][0] in (22, 23)
    thinned = kl.thin(model, multiple=8)
    _assert_same_outputs(model, thinned, _images((32, 32, 3)))
    assert (thinned.get_layer("conv_2").filters, thinned.get_layer("conv_4").filters) == (
        8, 24)
    assert thinned.get_layer("conv_3").kernel.shape == (3, 3, 8, 16)
    # A layer left with no filter keeps none.
    masked, exact = resnet56_b5
    rounded = kl.thin(masked, multiple=8)
    shifts = [layer.name for layer in rounded.layers
              if isinstance(layer, keras.layers.Rescaling)]
    assert shifts == [layer.name for layer in exact.layers
                      if isinstance(layer, keras.layers.Rescaling)] and shifts
    _assert_same_outputs(masked, rounded, _images((32, 32, 3)))
    for bad in (0, 2.0, True):
        with pytest.raises(LotteryError) as info:
            kl.thin(model, multiple=bad)
        assert single_line(info) == f"multiple={bad!r}: expected an integer >= 1"


def test_the_thinned_model_saves_and_loads_as_plain_keras(resnet56_b5, tmp_path):
    _, thinned = resnet56_b5
    _assert_plain(thinned)
    path = tmp_path / "thinned.keras"
    thinned.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    _assert_plain(loaded)
    _assert_same_outputs(thinned, loaded, _images((32, 32, 3)))


def test_vgg16_on_small_images():
    model = _build("vgg16", seed=4, input_shape=(32, 32, 3))
    masks = kl.get_masks(model)
    masks["fc_15"] = (np.random.default_rng(0).random(masks["fc_15"].shape) < 0.5) * 1.0
    masks["fc_16"][100:300] = 0  # 200 units of fc_15 no longer read: they go
    kl.set_masks(model, masks)
    kl.prune_filters(model, "vgg16-A", level=2)
    thinned = kl.thin(model)
    _assert_same_outputs(model, thinned, _images((32, 32, 3), n=2))
    widths = [thinned.get_layer(f"conv_{k}").filters for k in range(1, 14)]
    assert widths == [16, 64, 128, 128, 256, 256, 256, 128, 128, 128, 128, 128, 128]
    assert thinned.get_layer("fc_14").kernel.shape == (128, 4096)
    assert thinned.get_layer("fc_15").units == 3896
    assert thinned.get_layer("fc_16").kernel.shape == (3896, 10)


def test_lenet300_loses_the_units_no_layer_reads():
    model = _build("lenet300", input_shape=(8, 8, 1))
    kl.prune(model, 0.3)
    masks = kl.get_masks(model)
    masks["fc_2"][:120] = 0   # 120 of fc_1's units read by nobody
    masks["fc_3"][::2] = 0    # half of fc_2's
    kl.set_masks(model, masks)
    thinned = kl.thin(model)
    _assert_same_outputs(model, thinned, _images((8, 8, 1)))
    used_1 = int((masks["fc_2"].any(axis=1)).sum())
    used_2 = int((masks["fc_3"].any(axis=1)).sum())
    assert (thinned.get_layer("fc_1").units, thinned.get_layer("fc_2").units) == (
        used_1, used_2)
    assert _params(thinned) == 64 * used_1 + used_1 + used_1 * used_2 + used_2 + (
        used_2 * 10 + 10)


def test_conv2_through_its_pool_and_flatten():
    model = _build("conv2")
    kl.prune_filters(model, {"conv_1": 0.5, "conv_2": 0.25})
    thinned = kl.thin(model)
    _assert_same_outputs(model, thinned, _images((32, 32, 3)))
    # conv_2's 48 kept filters each take 16 x 16 rows of fc_3 with them.
    assert thinned.get_layer("fc_3").kernel.shape == (16 * 16 * 48, 256)
    removed = 32 * (27 + 1) + 32 * 9 * 64 + 16 * (9 * 32 + 1) + 16 * 256 * 256
    assert _params(thinned) == _plain_params(model) - removed


def _users_own():
    """A functional model of the user's own: batch norm, a residual Add, a
    Concatenate, dropout and global pooling."""
    x = image = keras.Input((12, 12, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False, name="stem")(x)
    x = keras.layers.Activation("relu")(keras.layers.BatchNormalization(name="stem_bn")(x))
    y = keras.layers.Conv2D(12, 3, padding="same", name="a")(x)
    y = keras.layers.LeakyReLU()(keras.layers.BatchNormalization(name="a_bn")(y))
    y = keras.layers.Dropout(0.3)(keras.layers.ZeroPadding2D(1)(y))
    y = keras.layers.Conv2D(8, 3, name="b")(y)
    x = keras.layers.Add(name="sum")([x, y])
    z = keras.layers.Conv2D(6, 1, name="c")(x)
    x = keras.layers.Concatenate(name="cat")([x, keras.layers.ReLU()(z)])
    x = keras.layers.Conv2D(10, 3, strides=2, name="d")(x)
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.ReLU()(x))
    x = keras.layers.Dense(5, name="out")(keras.layers.Dropout(0.5)(x))
    return keras.Model(image, x, name="mine")


def test_a_converted_functional_model_of_the_users_own():
    keras.utils.set_random_seed(5)
    model = kl.masked(_users_own())
    _give_batch_norms_statistics(model, 5)
    kl.prune_filters(model, {"a": 0.5, "d": 0.3})
    thinned = kl.thin(model)
    _assert_same_outputs(model, thinned, _images((12, 12, 3)))
    assert (thinned.get_layer("a").filters, thinned.get_layer("d").filters) == (6, 7)
    assert thinned.get_layer("b").kernel.shape == (3, 3, 6, 8)
    removed = 6 * (9 * 8 + 1 + 4 + 9 * 8) + 3 * (9 * 14 + 1 + 5)
    assert _params(thinned) == _plain_params(model) - removed


def test_a_sequential_model():
    keras.utils.set_random_seed(6)
    model = kl.masked(keras.Sequential([
        keras.Input((10, 10, 2)), keras.layers.Conv2D(6, 3, activation="relu"),
        keras.layers.MaxPooling2D(2), keras.layers.Flatten(), keras.layers.Dense(3)]))
    kl.prune_filters(model, {model.layers[0].name: 0.5})
    thinned = kl.thin(model)
    _assert_same_outputs(model, thinned, _images((10, 10, 2)))
    assert thinned.layers[1].filters == 3


def _nested():
    inner = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)], name="inner")
    x = keras.Input((4,))
    return keras.Model(x, keras.layers.Dense(2)(inner(x)))


def _with_an_op():
    x = keras.Input((4,))
    y = keras.layers.Dense(3)(x)
    return keras.Model(x, keras.layers.Dense(2)(keras.ops.add(y, 1.0)))


def _everything_pruned():
    model = kl.masked(keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="h"),
                                        keras.layers.Dense(2, name="o")]))
    kl.set_masks(model, {"o": np.zeros((3, 2))})
    return model


def _constant_into_a_padded_conv():
    x = image = keras.Input((6, 6, 2))
    for name in ("p", "q", "r"):
        x = keras.layers.Conv2D(3, 3, padding="same", name=name)(x)
    model = kl.masked(keras.Model(image, x))
    masks = kl.get_masks(model)
    masks["q"][:] = 0  # q's input is all pruned: p goes, q is its bias
    kl.set_masks(model, masks)
    model.get_layer("q").bias.assign(np.ones(3))
    return model


@pytest.mark.parametrize("build, fragment", [
    (_nested, "'inner' is a nested model"),
    (_with_an_op, "is not a layer"),
    (_everything_pruned, "no longer depends on the input"),
    (_constant_into_a_padded_conv, "'r' reads a nonzero constant"),
])
def test_what_it_cannot_rebuild_is_named_in_one_line(build, fragment):
    with pytest.raises(LotteryError) as info:
        kl.thin(build())
    message = single_line(info)
    assert message.startswith("model=") and fragment in message
