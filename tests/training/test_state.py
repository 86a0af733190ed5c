import keras
import numpy as np
import pytest

import keras_lottery as kl


def _model():
    model = kl.masked(keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)]))
    model.compile(optimizer=kl.MomentumSGD(
        keras.optimizers.schedules.PiecewiseConstantDecay([100], [0.1, 0.01])),
        loss="mse")
    return model


def test_load_state_restores_momentum_and_iteration_into_a_fresh_model(tmp_path):
    keras.utils.set_random_seed(0)
    model = _model()
    x, y = np.random.rand(8, 4), np.random.rand(8, 3)
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    path = tmp_path / "s.weights.h5"
    kl.save_state(model, path)
    fresh = _model()
    assert not fresh.optimizer.built  # the case Keras silently mishandles
    assert kl.load_state(fresh, path, iteration=2) == 2
    for mine, theirs in zip(fresh.trainable_variables, model.trainable_variables):
        momentum = keras.ops.convert_to_numpy(model.optimizer.slot(theirs))
        assert np.abs(momentum).sum() > 0
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(fresh.optimizer.slot(mine)), momentum)
    with pytest.raises(kl.LotteryError, match="holds iteration 2, expected 5"):
        kl.load_state(_model(), path, iteration=5)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(kl.LotteryError, match="cannot be loaded"):
        kl.load_state(_model(), path)
    with pytest.raises(kl.LotteryError, match="compile the model"):
        kl.load_state(keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)]), path)


def test_keep_masks_rewinds_weights_under_the_new_masks(tmp_path):
    # Rewinding by hand: prune the trained model, then load the weights of
    # iteration k (saved with all-ones masks) keeping the new masks.
    keras.utils.set_random_seed(1)
    model = _model()
    x, y = np.random.rand(8, 4), np.random.rand(8, 3)
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)  # momentum is nonzero at k
    at_k = tmp_path / "k.weights.h5"
    kl.save_state(model, at_k)
    layer = model.layers[0]
    rewound = keras.ops.convert_to_numpy(layer.raw_kernel)
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    masks = kl.prune(model, 0.5)
    assert kl.load_state(model, at_k, 2, keep_masks=True) == 2
    mask = kl.get_masks(model)[layer.name]
    np.testing.assert_array_equal(mask, masks[layer.name])
    assert mask.sum() == 6  # half of the 12 weights
    kernel = keras.ops.convert_to_numpy(layer.raw_kernel)
    np.testing.assert_array_equal(kernel, rewound * mask)  # k's weights, pruned ones zero
    momentum = keras.ops.convert_to_numpy(model.optimizer.slot(layer.raw_kernel))
    assert np.abs(momentum[mask == 1]).sum() > 0 and not momentum[mask == 0].any()
    # What `model.load_weights` does instead: every mask back to ones.
    model.load_weights(at_k)
    assert kl.get_masks(model)[layer.name].all()
