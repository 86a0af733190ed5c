"""Mask keys follow a layer's position: names, paths where names repeat."""

import keras
import numpy as np
import pytest

import keras_lottery as kl
from keras_lottery.sparse import pruning
from keras_lottery.sparse.slots import slot_variables


def tower(name):
    """A sub-model from one builder: its layers' names repeat per tower."""
    inputs = keras.Input((8,))
    x = keras.layers.Dense(6, name="dense")(inputs)
    return keras.Model(inputs, keras.layers.Dense(4, name="out")(x), name=name)


def towers():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8,))
    both = keras.layers.Concatenate()([tower("tower_a")(inputs), tower("tower_b")(inputs)])
    return keras.Model(inputs, keras.layers.Dense(3, name="head")(both))


KEYS = ["tower_a/dense", "tower_a/out", "tower_b/dense", "tower_b/out", "head"]


def test_flat_models_keep_their_layer_names_as_keys():
    model = kl.masked(keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="a"),
                                        keras.layers.Dense(2, name="b")]))
    assert list(kl.get_masks(model)) == ["a", "b"]


def test_repeated_names_in_sub_models_are_keyed_by_path():
    model = kl.masked(towers())
    assert list(kl.get_masks(model)) == KEYS
    assert [key for key, _ in pruning.layer_keys(model)] == KEYS
    assert [r.name for r in kl.sparsity_report(model).rows] == KEYS
    new = kl.prune(model, 0.5)
    total = 8 * 6 + 6 * 4
    assert sum(int(m.sum()) for m in new.values()) == round(0.5 * (2 * total + 8 * 3))
    assert kl.density(model) == pytest.approx(0.5, abs=1e-2)
    # The two towers' layers are distinct: pruning one leaves the other.
    masks = kl.get_masks(model)
    masks["tower_a/dense"][:] = 0
    kl.set_masks(model, {"tower_a/dense": masks["tower_a/dense"]})
    assert kl.get_masks(model)["tower_a/dense"].sum() == 0
    assert kl.get_masks(model)["tower_b/dense"].sum() > 0
    # A layer name names every layer of that name; a path one of them.
    assert kl.density(model, exclude="dense") == kl.density(
        model, exclude=["tower_a/dense", "tower_b/dense"])
    with pytest.raises(ValueError, match=r"'dense' names several layers, name one of "
                                         r"\['tower_a/dense', 'tower_b/dense'\]"):
        kl.set_masks(model, {"dense": masks["tower_a/dense"]})


def test_path_keys_survive_save_and_load(tmp_path):
    model = kl.masked(towers())
    kl.prune(model, 0.3)
    model.save(tmp_path / "towers.keras")
    loaded = kl.load_model(tmp_path / "towers.keras")
    masks = kl.get_masks(model)
    assert list(kl.get_masks(loaded)) == KEYS
    for key, mask in kl.get_masks(loaded).items():
        np.testing.assert_array_equal(mask, masks[key])


def test_momentum_of_each_tower_is_zeroed_with_its_own_mask():
    model = kl.masked(towers())
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), loss="mse")
    model.fit(np.ones((8, 8)), np.zeros((8, 3)), verbose=0)
    layers = dict(pruning.layer_keys(model))
    a, b = layers["tower_a/dense"].raw_kernel, layers["tower_b/dense"].raw_kernel
    assert a.path == b.path  # Keras scopes names, not variable paths, per sub-model
    (slot_a,) = slot_variables(model.optimizer, a, model.variables)
    (slot_b,) = slot_variables(model.optimizer, b, model.variables)
    assert slot_a is not slot_b
    before = keras.ops.convert_to_numpy(slot_b).copy()
    assert np.abs(before).sum() > 0
    kl.set_masks(model, {"tower_a/dense": np.zeros(a.shape)})
    assert not keras.ops.convert_to_numpy(slot_a).any()
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(slot_b), before)
