"""`build(..., weight_decay=)`: None keeps each family's default exactly, a
number overrides it everywhere the family regularizes, 0 adds nothing."""

import json

import keras
import numpy as np
import pytest

from keras_lottery import MaskedConv2D
from keras_lottery import MaskedDense
from keras_lottery import models


def _fresh(name, seed=0, **kwargs):
    keras.utils.set_random_seed(seed)
    return models.build(name, **kwargs)


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _regularizers(model):
    """(layer name, attribute, regularizer) for every variable that a family
    may regularize: kernels, biases, BN gamma and beta."""
    found = []
    for layer in model.layers:
        if isinstance(layer, (MaskedConv2D, MaskedDense)):
            attrs = ["kernel_regularizer"] + (["bias_regularizer"] if layer.use_bias else [])
        elif isinstance(layer, keras.layers.BatchNormalization):
            attrs = ["gamma_regularizer", "beta_regularizer"]
        else:
            continue
        found += [(layer.name, a, getattr(layer, a)) for a in attrs]
    return found


def _decay_loss(model):
    return float(sum(np.sum(_np(v), dtype=np.float64) for v in model.losses))


def _expected(model, wd):
    return wd / 2 * sum(
        np.sum(np.square(_np(v).astype(np.float64))) for v in model.trainable_variables
    )


@pytest.mark.parametrize("name", ["resnet20", "vgg16_nofc", "lenet300"])
def test_none_is_bit_identical_to_the_family_default(name):
    default = _fresh(name, seed=11)
    explicit = _fresh(name, seed=11, weight_decay=models.default_weight_decay(name))
    assert models.default_weight_decay(name) > 0
    assert json.dumps(default.get_config(), sort_keys=True, default=str) == json.dumps(
        explicit.get_config(), sort_keys=True, default=str
    )
    assert [v.path for v in default.weights] == [v.path for v in explicit.weights]
    for a, b in zip(default.weights, explicit.weights):
        np.testing.assert_array_equal(_np(a), _np(b), err_msg=a.path)
    assert len(default.losses) == len(default.trainable_variables)
    np.testing.assert_array_equal(
        [float(_np(l)) for l in default.losses], [float(_np(l)) for l in explicit.losses]
    )


@pytest.mark.parametrize(
    "name, wd", [("resnet8", 1e-3), ("lenet300", 3e-4), ("conv2", 5e-4)]
)
def test_a_number_overrides_the_default_on_every_trainable_variable(name, wd):
    model = _fresh(name, input_shape=(8, 8, 1), weight_decay=wd)
    regs = _regularizers(model)
    assert regs
    for layer, attr, reg in regs:
        assert isinstance(reg, keras.regularizers.L2), (layer, attr)
        assert reg.get_config()["l2"] == pytest.approx(wd / 2), (layer, attr)
    assert len(model.losses) == len(model.trainable_variables)
    # Biases and beta start at zero: move them so their terms count too.
    rng = np.random.default_rng(0)
    for v in model.trainable_variables:
        v.assign(rng.normal(0.0, 0.1, v.shape).astype("float32"))
    np.testing.assert_allclose(_decay_loss(model), _expected(model, wd), rtol=1e-5)


@pytest.mark.parametrize("name", ["resnet8", "vgg16_nofc", "lenet300", "conv4"])
def test_zero_adds_no_regularizer_at_all(name):
    model = _fresh(name, weight_decay=0)
    assert all(reg is None for _, _, reg in _regularizers(model))
    assert model.losses == []
    assert "L2" not in json.dumps(model.get_config(), default=str)
    # ...so training sees the data loss alone.
    x = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype("float32")
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    loss = model.evaluate(x, np.array([0, 1]), verbose=0)
    data_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(
        np.array([0, 1]), model(x, training=False)
    )
    assert loss == pytest.approx(float(_np(data_loss)), rel=1e-5)


@pytest.mark.parametrize("bad", [-1e-4, float("nan"), float("inf"), "1e-4", True, [1e-4]])
def test_bad_weight_decay_is_refused_by_name(bad):
    with pytest.raises(ValueError) as info:
        models.build("lenet300", input_shape=(4,), weight_decay=bad)
    message = str(info.value)
    assert message.startswith("lenet300: weight_decay must be a finite number >= 0")
    assert repr(bad) in message and "\n" not in message
