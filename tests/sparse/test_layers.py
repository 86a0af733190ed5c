import os
import subprocess
import sys
import textwrap

import h5py
import keras
import numpy as np
import pytest

import keras_lottery as kl
from keras_lottery.sparse import layers
from keras_lottery import MaskedConv2D
from keras_lottery import MaskedDense


def _random_mask(shape, density=0.5, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.random(shape) < density).astype("float32")


def _conv_model(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 3))
    x = MaskedConv2D(4, 3, padding="same", name="conv")(inputs)
    x = keras.layers.Flatten()(x)
    outputs = MaskedDense(5, name="dense")(x)
    return keras.Model(inputs, outputs)


@pytest.mark.parametrize(
    "layer, input_shape, output_shape, kernel_shape",
    [
        (lambda: MaskedConv2D(4, 3), (2, 8, 8, 3), (2, 6, 6, 4), (3, 3, 3, 4)),
        (
            lambda: MaskedConv2D(4, 3, strides=2, padding="same"),
            (2, 8, 8, 3),
            (2, 4, 4, 4),
            (3, 3, 3, 4),
        ),
        (lambda: MaskedDense(7), (2, 5), (2, 7), (5, 7)),
        (lambda: MaskedDense(7, use_bias=False), (3, 2, 5), (3, 2, 7), (5, 7)),
    ],
)
def test_shapes_and_weight_counts(layer, input_shape, output_shape, kernel_shape):
    layer = layer()
    y = layer(np.ones(input_shape, "float32"))
    assert tuple(y.shape) == output_shape
    assert len(layer.trainable_weights) == (2 if layer.use_bias else 1)
    assert len(layer.non_trainable_weights) == 1
    assert layer.non_trainable_weights[0] is layer.mask
    assert tuple(layer.mask.shape) == kernel_shape
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer.mask), 1)


@pytest.mark.parametrize("masked_cls, plain_cls, args, shape", [
    (MaskedConv2D, keras.layers.Conv2D, (4, 3), (2, 8, 8, 3)),
    (MaskedDense, keras.layers.Dense, (6,), (2, 5)),
])
def test_forward_uses_kernel_times_mask(masked_cls, plain_cls, args, shape):
    x = np.random.default_rng(1).normal(size=shape).astype("float32")
    masked = masked_cls(*args, activation="relu", bias_initializer="ones")
    plain = plain_cls(*args, activation="relu", bias_initializer="ones")
    masked(x), plain(x)
    kernel = keras.ops.convert_to_numpy(masked.kernel)
    plain.kernel.assign(kernel)
    # All-ones mask: identical to the plain layer.
    np.testing.assert_allclose(masked(x), plain(x), rtol=1e-6, atol=1e-6)
    mask = _random_mask(kernel.shape)
    masked.mask.assign(mask)  # raw assign: the stored kernel keeps its values
    plain.kernel.assign(kernel * mask)
    np.testing.assert_allclose(masked(x), plain(x), rtol=1e-6, atol=1e-6)


def test_set_mask_zeroes_kernel_and_validates():
    layer = MaskedDense(6)
    layer(np.ones((1, 4), "float32"))
    mask = _random_mask((4, 6))
    layer.set_mask(mask)
    kernel = keras.ops.convert_to_numpy(layer.raw_kernel)
    assert (kernel[mask == 0] == 0).all()
    assert (kernel[mask == 1] != 0).all()
    with pytest.raises(ValueError, match="expected the kernel's shape"):
        layer.set_mask(np.ones((6, 4)))
    with pytest.raises(ValueError, match="only 0 and 1"):
        layer.set_mask(np.full((4, 6), 0.5))


def test_get_config_round_trip():
    layer = MaskedConv2D(
        8, (3, 1), strides=2, padding="same", use_bias=False,
        kernel_regularizer=keras.regularizers.L2(1e-4), name="c",
    )
    config = layer.get_config()
    clone = MaskedConv2D.from_config(config)
    assert clone.get_config() == config
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(layer)
    )
    assert type(restored) is MaskedConv2D
    assert restored.get_config() == config


def test_unsupported_arguments_are_refused():
    with pytest.raises(ValueError, match="lora_rank=2"):
        MaskedDense(4, lora_rank=2)
    with pytest.raises(ValueError, match="lora_rank=4"):
        MaskedConv2D(4, 3, lora_rank=4)
    with pytest.raises(ValueError, match="dtype='int8_from_float32'"):
        MaskedDense(4, dtype="int8_from_float32")
    layer = MaskedDense(4)
    layer.build((None, 3))
    for refused, argument in ((layer.enable_lora, 2), (layer.quantize, "int8")):
        with pytest.raises(NotImplementedError, match="strip"):
            refused(argument)


@pytest.mark.parametrize("layer, shape", [
    (lambda: MaskedDense(6), (2, 4)),
    (lambda: MaskedConv2D(3, 3), (1, 5, 5, 2)),
    (lambda: kl.MaskedDepthwiseConv2D(3), (1, 5, 5, 2)),  # Keras sets self.kernel
])
def test_kernel_is_raw_kernel_times_mask_and_raw_kernel_the_variable(layer, shape):
    layer = layer()
    with pytest.raises(AttributeError, match="build the layer"):
        layer.kernel  # noqa: B018  (reading it is what raises)
    layer(np.ones(shape, "float32"))
    assert isinstance(layer.raw_kernel, keras.Variable)
    assert layer.raw_kernel.trainable and not layer.mask.trainable
    assert any(v is layer.raw_kernel for v in layer.trainable_variables)
    assert not isinstance(layer.kernel, keras.Variable)
    mask = _random_mask(tuple(layer.raw_kernel.shape))
    layer.mask.assign(mask)  # raw assign: the stored kernel keeps its values
    raw = keras.ops.convert_to_numpy(layer.raw_kernel)
    assert (raw[mask == 0] != 0).all()
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer.kernel), raw * mask)
    # The stored kernel is assignable as a variable; kernel and raw_kernel
    # themselves cannot be rebound.
    layer.raw_kernel.assign(np.ones(raw.shape, "float32"))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer.kernel), mask)
    with pytest.raises(AttributeError, match=r"raw_kernel.assign"):
        layer.kernel = np.zeros(raw.shape, "float32")
    with pytest.raises(AttributeError):
        layer.raw_kernel = np.zeros(raw.shape, "float32")


def test_masked_layers_run_keras_own_call():
    # No call of our own: the forward pass is Keras's, reading `kernel`.
    for cls in layers.MASKED_LAYERS:
        assert "call" not in vars(cls), cls.__name__
        assert all("call" not in vars(base) for base in cls.__mro__
                   if base.__module__.startswith("keras_lottery")), cls.__name__


def test_keras_file_round_trip_keeps_masks(tmp_path):
    model = _conv_model()
    kl.set_masks(model, {"conv": _random_mask((3, 3, 3, 4)),
                         "dense": _random_mask((256, 5), seed=2)})
    x = np.random.default_rng(0).normal(size=(3, 8, 8, 3)).astype("float32")
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.get_layer("conv"), MaskedConv2D)
    for name, mask in kl.get_masks(model).items():
        np.testing.assert_array_equal(kl.get_masks(loaded)[name], mask)
    np.testing.assert_allclose(loaded(x), model(x), rtol=1e-6)


def test_weights_file_round_trip_keeps_masks(tmp_path):
    model = _conv_model(seed=0)
    masks = {"conv": _random_mask((3, 3, 3, 4)),
             "dense": _random_mask((256, 5), seed=2)}
    kl.set_masks(model, masks)
    path = tmp_path / "m.weights.h5"
    model.save_weights(path)
    # Keras's own Dense/Conv2D would write only vars/0 and vars/1 here.
    with h5py.File(path) as f:
        stored = f["layers/masked_dense/vars"]
        assert sorted(stored) == ["0", "1", "2"]
        np.testing.assert_array_equal(stored["2"][()], masks["dense"])
    fresh = _conv_model(seed=1)
    fresh.load_weights(path)
    for name, mask in masks.items():
        np.testing.assert_array_equal(kl.get_masks(fresh)[name], mask)
    x = np.ones((2, 8, 8, 3), "float32")
    np.testing.assert_allclose(fresh(x), model(x), rtol=1e-6)


def test_training_step_keeps_pruned_entries_and_gradients_zero():
    import tensorflow as tf

    model = _conv_model()
    kl.prune(model, 0.3)
    masks = kl.get_masks(model)
    x = np.random.default_rng(0).normal(size=(8, 8, 8, 3)).astype("float32")
    y = np.arange(8) % 5
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    with tf.GradientTape() as tape:
        loss = loss_fn(y, model(x, training=True))
    kernels = [model.get_layer(n).raw_kernel for n in masks]
    grads = tape.gradient(loss, kernels)
    for name, grad in zip(masks, grads):
        grad = grad.numpy()
        assert (grad[masks[name] == 0] == 0).all()
        assert np.abs(grad[masks[name] == 1]).sum() > 0
    model.compile(optimizer=kl.MomentumSGD(0.5), loss=loss_fn)
    model.fit(x, y, epochs=3, batch_size=4, verbose=0)
    for name, mask in masks.items():
        kernel = keras.ops.convert_to_numpy(model.get_layer(name).raw_kernel)
        assert (kernel[mask == 0] == 0).all()
        np.testing.assert_array_equal(kl.get_masks(model)[name], mask)


def test_mixed_bfloat16_keeps_mask_exact():
    keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
    try:
        model = _conv_model()
        layer = model.get_layer("conv")
        assert layer.mask.dtype == "float32"
        kl.prune(model, 0.4)
        masks = kl.get_masks(model)
        assert set(np.unique(masks["conv"])) == {0.0, 1.0}
        effective = keras.ops.convert_to_numpy(
            keras.ops.cast(layer.kernel, "float32")
        )
        assert layer.kernel.dtype == "bfloat16"
        assert layer.raw_kernel.dtype == "float32"
        assert (effective[masks["conv"] == 0] == 0).all()
        x = np.random.default_rng(0).normal(size=(4, 8, 8, 3)).astype("float32")
        model.compile(optimizer=kl.MomentumSGD(0.1), loss=keras.losses
                      .SparseCategoricalCrossentropy(from_logits=True))
        model.fit(x, np.arange(4), epochs=2, verbose=0)
        for name, mask in masks.items():
            after = kl.get_masks(model)[name]
            np.testing.assert_array_equal(after, mask)
            kernel = keras.ops.convert_to_numpy(model.get_layer(name).raw_kernel)
            assert (kernel[mask == 0] == 0).all()
    finally:
        keras.mixed_precision.set_dtype_policy("float32")


JAX_SCRIPT = textwrap.dedent(
    """
    import keras, numpy as np, keras_lottery as kl
    from keras_lottery.sparse import pruning
    assert keras.backend.backend() == "jax"
    model = kl.models.build("resnet8")
    kl.prune(model, 0.5)
    masks = kl.get_masks(model)
    model.compile(optimizer=kl.MomentumSGD(0.1),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = np.random.default_rng(0).normal(size=(8, 32, 32, 3)).astype("float32")
    model.fit(x, np.arange(8) % 10, batch_size=4, epochs=1, verbose=0)
    for layer in pruning.masked_layers(model):
        kernel = keras.ops.convert_to_numpy(layer.raw_kernel)
        assert (kernel[masks[layer.name] == 0] == 0).all(), layer.name
    model.save_weights({path!r})
    fresh = kl.models.build("resnet8")
    fresh.load_weights({path!r})
    assert kl.density(fresh) == 0.5, kl.density(fresh)
    print("jax-ok")
    """
)


def test_layers_train_and_save_under_jax(tmp_path):
    pytest.importorskip("jax")
    script = JAX_SCRIPT.format(path=str(tmp_path / "w.weights.h5"))
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True,
        text=True, timeout=300,
    )
    assert "jax-ok" in result.stdout, result.stderr[-3000:]


def test_fused_batch_norm_matches_keras_batch_norm():
    import tensorflow as tf

    from keras_lottery.sparse.layers import FusedBatchNormalization

    rng = np.random.default_rng(0)
    x = rng.normal(2.0, 3.0, (16, 6, 6, 5)).astype("float32")
    ref = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5)
    fused = FusedBatchNormalization.from_config(ref.get_config())
    ref.build(x.shape)
    fused.build(x.shape)
    ref.gamma.assign(rng.normal(1, 0.1, 5).astype("float32"))
    fused.set_weights(ref.get_weights())
    assert fused.fusable(x, None)
    w = tf.constant(rng.normal(size=x.shape).astype("float32"))
    for training in (True, True, False):
        outs, grads = [], []
        for layer in (ref, fused):
            xt = tf.constant(x)
            with tf.GradientTape() as tape:
                tape.watch(xt)
                y = layer(xt, training=training)
                loss = tf.reduce_sum(y * w)
            outs.append(y.numpy())
            grads.append([g.numpy() for g in tape.gradient(loss, [xt, layer.gamma, layer.beta])])
        np.testing.assert_allclose(outs[1], outs[0], atol=1e-5)
        for a, b in zip(*grads):
            np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4)
    for a, b in zip(ref.weights, fused.weights):  # moving mean and variance too
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-6, atol=1e-6)
    # Where the fused kernel does not apply, Keras's own code runs.
    assert not fused.fusable(x[:, 0, 0, :], None)
    assert not fused.fusable(x, mask=np.ones(x.shape[:3], bool))


def test_models_use_fused_batch_norm_and_strip_returns_plain_keras(tmp_path):
    from keras_lottery.sparse.layers import FusedBatchNormalization

    model = kl.models.build("resnet8")
    bns = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]
    assert bns and all(type(l) is FusedBatchNormalization for l in bns)
    plain = kl.strip(model)
    assert all(type(l) is keras.layers.BatchNormalization for l in plain.layers
               if isinstance(l, keras.layers.BatchNormalization))
    x = np.random.default_rng(1).normal(size=(4, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(plain(x, training=False).numpy(),
                               model(x, training=False).numpy(), atol=1e-4)
