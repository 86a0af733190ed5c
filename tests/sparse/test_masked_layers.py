"""Every masked twin: conversion, pruning, checkpoints and strip, per type."""

import warnings

import h5py
import keras
import numpy as np
import pytest

import keras_lottery as kl
from keras_lottery.sparse import pruning
from keras_lottery.sparse.layers import MASKED_TWINS

L = keras.layers
SEP = ("depthwise_kernel", "pointwise_kernel")

# plain layer, input shape (without batch), its .weights.h5 group, kernels.
CASES = {
    "Conv1D": (lambda: L.Conv1D(3, 3), (10, 4), "masked_conv1d", ("kernel",)),
    "Conv2D": (lambda: L.Conv2D(3, 3), (7, 7, 2), "masked_conv2d", ("kernel",)),
    "Conv3D": (lambda: L.Conv3D(2, 2), (4, 4, 4, 2), "masked_conv3d", ("kernel",)),
    "Conv1DTranspose": (lambda: L.Conv1DTranspose(3, 3, strides=2), (6, 4),
                        "masked_conv1d_transpose", ("kernel",)),
    "Conv2DTranspose": (lambda: L.Conv2DTranspose(3, 3), (5, 5, 2),
                        "masked_conv2d_transpose", ("kernel",)),
    "Conv3DTranspose": (lambda: L.Conv3DTranspose(2, 2), (3, 3, 3, 2),
                        "masked_conv3d_transpose", ("kernel",)),
    "DepthwiseConv1D": (lambda: L.DepthwiseConv1D(3, depth_multiplier=2), (10, 4),
                        "masked_depthwise_conv1d", ("kernel",)),
    "DepthwiseConv2D": (lambda: L.DepthwiseConv2D(3, depth_multiplier=2), (7, 7, 3),
                        "masked_depthwise_conv2d", ("kernel",)),
    "SeparableConv1D": (lambda: L.SeparableConv1D(3, 3, depth_multiplier=2), (10, 4),
                        "masked_separable_conv1d", SEP),
    "SeparableConv2D": (lambda: L.SeparableConv2D(3, 3), (7, 7, 3),
                        "masked_separable_conv2d", SEP),
    "EinsumDense": (lambda: L.EinsumDense("abc,cd->abd", (5, 6), bias_axes="d"),
                    (5, 4), "masked_einsum_dense", ("kernel",)),
    "Dense": (lambda: L.Dense(6), (5,), "masked_dense", ("kernel",)),
}


def _np(x):
    return keras.ops.convert_to_numpy(x)


def test_every_twin_is_covered():
    assert sorted(CASES) == sorted(cls.__name__ for cls in MASKED_TWINS)
    for plain, masked in MASKED_TWINS.items():
        assert issubclass(masked, plain) and masked.__name__ == "Masked" + plain.__name__
        assert getattr(kl, masked.__name__) is masked
        assert keras.saving.get_registered_name(masked) == f"keras_lottery>{masked.__name__}"


def _model(kind, seed=0):
    make, shape, _, _ = CASES[kind]
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape)
    layer = make()
    layer = type(layer).from_config({**layer.get_config(), "name": "k"})
    x = keras.layers.Flatten()(layer(inputs))
    outputs = keras.layers.Dense(3, name="head")(x)
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(seed)
    for v in model.weights:  # biases off zero, so a lost bias shows
        v.assign(rng.normal(0, 0.5, v.shape).astype("float32"))
    return model


def _keys(kind):
    kernels = CASES[kind][3]
    keys = ["k"] if len(kernels) == 1 else [f"k/{n}" for n in kernels]
    return keys + ["head"]


def _inputs(model, seed=1):
    shape = (2,) + tuple(model.input_shape[1:])
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


@pytest.mark.parametrize("kind", sorted(CASES))
def test_masked_prune_save_strip(kind, tmp_path):
    original = _model(kind)
    x = _inputs(original)
    expected = _np(original(x))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # everything with weights is masked
        model = kl.masked(original)
    layer, plain = model.get_layer("k"), original.get_layer("k")
    assert type(layer) is MASKED_TWINS[type(plain)]
    assert layer.get_config() == plain.get_config()
    config = layer.get_config()
    assert type(layer).from_config(config).get_config() == config
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(layer))
    assert type(restored) is type(layer) and restored.get_config() == config
    np.testing.assert_allclose(_np(model(x)), expected, rtol=1e-6, atol=1e-6)
    assert list(kl.get_masks(model)) == _keys(kind)

    kernels = CASES[kind][3]
    assert layer.kernel_names == kernels
    for name in kernels:
        np.testing.assert_array_equal(_np(getattr(layer, "raw_" + name)),
                                      _np(getattr(plain, name)))
        np.testing.assert_array_equal(_np(getattr(layer, mask_of(name))), 1)
    sizes = [int(np.prod(getattr(plain, n).shape)) for n in kernels]
    total = sum(sizes) + int(np.prod(original.get_layer("head").kernel.shape))
    assert kl.sparsity_report(model).total.total == total

    # Global: exactly round(d * N) over every masked kernel together.
    other = kl.masked(original)
    kl.prune(other, 0.3)
    assert sum(int(m.sum()) for m in kl.get_masks(other).values()) == round(0.3 * total)
    # Layerwise, so that every kernel surely keeps some weights and loses some.
    kl.prune(model, 0.3, scope="layerwise")
    masks = kl.get_masks(model)
    for key, mask in masks.items():
        assert mask.sum() == round(0.3 * mask.size), key
        owner, _, name = key.partition("/")
        raw = _np(getattr(model.get_layer(owner), "raw_" + (name or "kernel")))
        assert (raw[mask == 0] == 0).all() and (raw[mask == 1] != 0).all(), key
    pruned_out = _np(model(x))
    assert not np.allclose(pruned_out, expected)

    # The loss gives pruned raw entries no gradient, kept ones some.
    import tensorflow as tf

    raws = [getattr(layer, "raw_" + n) for n in kernels]
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.square(model(x)))
    for key, grad in zip(_keys(kind), tape.gradient(loss, raws)):
        grad = grad.numpy()
        assert (grad[masks[key] == 0] == 0).all() and np.abs(grad).sum() > 0, key

    # .weights.h5: the layer's vars are kernel(s), bias, mask(s) in order.
    model.save_weights(tmp_path / "w.weights.h5")
    with h5py.File(tmp_path / "w.weights.h5") as f:
        stored = f[f"layers/{CASES[kind][2]}/vars"]
        order = [getattr(layer, "raw_" + n) for n in kernels] + [layer.bias] + [
            getattr(layer, mask_of(n)) for n in kernels]
        assert sorted(stored) == [str(i) for i in range(len(order))]
        for i, variable in enumerate(order):
            np.testing.assert_array_equal(stored[str(i)][()], _np(variable))
    fresh = kl.masked(_model(kind, seed=5))
    fresh.load_weights(tmp_path / "w.weights.h5")
    np.testing.assert_allclose(_np(fresh(x)), pruned_out, rtol=1e-6, atol=1e-6)

    # .keras round trip keeps the type, the masks and the output.
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert type(loaded.get_layer("k")) is type(layer)
    for key, mask in kl.get_masks(loaded).items():
        np.testing.assert_array_equal(mask, masks[key])
    np.testing.assert_allclose(_np(loaded(x)), pruned_out, rtol=1e-6, atol=1e-6)

    # strip: plain Keras layers holding kernel × mask. Masks assigned
    # directly leave the stored kernels whole, so only a fold gets it right.
    rng = np.random.default_rng(7)
    for name in kernels:
        variable = getattr(layer, mask_of(name))
        variable.assign((rng.random(variable.shape) < 0.5).astype("float32"))
    masked_out = _np(model(x))
    stripped = kl.strip(model)
    plain_layer = stripped.get_layer("k")
    assert type(plain_layer) is type(plain)
    assert not any(v.name.endswith("mask") for v in stripped.weights)
    for name in kernels:
        raw = _np(getattr(layer, "raw_" + name))
        mask = _np(getattr(layer, mask_of(name)))
        assert (raw * (1 - mask)).any()
        np.testing.assert_array_equal(_np(getattr(plain_layer, name)), raw * mask)
    np.testing.assert_allclose(_np(stripped(x)), masked_out, rtol=1e-6, atol=1e-6)


def mask_of(kernel_name):
    return kernel_name[: -len("kernel")] + "mask"


def _separable():
    model = kl.masked(_model("SeparableConv2D"))
    return model, model.get_layer("k")


def test_separable_keys_in_set_masks_and_exclude():
    model, layer = _separable()
    keys = ["k/depthwise_kernel", "k/pointwise_kernel", "head"]
    assert list(kl.get_masks(model)) == keys
    assert [r.name for r in kl.sparsity_report(model).rows] == keys
    assert pruning.mask_key(layer, "pointwise_kernel") == "k/pointwise_kernel"
    # A layer name excludes all its kernels; a key excludes one.
    new = kl.prune(model, 0.5, exclude="k")
    assert list(new) == ["head"]
    assert kl.get_masks(model)["k/depthwise_kernel"].all()
    new = kl.prune(model, 0.4, exclude=["k/pointwise_kernel"])
    assert list(new) == ["k/depthwise_kernel", "head"]
    assert kl.get_masks(model)["k/pointwise_kernel"].all()
    assert not kl.get_masks(model)["k/depthwise_kernel"].all()
    with pytest.raises(ValueError, match=r"exclude names no masked layer.*'k/bias'"):
        kl.prune(model, 0.3, exclude=["k/bias"])
    # set_masks by key; the layer's name alone is ambiguous.
    zeros = np.zeros(layer.raw_pointwise_kernel.shape)
    kl.set_masks(model, {"k/pointwise_kernel": zeros})
    assert not _np(layer.raw_pointwise_kernel).any()
    assert not _np(layer.pointwise_kernel).any()
    assert _np(layer.raw_depthwise_kernel).any()
    with pytest.raises(ValueError, match="layer 'k' has several kernels"):
        kl.set_masks(model, {"k": zeros})


def test_separable_set_mask_names_its_kernel():
    _, layer = _separable()
    shape = layer.raw_depthwise_kernel.shape
    with pytest.raises(ValueError, match="kernel must be one of .* got kernel=None"):
        layer.set_mask(np.ones(shape))
    with pytest.raises(ValueError, match=r"\(depthwise_kernel\) has shape"):
        layer.set_mask(np.ones((1, 2)), "depthwise_kernel")
    layer.set_mask(np.zeros(shape), "depthwise_kernel")
    assert not _np(layer.depthwise_mask).any()
    assert _np(layer.pointwise_mask).all()


JAX_SCRIPT = """
import keras, numpy as np, keras_lottery as kl
from keras_lottery.sparse import pruning
from keras_lottery.sparse.slots import slot_variables
assert keras.backend.backend() == "jax"
keras.utils.set_random_seed(0)
inputs = keras.Input((8, 8, 2))
x = keras.layers.Conv2D(4, 3, padding="same")(inputs)
x = keras.layers.SeparableConv2D(4, 3)(x)
x = keras.layers.DepthwiseConv2D(3)(x)
x = keras.layers.Conv2DTranspose(3, 3, strides=2)(x)
x = keras.layers.Reshape((81, 3))(x)
x = keras.layers.EinsumDense("abc,cd->abd", (81, 4), bias_axes="d")(x)
x = keras.layers.Flatten()(x)
model = kl.masked(keras.Model(inputs, keras.layers.Dense(3)(x)))
assert len(kl.get_masks(model)) == 7, list(kl.get_masks(model))
model.compile(optimizer=kl.LossScaleOptimizer(kl.MomentumSGD(0.01), initial_scale=2.0**8),
              loss="mse")
rng = np.random.default_rng(0)
data = rng.normal(size=(8, 8, 8, 2)).astype("float32"), rng.normal(size=(8, 3)).astype("float32")
model.fit(*data, batch_size=4, verbose=0)
kl.prune(model, 0.4)
masks = kl.get_masks(model)
entries = pruning.masked_kernels(model)
for key, (_, kernel) in entries.items():
    (slot,) = slot_variables(model.optimizer, kernel.raw, model.variables)
    assert not np.asarray(slot)[masks[key] == 0].any(), key
model.fit(*data, batch_size=4, verbose=0)
for key, (_, kernel) in entries.items():
    assert not np.asarray(kernel.raw)[masks[key] == 0].any(), key
x = data[0][:2]
model.save_weights({path!r})
fresh = kl.masked(keras.models.clone_model(kl.strip(model)))
fresh.load_weights({path!r})
np.testing.assert_allclose(np.asarray(fresh(x)), np.asarray(model(x)), rtol=1e-5, atol=1e-6)
np.testing.assert_allclose(np.asarray(kl.strip(model)(x)), np.asarray(model(x)), rtol=1e-5, atol=1e-6)
print("jax-ok")
"""


def test_masked_twins_train_prune_and_save_under_jax(tmp_path):
    import os
    import subprocess
    import sys

    pytest.importorskip("jax")
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    script = JAX_SCRIPT.format(path=str(tmp_path / "w.weights.h5"))
    result = subprocess.run([sys.executable, "-c", script], env=env,
                            capture_output=True, text=True, timeout=300)
    assert "jax-ok" in result.stdout, result.stderr[-3000:]
