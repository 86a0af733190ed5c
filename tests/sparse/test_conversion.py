"""`keras_lottery.masked(model)` and `keras_lottery.strip(model)`."""

import json
import os
import subprocess
import sys
import textwrap
import warnings
import zipfile

import keras
import numpy as np
import pytest

import keras_lottery as kl
from keras_lottery.sparse import pruning
from keras_lottery import MaskedConv2D
from keras_lottery import MaskedDense

MASKED = (MaskedConv2D, MaskedDense)
PLAIN_KERNEL_LAYERS = (keras.layers.Conv2D, keras.layers.Dense)


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _layers(model):
    return list(pruning.iter_layers(model))


def _leaf_layers(model):
    return [l for l in _layers(model) if not isinstance(l, keras.Model)]


def _weights_snapshot(model):
    return {v.path: _np(v).copy() for v in model.weights}


def _randomize_weights(model, seed=0):
    """Non-trivial values for every weight, BN moving statistics included,
    so that a layer whose weights were not copied changes the output."""
    rng = np.random.default_rng(seed)
    for layer in _leaf_layers(model):
        values = []
        for w in layer.get_weights():
            if isinstance(layer, keras.layers.BatchNormalization):
                values.append(rng.uniform(0.5, 1.5, w.shape).astype(w.dtype))
            else:
                values.append(rng.normal(0.0, 0.5, w.shape).astype(w.dtype))
        if values:
            layer.set_weights(values)
    # Moving means should also be off zero and different from gamma-like values.
    for layer in _leaf_layers(model):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(
                rng.normal(0.0, 0.3, layer.moving_mean.shape).astype("float32")
            )


def _sequential(seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Conv2D(6, 3, padding="same", use_bias=True, name="conv"),
            keras.layers.BatchNormalization(name="bn"),
            keras.layers.ReLU(name="relu"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(5, name="dense"),
        ],
        name="seq",
    )
    _randomize_weights(model, seed)
    return model


def _functional(seed=0):
    """A branch into an Add and a nested Sequential sub-model."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 3), name="image")
    a = keras.layers.Conv2D(4, 3, padding="same", name="branch_a")(inputs)
    b = keras.layers.Conv2D(4, 1, use_bias=False, name="branch_b")(inputs)
    x = keras.layers.Add(name="add")([a, b])
    inner = keras.Sequential(
        [
            keras.Input((8, 8, 4), name="inner_input"),
            keras.layers.Conv2D(5, 3, strides=2, name="inner_conv"),
            keras.layers.BatchNormalization(name="inner_bn"),
            keras.layers.Dense(3, activation="relu", name="inner_dense"),
        ],
        name="inner",
    )
    x = inner(x)
    x = keras.layers.Flatten(name="flatten")(x)
    outputs = keras.layers.Dense(4, name="head")(x)
    model = keras.Model(inputs, outputs, name="func")
    _randomize_weights(model, seed)
    return model


def _inputs(model, seed=1, batch=3):
    shape = (batch,) + tuple(model.input_shape[1:])
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def _assert_same_outputs(a, b, x):
    np.testing.assert_allclose(
        _np(a(x, training=False)), _np(b(x, training=False)), rtol=1e-6, atol=1e-6
    )


def _check_masked_copy(original, converted, expected_masked):
    leaves = _leaf_layers(converted)
    by_name = {l.name: l for l in leaves}
    originals = {l.name: l for l in _leaf_layers(original)}
    assert set(by_name) == set(originals)
    masked_names = sorted(l.name for l in leaves if isinstance(l, MASKED))
    assert masked_names == sorted(expected_masked)
    for layer in leaves:
        # No plain Conv2D/Dense left.
        if isinstance(layer, PLAIN_KERNEL_LAYERS):
            assert isinstance(layer, MASKED), layer.name
    for name in expected_masked:
        old, new = originals[name], by_name[name]
        assert type(new) is {keras.layers.Conv2D: MaskedConv2D,
                             keras.layers.Dense: MaskedDense}[type(old)]
        # Same configuration (strides, padding, activation, bias...).
        assert new.get_config() == old.get_config()
        np.testing.assert_array_equal(_np(new.mask), np.ones(old.kernel.shape))
        np.testing.assert_array_equal(_np(new.raw_kernel), _np(old.kernel))
        if old.use_bias:
            np.testing.assert_array_equal(_np(new.bias), _np(old.bias))
        else:
            assert new.bias is None
    for name, old in originals.items():
        if name in expected_masked:
            continue
        assert type(by_name[name]) is type(old), name
        for w_old, w_new in zip(old.get_weights(), by_name[name].get_weights()):
            np.testing.assert_array_equal(w_new, w_old)
    masks = kl.get_masks(converted)
    assert sorted(masks) == sorted(expected_masked)
    assert all(m.min() == 1 for m in masks.values())
    assert kl.density(converted) == 1.0


# --------------------------------------------------------------------------
# masked()


def test_masked_sequential():
    original = _sequential()
    # Moving statistics really are non-trivial.
    assert np.abs(_np(original.get_layer("bn").moving_mean)).max() > 0.05
    assert np.abs(_np(original.get_layer("bn").moving_variance) - 1).max() > 0.05
    before = _weights_snapshot(original)
    x = _inputs(original)
    expected = _np(original(x, training=False))

    converted = kl.masked(original)

    assert isinstance(converted, keras.Sequential)
    assert converted is not original
    _check_masked_copy(original, converted, ["conv", "dense"])
    np.testing.assert_allclose(
        _np(converted(x, training=False)), expected, rtol=1e-6, atol=1e-6
    )
    np.testing.assert_allclose(
        converted.predict(x, verbose=0), expected, rtol=1e-6, atol=1e-6
    )
    # The original is untouched: same layer types, same weights.
    assert [type(l) for l in original.layers] == [
        keras.layers.Conv2D, keras.layers.BatchNormalization, keras.layers.ReLU,
        keras.layers.Flatten, keras.layers.Dense,
    ]
    after = _weights_snapshot(original)
    assert after.keys() == before.keys()
    for path in before:
        np.testing.assert_array_equal(after[path], before[path])


def test_masked_copy_does_not_share_variables():
    original = _sequential(seed=2)
    before = _weights_snapshot(original)
    converted = kl.masked(original)
    kl.prune(converted, 0.3)
    converted.get_layer("bn").moving_mean.assign(np.zeros(6, "float32"))
    total = 3 * 3 * 3 * 6 + 8 * 8 * 6 * 5
    assert kl.density(converted) == round(0.3 * total) / total
    for path, value in _weights_snapshot(original).items():
        np.testing.assert_array_equal(value, before[path])
    original_ids = {id(v) for v in original.weights}
    assert not any(id(v) in original_ids for v in converted.weights)


def test_masked_functional_with_nested_sequential_and_branch():
    original = _functional()
    assert np.abs(_np(original.get_layer("inner").get_layer("inner_bn").moving_mean)).max() > 0.05
    before = _weights_snapshot(original)
    x = _inputs(original)
    expected = _np(original(x, training=False))

    converted = kl.masked(original)

    _check_masked_copy(
        original, converted,
        ["branch_a", "branch_b", "inner_conv", "inner_dense", "head"],
    )
    inner = converted.get_layer("inner")
    assert isinstance(inner, keras.Sequential)
    assert isinstance(inner.get_layer("inner_conv"), MaskedConv2D)
    assert isinstance(inner.get_layer("inner_dense"), MaskedDense)
    assert isinstance(converted.get_layer("add"), keras.layers.Add)
    np.testing.assert_allclose(
        _np(converted(x, training=False)), expected, rtol=1e-6, atol=1e-6
    )
    # Nested layers are really in the converted graph: pruning them all away
    # in the sub-model changes the output.
    masks = kl.get_masks(converted)
    masks["inner_dense"] = np.zeros_like(masks["inner_dense"])
    kl.set_masks(converted, masks)
    assert not np.allclose(_np(converted(x, training=False)), expected)
    # Original untouched.
    assert type(original.get_layer("inner").get_layer("inner_dense")) is keras.layers.Dense
    for path, value in _weights_snapshot(original).items():
        np.testing.assert_array_equal(value, before[path])
    np.testing.assert_array_equal(_np(original(x, training=False)), expected)


def test_masked_functional_with_unnamed_input():
    # The most common way to write a functional model: keras.Input unnamed.
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    outputs = keras.layers.Dense(3)(keras.layers.Dense(5)(inputs))
    original = keras.Model(inputs, outputs)
    x = _inputs(original)
    converted = kl.masked(original)
    assert sum(isinstance(l, MaskedDense) for l in converted.layers) == 2
    _assert_same_outputs(original, converted, x)
    _assert_same_outputs(original, kl.strip(converted), x)


class _OwnDense(keras.layers.Dense):
    """A user's subclass of Dense: its `call` may differ, so never converted."""


def test_layers_without_a_masked_twin_are_copied_and_warned_about_once():
    keras.utils.set_random_seed(0)
    tokens = keras.Input((6,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(20, 4, name="embed")(tokens)
    x = keras.layers.LSTM(5, return_sequences=True, name="lstm")(x)
    x = keras.layers.LayerNormalization(name="ln")(x)
    x = keras.layers.Conv1D(3, 3, name="conv1d")(x)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.Dropout(0.5, seed=1, name="drop")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = _OwnDense(4, name="own")(x)
    outputs = keras.layers.Dense(2, name="dense")(x)
    original = keras.Model(tokens, outputs)
    _randomize_weights(original)
    x_in = np.random.default_rng(0).integers(0, 20, (3, 6)).astype("int32")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        converted = kl.masked(original)

    assert [w.category for w in caught] == [UserWarning]
    message = str(caught[0].message)
    lstm = 4 * (4 * 5 + 5 * 5 + 5)
    own = 12 * 4 + 4
    assert "3 layer(s)" in message
    assert "'embed' (Embedding, 80 weights)" in message
    assert f"'lstm' (LSTM, {lstm} weights)" in message
    assert f"'own' (_OwnDense, {own} weights)" in message
    assert f"leaves {80 + lstm + own:,} weights out of pruning" in message
    for kept_out in ("'ln'", "'bn'", "'drop'", "'conv1d'", "'dense'", "'flatten'"):
        assert kept_out not in message
    for name, cls in [("embed", keras.layers.Embedding), ("lstm", keras.layers.LSTM),
                      ("own", _OwnDense), ("ln", keras.layers.LayerNormalization)]:
        layer = converted.get_layer(name)
        assert type(layer) is cls, name
        old = original.get_layer(name).get_weights()
        assert len(layer.get_weights()) == len(old) > 0
        for w_new, w_old in zip(layer.get_weights(), old):
            np.testing.assert_array_equal(w_new, w_old)
    assert sorted(kl.get_masks(converted)) == ["conv1d", "dense"]
    assert kl.sparsity_report(converted).total.total == 3 * 5 * 3 + 4 * 2
    _assert_same_outputs(original, converted, x_in)


def test_masked_does_not_warn_when_every_weight_is_masked():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kl.masked(_sequential())  # Conv2D, BatchNormalization, Dense


# --------------------------------------------------------------------------
# strip()


def _pruned_masked_functional(seed=0):
    model = kl.masked(_functional(seed))
    kl.prune(model, 0.5)
    return model


def _assert_plain(model):
    for layer in _layers(model):
        assert not isinstance(layer, MASKED), layer.name
        assert not any(
            v.path.split("/")[-1] == "mask" or v.name == "mask" for v in layer.weights
        ), layer.name
    assert not any(v.name == "mask" for v in model.weights)


def test_strip_after_prune():
    pruned = _pruned_masked_functional()
    total = kl.sparsity_report(pruned).total.total
    # branch_a, branch_b, inner_conv, inner_dense, head (3x3x3 -> 4).
    assert total == 3 * 3 * 3 * 4 + 3 * 4 + 3 * 3 * 4 * 5 + 5 * 3 + 27 * 4
    assert kl.density(pruned) == round(0.5 * total) / total
    masked_layers = {l.name: l for l in pruning.masked_layers(pruned)}
    x = _inputs(pruned)

    stripped = kl.strip(pruned)

    _assert_plain(stripped)
    leaves = {l.name: l for l in _leaf_layers(stripped)}
    for name, old in masked_layers.items():
        new = leaves[name]
        assert type(new) is {MaskedConv2D: keras.layers.Conv2D,
                             MaskedDense: keras.layers.Dense}[type(old)], name
        assert new.get_config() == old.get_config()
        np.testing.assert_array_equal(
            _np(new.kernel), _np(old.raw_kernel) * _np(old.mask)
        )
        if old.use_bias:
            np.testing.assert_array_equal(_np(new.bias), _np(old.bias))
    for name, old in {l.name: l for l in _leaf_layers(pruned)}.items():
        if name not in masked_layers:
            for w_new, w_old in zip(leaves[name].get_weights(), old.get_weights()):
                np.testing.assert_array_equal(w_new, w_old)
    assert type(stripped.get_layer("inner")) is keras.Sequential
    _assert_same_outputs(pruned, stripped, x)
    # The masked model still is masked (strip made a copy).
    assert len(kl.get_masks(pruned)) == 5


def test_strip_folds_mask_into_kernel():
    # A mask assigned directly leaves the stored kernel non-zero, so only a
    # real kernel * mask fold makes the stripped model compute the same.
    model = kl.masked(_sequential(seed=3))
    layer = model.get_layer("conv")
    raw = _np(layer.raw_kernel).copy()
    mask = (np.random.default_rng(0).random(raw.shape) < 0.4).astype("float32")
    layer.mask.assign(mask)
    dense = model.get_layer("dense")
    dense_raw = _np(dense.raw_kernel).copy()
    dense_mask = np.zeros(dense_raw.shape, "float32")
    dense_mask[::3] = 1
    dense.mask.assign(dense_mask)
    x = _inputs(model)

    stripped = kl.strip(model)

    np.testing.assert_array_equal(_np(stripped.get_layer("conv").kernel), raw * mask)
    np.testing.assert_array_equal(
        _np(stripped.get_layer("dense").kernel), dense_raw * dense_mask
    )
    assert np.count_nonzero(raw * (1 - mask)) > 0  # the fold did something
    _assert_same_outputs(model, stripped, x)
    # The source model's stored kernel is not changed by strip.
    np.testing.assert_array_equal(_np(layer.raw_kernel), raw)


def _saved_class_names(path):
    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))
    names, modules = [], []

    def walk(node):
        if isinstance(node, dict):
            if "class_name" in node:
                names.append(node["class_name"])
                modules.append(node.get("module"))
                registered = node.get("registered_name")
                if registered is not None:
                    names.append(registered)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(config)
    return names, modules


def test_stripped_model_saves_and_loads_without_custom_objects(tmp_path):
    pruned = _pruned_masked_functional(seed=4)
    stripped = kl.strip(pruned)
    x = _inputs(pruned)
    expected = _np(pruned(x, training=False))

    path = str(tmp_path / "stripped.keras")
    stripped.save(path)
    names, modules = _saved_class_names(path)
    assert "Conv2D" in names and "Dense" in names and "Sequential" in names
    assert not any("Masked" in n or "keras_lottery" in n for n in names)
    assert all(m is None or m.startswith("keras") for m in modules), modules
    # Control: the masked model's config does name our classes.
    masked_path = str(tmp_path / "masked.keras")
    pruned.save(masked_path)
    masked_names, _ = _saved_class_names(masked_path)
    assert any("MaskedConv2D" in n for n in masked_names)

    # Load in a fresh interpreter that never imports keras_lottery.
    np.save(tmp_path / "x.npy", x)
    script = textwrap.dedent(
        f"""
        import sys
        import numpy as np
        import keras
        model = keras.models.load_model({path!r})
        assert "keras_lottery" not in sys.modules
        x = np.load({str(tmp_path / "x.npy")!r})
        np.save({str(tmp_path / "y.npy")!r},
                keras.ops.convert_to_numpy(model(x, training=False)))
        print(sorted({{type(l).__name__ for l in model.layers}}))
        """
    )
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True, text=True, env=env, cwd=str(tmp_path), timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Masked" not in result.stdout
    np.testing.assert_allclose(
        np.load(tmp_path / "y.npy"), expected, rtol=1e-6, atol=1e-6
    )

    # And in this process, with no custom_objects, to plain layers.
    loaded = keras.models.load_model(path)
    _assert_plain(loaded)
    _assert_same_outputs(pruned, loaded, x)


def test_masked_then_strip_round_trip():
    for original in (_sequential(seed=5), _functional(seed=5)):
        x = _inputs(original)
        expected = _np(original(x, training=False))
        round_trip = kl.strip(kl.masked(original))
        _assert_plain(round_trip)
        assert [type(l) for l in _layers(round_trip)] == [
            type(l) for l in _layers(original)
        ]
        for a, b in zip(round_trip.weights, original.weights):
            assert a.path == b.path
            np.testing.assert_array_equal(_np(a), _np(b))
        np.testing.assert_allclose(
            _np(round_trip(x, training=False)), expected, rtol=1e-6, atol=1e-6
        )


def test_strip_architecture_model():
    model = kl.models.build("resnet8")
    kl.prune(model, 0.2)
    x = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype("float32")
    stripped = kl.strip(model)
    _assert_plain(stripped)
    kernels = [l for l in stripped.layers if isinstance(l, PLAIN_KERNEL_LAYERS)]
    assert len(kernels) == 11
    kept = sum(np.count_nonzero(_np(l.kernel)) for l in kernels)
    assert kept == round(0.2 * kl.sparsity_report(model).total.total)
    # Regularisers survive the conversion (they are part of the config).
    assert len(stripped.losses) == len(stripped.trainable_variables)
    _assert_same_outputs(model, stripped, x)


# --------------------------------------------------------------------------
# Unsupported models.


class _Subclassed(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(3)

    def call(self, inputs):
        return self.dense(inputs)


def test_subclassed_model_raises_type_error():
    # strip() rebuilds subclassed models (tests/sparse/test_held.py).
    model = _Subclassed()
    model(np.ones((1, 4), "float32"))
    assert model.built
    with pytest.raises(TypeError, match="Sequential and Functional"):
        kl.masked(model)


@pytest.mark.parametrize("convert", [kl.masked, kl.strip])
def test_unbuilt_sequential_raises_helpful_value_error(convert):
    model = keras.Sequential([keras.layers.Dense(3), keras.layers.Dense(2)])
    with pytest.raises(ValueError) as info:
        convert(model)
    message = str(info.value)
    assert "built" in message
    assert "keras.Input" in message or "build" in message


def test_sequential_built_with_build_is_accepted():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.layers.Dense(3), keras.layers.Dense(2)])
    model.build((None, 4))
    converted = kl.masked(model)
    assert [type(l) for l in converted.layers] == [MaskedDense, MaskedDense]
    _assert_same_outputs(model, converted, _inputs(model))


def test_non_model_raises_type_error():
    with pytest.raises(TypeError, match="Sequential and Functional"):
        kl.masked(keras.layers.Dense(3))


def test_layers_that_hold_no_kernel_are_not_warned_about():
    # ConvNeXt's LayerScale layers scale channels (one gamma vector each):
    # nothing to prune, nothing to warn about.
    model = keras.applications.ConvNeXtTiny(input_shape=(32, 32, 3), weights=None,
                                            classes=10)
    scales = [l for l in _layers(model) if type(l).__name__ == "LayerScale"]
    assert len(scales) == 18 and all(len(l.weights) == 1 for l in scales)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        kl.masked(model)
    assert not [w for w in caught if "keras_lottery" in str(w.message)]
