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
