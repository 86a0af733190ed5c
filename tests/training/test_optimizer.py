import keras
import numpy as np
import pytest

import keras_lottery as kl


def _run(optimizer, grads, w0):
    var = keras.Variable(np.array(w0, "float32"))
    values = []
    for g in grads:
        optimizer.apply_gradients([(keras.ops.convert_to_tensor(np.array(g, "float32")), var)])
        values.append(keras.ops.convert_to_numpy(var).copy())
    return np.array(values)


def _tf1_reference(grads, w0, lrs, momentum=0.9):
    w, accum, out = np.array(w0, "float64"), np.zeros_like(w0, dtype="float64"), []
    for g, lr in zip(grads, lrs):
        accum = momentum * accum + np.array(g)
        w = w - lr * accum
        out.append(w.copy())
    return np.array(out)


GRADS = [[1.0, -2.0], [0.5, 0.5], [2.0, 1.0], [-1.0, 3.0], [1.0, 1.0], [0.25, -0.5]]
W0 = [1.0, 2.0]


def _schedule():
    # lr(g) = 0.1 for g <= 2, then 0.01 (piecewise-constant, as the recipe).
    return keras.optimizers.schedules.PiecewiseConstantDecay([2], [0.1, 0.01])


def test_matches_tf1_update_across_learning_rate_drop():
    got = _run(kl.MomentumSGD(_schedule(), momentum=0.9), GRADS, W0)
    lrs = [0.1, 0.1, 0.1, 0.01, 0.01, 0.01]
    np.testing.assert_allclose(got, _tf1_reference(GRADS, W0, lrs), rtol=1e-6)
    # Keras's own SGD differs after the drop: that is why we have our own.
    keras_sgd = _run(keras.optimizers.SGD(_schedule(), momentum=0.9), GRADS, W0)
    np.testing.assert_allclose(keras_sgd[:3], got[:3], rtol=1e-6)
    assert np.abs(keras_sgd[3:] - got[3:]).max() > 1e-3


def test_restored_accumulator_is_scaled_by_current_lr():
    opt = kl.MomentumSGD(0.01, momentum=0.9)
    var = keras.Variable(np.zeros(2, "float32"))
    opt.build([var])
    opt.slot(var).assign(np.array([1.0, -1.0], "float32"))
    opt.apply_gradients([(keras.ops.zeros((2,)), var)])
    # accum = 0.9 * [1, -1]; w = -0.01 * accum
    np.testing.assert_allclose(keras.ops.convert_to_numpy(var), [-0.009, 0.009], rtol=1e-6)


def test_config_round_trip_and_validation():
    opt = kl.MomentumSGD(_schedule(), momentum=0.8, name="x")
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(opt))
    assert type(restored) is kl.MomentumSGD
    assert restored.momentum == 0.8
    assert restored.get_config()["name"] == "x"
    for bad in (-0.1, 1.0, True):
        with pytest.raises(ValueError, match="momentum"):
            kl.MomentumSGD(0.1, momentum=bad)


def _trained_model():
    keras.utils.set_random_seed(0)
    model = kl.models.build("resnet8")
    model.compile(optimizer=kl.MomentumSGD(_schedule()), loss=keras.losses
                  .SparseCategoricalCrossentropy(from_logits=True))
    x = np.random.default_rng(0).normal(size=(8, 32, 32, 3)).astype("float32")
    model.fit(x, np.arange(8), epochs=3, batch_size=4, verbose=0)
    return model


def _slots(model):
    return [keras.ops.convert_to_numpy(model.optimizer.slot(v))
            for v in model.trainable_variables]


def test_state_saved_and_restored_with_keras_file(tmp_path):
    model = _trained_model()
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert type(loaded.optimizer) is kl.MomentumSGD
    assert int(loaded.optimizer.iterations) == 6
    for a, b in zip(_slots(model), _slots(loaded)):
        np.testing.assert_array_equal(a, b)
    assert any(np.abs(s).sum() > 0 for s in _slots(loaded))


def test_state_saved_and_restored_with_weights_file(tmp_path):
    model = _trained_model()
    model.save_weights(tmp_path / "m.weights.h5")
    fresh = kl.models.build("resnet8")
    fresh.compile(optimizer=kl.MomentumSGD(_schedule()), loss="mse")
    fresh.optimizer.build(fresh.trainable_variables)
    fresh.load_weights(tmp_path / "m.weights.h5")
    assert int(fresh.optimizer.iterations) == 6
    for a, b in zip(_slots(model), _slots(fresh)):
        np.testing.assert_array_equal(a, b)


def test_loss_scaling_counts_a_skipped_step():
    var = keras.Variable(np.array([1.0, 2.0], "float32"))
    inner = kl.MomentumSGD(0.1, momentum=0.9)
    opt = kl.LossScaleOptimizer(inner, initial_scale=8.0)
    # The gradients handed over are scaled; an overflow skips the update.
    opt.apply([keras.ops.convert_to_tensor(np.array([np.inf, 1.0], "float32"))], [var])
    assert int(opt.iterations) == 1
    np.testing.assert_array_equal(var.numpy(), [1.0, 2.0])
    np.testing.assert_array_equal(inner.slot(var).numpy(), [0.0, 0.0])
    assert float(opt.dynamic_scale) == 4.0
    # The next (finite) step is the TF1 update of the unscaled gradient.
    opt.apply([keras.ops.convert_to_tensor(np.array([4.0, -8.0], "float32"))], [var])
    assert int(opt.iterations) == 2
    np.testing.assert_allclose(var.numpy(), [1.0 - 0.1 * 1.0, 2.0 + 0.1 * 2.0])
    config = keras.saving.serialize_keras_object(opt)
    again = keras.saving.deserialize_keras_object(config)
    assert type(again) is kl.LossScaleOptimizer
    assert type(again.inner_optimizer) is kl.MomentumSGD
    with pytest.raises(ValueError, match="gradient_accumulation_steps"):
        kl.LossScaleOptimizer(kl.MomentumSGD(0.1, gradient_accumulation_steps=2))


JAX_FIT = """
import numpy as np, keras
import keras_lottery as kl
keras.config.set_dtype_policy("mixed_float16")
keras.utils.set_random_seed(0)
model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])
opt = kl.LossScaleOptimizer(kl.MomentumSGD(0.01), initial_scale=2.0**24)
model.compile(optimizer=opt, loss="mse")
w0 = model.layers[0].kernel.numpy().copy()
x = np.random.default_rng(0).normal(size=(64, 8)).astype("float32")
model.fit(x, x[:, :4], batch_size=4, epochs=1, verbose=0, shuffle=False)
print(int(opt.iterations), float(opt.dynamic_scale),
      bool((model.layers[0].kernel.numpy() != w0).any()))
"""


def test_loss_scaling_counts_skipped_steps_in_jax_fit():
    # JAX trains through stateless_apply, a separate code path.
    import subprocess
    import sys

    env = dict(__import__("os").environ, KERAS_BACKEND="jax")
    out = subprocess.run([sys.executable, "-c", JAX_FIT], env=env, check=True,
                         capture_output=True, text=True).stdout.split()
    iterations, scale, moved = int(out[0]), float(out[1]), out[2] == "True"
    assert iterations == 16  # 64 samples / batch 4, skipped steps included
    assert scale < 2.0**24  # some steps did overflow and were skipped
    assert moved  # and later ones trained
