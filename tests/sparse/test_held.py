"""Kernel layers held by other layers: attention projections, the layers of
your own layers, and subclassed models written with masked layers."""

import warnings

import keras
import numpy as np
import pytest

import keras_lottery as kl
from keras_lottery.sparse import pruning
from keras_lottery.sparse.masking import MaskedKernelLayer


@keras.saving.register_keras_serializable(package="tests_held")
class Block(keras.layers.Layer):
    """keras-io's TransformerBlock, small: attention, a Sequential of Dense
    layers and a list of Dense layers, all made in `__init__`."""

    def __init__(self, dim=8, heads=2, hidden=16, **kwargs):
        super().__init__(**kwargs)
        self.dim, self.heads, self.hidden = dim, heads, hidden
        self.att = keras.layers.MultiHeadAttention(num_heads=heads, key_dim=dim)
        self.ffn = keras.Sequential([keras.layers.Dense(hidden, activation="relu"),
                                     keras.layers.Dense(dim)])
        self.gates = [keras.layers.Dense(dim, activation="sigmoid")]
        self.norm = keras.layers.LayerNormalization()

    def call(self, x):
        x = self.norm(x + self.att(x, x))
        return x + self.ffn(x) * self.gates[0](x)

    def get_config(self):
        return {**super().get_config(), "dim": self.dim, "heads": self.heads,
                "hidden": self.hidden}


BLOCK_KEYS = ["block/att/query_dense", "block/att/key_dense", "block/att/value_dense",
              "block/att/output_dense", "block/ffn/dense", "block/ffn/dense_1",
              "block/gates/0"]


def transformer(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((5, 8))
    x = Block(name="block")(inputs)
    x = keras.layers.MultiHeadAttention(2, 4, name="mha")(x, x)
    x = keras.layers.GlobalAveragePooling1D()(x)
    return keras.Model(inputs, keras.layers.Dense(3, name="head")(x))


def _x(seed=0):
    return np.random.default_rng(seed).normal(size=(4, 5, 8)).astype("float32")


def _np(x):
    return keras.ops.convert_to_numpy(x)


def test_attention_and_your_own_layers_are_masked_wherever_keras_tracks_them():
    model = transformer()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        converted = kl.masked(model)
    # Nothing holding a kernel is left unmasked.
    assert not [w for w in caught if "keras_lottery" in str(w.message)]
    keys = list(kl.get_masks(converted))
    assert keys == BLOCK_KEYS + ["mha/query_dense", "mha/key_dense", "mha/value_dense",
                                 "mha/output_dense", "head"]
    assert type(converted.get_layer("mha")) is kl.MaskedMultiHeadAttention
    np.testing.assert_allclose(_np(converted(_x())), _np(model(_x())), rtol=1e-6, atol=1e-6)
    kernels = [v for v in model.weights if v.name == "kernel"]
    assert kl.sparsity_report(converted).total.total == sum(int(np.prod(v.shape))
                                                            for v in kernels)
    kl.prune(converted, 0.25)
    assert kl.density(converted) == pytest.approx(0.25, abs=1e-3)


def test_pruned_transformer_strips_saves_and_loads(tmp_path):
    model = kl.masked(transformer())
    kl.prune(model, 0.3)
    expected = _np(model(_x()))
    model.save(tmp_path / "masked.keras")
    loaded = kl.load_model(tmp_path / "masked.keras")
    np.testing.assert_allclose(_np(loaded(_x())), expected, rtol=1e-6, atol=1e-6)
    assert list(kl.get_masks(loaded))[:len(BLOCK_KEYS)] == BLOCK_KEYS
    for key, mask in kl.get_masks(model).items():
        np.testing.assert_array_equal(kl.get_masks(loaded)[key], mask)
    stripped = kl.strip(model)
    assert not any(isinstance(layer, MaskedKernelLayer)
                   for layer in pruning.iter_layers(stripped))
    np.testing.assert_allclose(_np(stripped(_x())), expected, rtol=1e-6, atol=1e-6)
    stripped.save(tmp_path / "plain.keras")
    again = keras.models.load_model(tmp_path / "plain.keras")
    np.testing.assert_allclose(_np(again(_x())), expected, rtol=1e-6, atol=1e-6)


@keras.saving.register_keras_serializable(package="tests_held")
class Net(keras.Model):
    """A subclassed model written with masked layers, as the README advises."""

    def __init__(self, units=6, classes=3, **kwargs):
        super().__init__(**kwargs)
        self.units, self.classes = units, classes
        self.conv = kl.MaskedConv2D(4, 3, activation="relu")
        self.flat = keras.layers.Flatten()
        self.hidden = kl.MaskedDense(units, activation="relu")
        self.out = kl.MaskedDense(classes)

    def call(self, x):
        return self.out(self.hidden(self.flat(self.conv(x))))

    def get_config(self):
        return {**super().get_config(), "units": self.units, "classes": self.classes}


def test_a_subclassed_model_of_masked_layers_strips_to_plain_layers(tmp_path):
    keras.utils.set_random_seed(0)
    model = Net()
    x = np.random.default_rng(0).normal(size=(2, 6, 6, 2)).astype("float32")
    model(x)
    kl.prune(model, 0.4)
    stripped = kl.strip(model)
    assert type(stripped) is Net
    assert [type(layer).__name__ for layer in stripped.layers] == [
        "Conv2D", "Flatten", "Dense", "Dense"]
    np.testing.assert_allclose(_np(stripped(x)), _np(model(x)), rtol=1e-6, atol=1e-6)
    kept = sum(int(np.count_nonzero(layer.kernel)) for layer in stripped.layers
               if hasattr(layer, "kernel"))
    assert kept == round(0.4 * sum(m.size for m in kl.get_masks(model).values()))
    stripped.save_weights(tmp_path / "plain.weights.h5")


class Unconfigurable(keras.Model):
    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def call(self, x):
        return self.layer(x)


def test_a_subclassed_model_without_a_config_is_refused_with_what_to_do():
    model = Unconfigurable(kl.MaskedDense(2))
    model(np.ones((1, 3), "float32"))
    with pytest.raises(TypeError) as error:
        kl.strip(model)
    message = str(error.value)
    assert "\n" not in message
    assert "give Unconfigurable a get_config() returning its __init__ arguments" in message
