"""Checkpoints written by keras_lottery 0.1's MaskedConv2D / MaskedDense
(tests/fixtures, see its README) load into today's layers value for value, and
today's layers write the same `.weights.h5` layout."""

import pathlib

import keras
import numpy as np

import keras_lottery as kl
from snapshots import tensors

DATA = pathlib.Path(__file__).resolve().parents[1] / "fixtures"
WEIGHTS = DATA / "masked_v0_1.weights.h5"

# The 0.1 layout: per layer, vars/<i> in creation order, masks last.
LAYOUT = {
    "layers/masked_conv2d/vars/0": ("conv", "raw_kernel"),
    "layers/masked_conv2d/vars/1": ("conv", "mask"),
    "layers/masked_conv2d_1/vars/0": ("conv_b", "raw_kernel"),
    "layers/masked_conv2d_1/vars/1": ("conv_b", "bias"),
    "layers/masked_conv2d_1/vars/2": ("conv_b", "mask"),
    "layers/masked_dense/vars/0": ("dense", "raw_kernel"),
    "layers/masked_dense/vars/1": ("dense", "bias"),
    "layers/masked_dense/vars/2": ("dense", "mask"),
}


def _fixture_model(seed=1):
    """The fixture's architecture, freshly initialised (other values)."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((6, 6, 2))
    x = kl.MaskedConv2D(3, 3, use_bias=False, name="conv")(inputs)
    x = kl.MaskedConv2D(2, 1, name="conv_b", bias_initializer="ones")(x)
    x = keras.layers.Flatten()(x)
    outputs = kl.MaskedDense(4, name="dense", bias_initializer="ones")(x)
    return keras.Model(inputs, outputs, name="fixture")


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _check_holds_fixture(model):
    stored = tensors(WEIGHTS)
    assert set(LAYOUT) <= set(stored)
    for key, (layer, attribute) in LAYOUT.items():
        value = _np(getattr(model.get_layer(layer), attribute))
        np.testing.assert_array_equal(value, stored[key], err_msg=key)
    io = np.load(DATA / "masked_v0_1_io.npz")
    np.testing.assert_allclose(_np(model(io["x"])), io["y"], rtol=1e-6, atol=1e-6)


def test_old_weights_file_loads_value_for_value():
    model = _fixture_model()
    before = _np(model.get_layer("dense").raw_kernel)
    model.load_weights(WEIGHTS)
    assert not np.array_equal(_np(model.get_layer("dense").raw_kernel), before)
    _check_holds_fixture(model)
    # The masks the fixture was pruned with, and the stored kernels zero there.
    masks = kl.get_masks(model)
    assert 0 < kl.density(model) < 1
    for name, mask in masks.items():
        raw = _np(model.get_layer(name).raw_kernel)
        assert (raw[mask == 0] == 0).all() and (raw[mask == 1] != 0).all()


def test_weights_file_layout_and_values_unchanged(tmp_path):
    model = _fixture_model()
    model.load_weights(WEIGHTS)
    model.save_weights(tmp_path / "again.weights.h5")
    old, new = tensors(WEIGHTS), tensors(tmp_path / "again.weights.h5")
    assert sorted(new) == sorted(old)
    for key in old:
        np.testing.assert_array_equal(new[key], old[key], err_msg=key)


def test_old_keras_file_loads_into_todays_layers(tmp_path):
    model = keras.models.load_model(DATA / "masked_v0_1.keras")
    assert type(model.get_layer("conv")) is kl.MaskedConv2D
    assert type(model.get_layer("dense")) is kl.MaskedDense
    _check_holds_fixture(model)
    # And what today's layers save of it loads back the same.
    model.save(tmp_path / "again.keras")
    _check_holds_fixture(keras.models.load_model(tmp_path / "again.keras"))
