"""keras.applications networks, small, through masked -> prune -> fit ->
save/load -> strip (issue 23)."""

import warnings

import keras
import numpy as np
import pytest

import keras_lottery as kl

APPLICATIONS = [("MobileNetV2", dict(alpha=0.35)), ("EfficientNetB0", {})]


def _np(x):
    return keras.ops.convert_to_numpy(x)


@pytest.mark.parametrize("name, options", APPLICATIONS)
def test_an_application_is_masked_pruned_trained_saved_and_stripped(name, options, tmp_path):
    keras.utils.set_random_seed(0)
    original = getattr(keras.applications, name)(input_shape=(32, 32, 3), weights=None,
                                                 classes=10, **options)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, 8)
    model = kl.masked(original)
    np.testing.assert_allclose(_np(model(x)), _np(original(x)), rtol=1e-5, atol=1e-6)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        kl.prune(model, 0.2, min_per_layer=1)
    assert not [w for w in caught if "no weight" in str(w.message)]
    masks = kl.get_masks(model)
    total = sum(m.size for m in masks.values())
    assert sum(int(m.sum()) for m in masks.values()) == round(0.2 * total)
    assert all(m.any() for m in masks.values())
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(),
                  run_eagerly=True)  # two steps: tracing would take longer
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    for key, kernel in kl.get_kernels(model).items():
        assert not kernel[masks[key] == 0].any(), key  # pruned weights stay zero
    expected = _np(model(x, training=False))
    model.save(tmp_path / "pruned.keras")
    loaded = kl.load_model(tmp_path / "pruned.keras")
    np.testing.assert_allclose(_np(loaded(x, training=False)), expected, rtol=1e-5, atol=1e-6)
    for key, mask in kl.get_masks(loaded).items():
        np.testing.assert_array_equal(mask, masks[key])
    stripped = kl.strip(model)
    np.testing.assert_allclose(_np(stripped(x, training=False)), expected,
                               rtol=1e-5, atol=1e-6)
    assert not any("Masked" in type(layer).__name__ for layer in stripped.layers)
