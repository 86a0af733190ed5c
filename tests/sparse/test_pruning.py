import math
import warnings

import keras
import numpy as np
import pytest

import keras_lottery as kl
from keras_lottery.sparse import pruning
from keras_lottery.sparse.ranking import magnitude_masks
from keras_lottery.sparse.slots import slot_variables


@pytest.fixture(scope="module")
def resnet20():
    keras.utils.set_random_seed(0)
    return kl.models.build("resnet20")


def _fresh(model):
    """Resets a module-scoped model's masks to ones."""
    kl.set_masks(model, {k: np.ones_like(v) for k, v in kl.get_masks(model).items()})
    return model


def _scores(model):
    return np.concatenate([
        np.abs(keras.ops.convert_to_numpy(l.kernel) * m).ravel()
        for l, m in zip(pruning.masked_layers(model), kl.get_masks(model).values())
    ])


def _random_weights(seed=0):
    rng = np.random.default_rng(seed)
    weights = {"a": rng.normal(size=(3, 3, 2, 4)), "b": rng.normal(size=(8, 5)),
               "c": rng.normal(size=(5, 3))}
    masks = {k: np.ones_like(v) for k, v in weights.items()}
    return weights, masks


@pytest.mark.parametrize("density", [1.0, 0.8, 0.5, 0.333, 0.01, 1e-9])
def test_global_keeps_exact_count_and_orders_globally(density):
    weights, masks = _random_weights()
    new = magnitude_masks(weights, masks, density)
    total = sum(w.size for w in weights.values())
    assert sum(m.sum() for m in new.values()) == round(density * total)
    kept = np.concatenate([np.abs(weights[k])[new[k] == 1] for k in new])
    pruned = np.concatenate([np.abs(weights[k])[new[k] == 0] for k in new])
    if kept.size and pruned.size:
        assert kept.min() >= pruned.max()
    for k in new:
        assert new[k].shape == weights[k].shape
        assert set(np.unique(new[k])) <= {0.0, 1.0}


def test_pure_function_does_not_modify_inputs():
    weights, masks = _random_weights()
    before = {k: v.copy() for k, v in weights.items()}, {k: v.copy() for k, v in masks.items()}
    magnitude_masks(weights, masks, 0.5)
    for k in weights:
        np.testing.assert_array_equal(weights[k], before[0][k])
        np.testing.assert_array_equal(masks[k], before[1][k])


def test_ties_broken_by_flat_position():
    weights = {"a": np.ones((2, 2)), "b": np.ones(3)}
    masks = {"a": np.ones((2, 2)), "b": np.ones(3)}
    new = magnitude_masks(weights, masks, 3 / 7)
    np.testing.assert_array_equal(new["a"], [[1, 1], [1, 0]])
    np.testing.assert_array_equal(new["b"], [0, 0, 0])
    # Deterministic: the same call gives the same answer.
    again = magnitude_masks(weights, masks, 3 / 7)
    for k in new:
        np.testing.assert_array_equal(new[k], again[k])


def test_pruned_weights_never_revive_even_when_survivors_are_zero():
    # Every weight scores 0; the currently unmasked ones must still win.
    weights = {"a": np.zeros(6)}
    masks = {"a": np.array([0, 1, 0, 1, 1, 0], float)}
    new = magnitude_masks(weights, masks, 2 / 6)
    np.testing.assert_array_equal(new["a"], [0, 1, 0, 1, 0, 0])
    # A large raw weight under a zero mask scores zero too.
    weights = {"a": np.array([100.0, 1.0, 2.0, 3.0])}
    masks = {"a": np.array([0.0, 1.0, 1.0, 1.0])}
    new = magnitude_masks(weights, masks, 0.5)
    np.testing.assert_array_equal(new["a"], [0, 0, 1, 1])


def test_masks_nest_across_rounds():
    weights, masks = _random_weights(3)
    first = magnitude_masks(weights, masks, 0.8)
    second = magnitude_masks(weights, first, 0.64)
    for k in weights:
        assert (second[k] <= first[k]).all()
    total = sum(w.size for w in weights.values())
    assert sum(m.sum() for m in second.values()) == round(0.64 * total)


def test_layerwise_scope_prunes_each_layer_to_density():
    weights, masks = _random_weights(4)
    new = magnitude_masks(weights, masks, 0.3, scope="layerwise")
    for k, w in weights.items():
        assert new[k].sum() == round(0.3 * w.size)
        kept, pruned = np.abs(w)[new[k] == 1], np.abs(w)[new[k] == 0]
        assert kept.min() >= pruned.max()


@pytest.mark.parametrize(
    "bad", [0, 0.0, -0.1, 1.0001, 80, math.nan, math.inf, "0.8", None, True]
)
def test_density_must_be_a_fraction(bad):
    weights, masks = _random_weights()
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        magnitude_masks(weights, masks, bad)
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        kl.prune(kl.models.build("resnet8"), bad)


def test_unknown_scope_is_refused():
    weights, masks = _random_weights()
    with pytest.raises(ValueError, match="scope"):
        magnitude_masks(weights, masks, 0.5, scope="per-layer")


def test_prune_resnet20_global_exact_count_and_order(resnet20):
    model = _fresh(resnet20)
    kl.prune(model, 0.8)
    total = 271_152
    assert sum(int(m.sum()) for m in kl.get_masks(model).values()) == round(0.8 * total)
    assert kl.density(model) == round(0.8 * total) / total
    masks = kl.get_masks(model)
    raw = [keras.ops.convert_to_numpy(l.raw_kernel) for l in pruning.masked_layers(model)]
    kept = np.concatenate([np.abs(w)[m == 1] for w, m in zip(raw, masks.values())])
    pruned = np.concatenate([w[m == 0] for w, m in zip(raw, masks.values())])
    # Stored kernels are zeroed where pruned, so compare against the
    # magnitudes a second, independent ranking would see.
    assert (pruned == 0).all()
    assert kept.min() > 0
    # Every layer took part in the global ranking with different densities.
    per_layer = {k: m.mean() for k, m in masks.items()}
    assert len({round(d, 3) for d in per_layer.values()}) > 3


def test_prune_global_ordering_against_pre_prune_magnitudes(resnet20):
    model = _fresh(resnet20)
    before = _scores(model)
    kl.prune(model, 0.5)
    mask = np.concatenate([m.ravel() for m in kl.get_masks(model).values()])
    assert before[mask == 1].min() >= before[mask == 0].max()


def test_prune_resnet20_layerwise_exact_counts(resnet20):
    model = _fresh(resnet20)
    kl.prune(model, 0.3, scope="layerwise")
    for name, mask in kl.get_masks(model).items():
        assert mask.sum() == round(0.3 * mask.size), name


def test_prune_nests_across_two_rounds_on_model(resnet20):
    model = _fresh(resnet20)
    first = {k: v.copy() for k, v in kl.prune(model, 0.8).items()}
    kl.prune(model, 0.64)
    second = kl.get_masks(model)
    for k in first:
        assert (second[k] <= first[k]).all()
    assert sum(int(m.sum()) for m in second.values()) == round(0.64 * 271_152)


def test_prune_above_current_density_warns_and_keeps_masks():
    model = kl.models.build("resnet8")
    kl.prune(model, 0.5)
    before = kl.get_masks(model)
    with pytest.warns(UserWarning, match="Nothing pruned"):
        kl.prune(model, 0.7)
    for k, v in kl.get_masks(model).items():
        np.testing.assert_array_equal(v, before[k])
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        kl.prune(model, 0.4)


def test_prune_exclude_leaves_layer_untouched_and_uncounted():
    model = kl.models.build("resnet8")
    kl.prune(model, 0.5, exclude=("conv_1", "dense"))
    masks = kl.get_masks(model)
    assert masks["conv_1"].all() and masks["dense"].all()
    counted = [m for k, m in masks.items() if k not in ("conv_1", "dense")]
    assert sum(m.sum() for m in counted) == round(0.5 * sum(m.size for m in counted))
    with pytest.raises(ValueError, match="exclude names no masked layer"):
        kl.prune(model, 0.5, exclude=("nope",))


def test_get_set_masks_round_trip_and_validation():
    model = kl.models.build("resnet8")
    masks = kl.get_masks(model)
    assert list(masks) == [l.name for l in pruning.masked_layers(model)]
    masks["dense"][:, 0] = 0
    kl.set_masks(model, {"dense": masks["dense"]})
    np.testing.assert_array_equal(kl.get_masks(model)["dense"], masks["dense"])
    assert (keras.ops.convert_to_numpy(model.get_layer("dense").raw_kernel)[:, 0] == 0).all()
    with pytest.raises(ValueError, match="No masked layer named"):
        kl.set_masks(model, {"bogus": masks["dense"]})
    with pytest.raises(ValueError, match="shape"):
        kl.set_masks(model, {"dense": masks["dense"].T})
    with pytest.raises(ValueError, match="0 and 1"):
        kl.set_masks(model, {"dense": masks["dense"] * 2})


def test_set_masks_zeroes_momentum_at_pruned_positions():
    keras.utils.set_random_seed(0)
    model = kl.models.build("resnet8")
    model.compile(optimizer=kl.MomentumSGD(0.1), loss=keras.losses
                  .SparseCategoricalCrossentropy(from_logits=True))
    x = np.random.default_rng(0).normal(size=(8, 32, 32, 3)).astype("float32")
    model.fit(x, np.arange(8), epochs=1, batch_size=8, verbose=0)
    kernel = model.get_layer("dense").raw_kernel
    slot = model.optimizer.slot(kernel)
    assert np.abs(keras.ops.convert_to_numpy(slot)).min() > 0
    kl.prune(model, 0.5)
    mask = kl.get_masks(model)["dense"]
    momentum = keras.ops.convert_to_numpy(slot)
    assert (momentum[mask == 0] == 0).all()
    assert (momentum[mask == 1] != 0).all()
    # And with Keras's own optimizers too (Adam keeps two slots).
    model.compile(optimizer=keras.optimizers.Adam(), loss=keras.losses
                  .SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, np.arange(8), epochs=1, batch_size=8, verbose=0)
    kl.set_masks(model, {"dense": np.zeros_like(mask)})
    slots = slot_variables(model.optimizer, kernel, model.variables)
    assert len(slots) == 2
    for s in slots:
        assert not keras.ops.convert_to_numpy(s).any()


def test_density_and_sparsity_report():
    model = kl.models.build("resnet8")
    assert kl.density(model) == 1.0
    kl.set_masks(model, {"dense": np.zeros((64, 10))})
    report = kl.sparsity_report(model)
    names = [r.name for r in report.rows]
    assert names == list(kl.get_masks(model))
    dense = report.rows[-1]
    assert (dense.name, dense.shape, dense.total, dense.remaining, dense.density) == (
        "dense", (64, 10), 640, 0, 0.0)
    assert report.total.total == 77_616
    assert report.total.remaining == 77_616 - 640
    assert kl.density(model) == pytest.approx((77_616 - 640) / 77_616)
    text = str(report)
    assert text.splitlines()[0].split() == ["layer", "shape", "total", "remaining", "density",
                                            "filters", "flops"]
    assert "total" in text.splitlines()[-1] and "76,976" in text
    assert list(report)[-1] is report.total


def test_model_without_masked_layers_gets_actionable_error():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="keras_lottery.masked"):
        kl.prune(model, 0.5)


def test_density_above_current_never_revives_pruned_weights():
    weights = {"a": np.array([5.0, 4.0, 3.0, 2.0])}
    masks = {"a": np.array([0.0, 1.0, 0.0, 1.0])}
    new = magnitude_masks(weights, masks, 0.75)
    np.testing.assert_array_equal(new["a"], masks["a"])
