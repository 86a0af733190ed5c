"""Layer collapse: global pruning that leaves a kernel with no weight is
reported, and `min_per_layer` keeps some of every kernel."""

import warnings

import keras
import numpy as np
import pytest

import keras_lottery as kl
from keras_lottery.sparse.ranking import magnitude_masks


def _weights():
    # "small" is all tiny weights: global magnitude pruning takes it first.
    rng = np.random.default_rng(0)
    weights = {"big": rng.normal(size=(20, 10)), "small": rng.normal(size=(6,)) * 1e-3,
               "mid": rng.normal(size=(10, 4))}
    return weights, {k: np.ones_like(v) for k, v in weights.items()}


def test_min_per_layer_keeps_the_best_of_every_layer_within_the_same_total():
    weights, masks = _weights()
    plain = magnitude_masks(weights, masks, 0.2)
    assert plain["small"].sum() == 0  # collapsed
    kept = magnitude_masks(weights, masks, 0.2, min_per_layer=2)
    assert sum(m.sum() for m in kept.values()) == sum(m.sum() for m in plain.values())
    assert kept["small"].sum() == 2
    best = np.argsort(-np.abs(weights["small"]), kind="stable")[:2]
    assert set(np.flatnonzero(kept["small"])) == set(best)
    # The rest of the budget goes by global rank, as without the minimum.
    assert (kept["big"] <= plain["big"]).all() and (kept["mid"] <= plain["mid"]).all()


def test_min_per_layer_keeps_no_pruned_weight_and_fits_the_budget():
    weights, masks = _weights()
    masks["small"][:5] = 0  # one survivor left: the floor is what remains
    kept = magnitude_masks(weights, masks, 0.1, min_per_layer=3)
    assert kept["small"].sum() == 1 and kept["small"][5] == 1
    with pytest.raises(ValueError, match=r"min_per_layer=30 keeps at least 61 weights "
                                         r"\(3 layers\), more than the 25"):
        magnitude_masks(weights, masks, 0.1, min_per_layer=30)
    with pytest.raises(ValueError, match="applies to scope='global'"):
        magnitude_masks(weights, masks, 0.1, scope="layerwise", min_per_layer=1)


def _model():
    keras.utils.set_random_seed(0)
    model = kl.masked(keras.Sequential([
        keras.Input((16,)), keras.layers.Dense(32, name="wide"),
        keras.layers.Dense(4, name="thin"), keras.layers.Dense(3, name="head")]))
    thin = model.get_layer("thin")
    thin.raw_kernel.assign(thin.raw_kernel.numpy() * 1e-4)  # ranked last
    return model


def test_prune_warns_in_one_line_naming_the_collapsed_kernels():
    model = _model()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        kl.prune(model, 0.2)
    (warning,) = [w for w in caught if w.category is UserWarning]
    assert str(warning.message) == (
        "pruning to density 0.2 left 1 kernel(s) with no weight (thin); their "
        "layers output only their bias: keep some with min_per_layer=1 (or more)")
    report = kl.sparsity_report(model)
    assert report.collapsed == ["thin"]
    (line,) = [r for r in str(report).splitlines() if r.startswith("thin")]
    assert line.endswith("no weight") and " 0.0000 " in line
    # Said once: pruning further does not repeat it for a kernel already empty.
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        kl.prune(model, 0.1)


def test_prune_with_min_per_layer_collapses_nothing():
    model = _model()
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        kl.prune(model, 0.2, min_per_layer=4)
    assert kl.get_masks(model)["thin"].sum() == 4
    assert kl.sparsity_report(model).collapsed == []
    with pytest.raises(kl.LotteryError, match="^pruner='random': takes no min_per_layer="):
        kl.prune(model, 0.1, pruner="random", seed=0, min_per_layer=1)
