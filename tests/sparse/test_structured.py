"""L1-norm filter pruning (SPEC §2.4): the paper's configurations give the
densities its counting rule gives, recomputed here by arithmetic from the
layer lists and the networks' shapes; the smallest filters go with their
readers' input channels; layers whose channels reach an Add are refused;
bad input is one line."""

import random

import keras
import numpy as np
import pytest

import keras_lottery as kl
from error_messages import single_line
from keras_lottery import models
from keras_lottery.errors import LotteryError
from keras_lottery.sparse import pruners
from keras_lottery.sparse import structured

LEVELS = (1, 2, 3, 4, 5)


def evens(first, last, skip=()):
    return [k for k in range(first, last + 1, 2) if k not in skip]


# The layer lists as SPEC §2.4 writes them: {conv number: fraction}.
PAPER = {
    "resnet56-A": {k: 0.1 for k in evens(2, 52, skip={16, 20, 38})},
    "resnet56-B": {**{k: 0.6 for k in evens(2, 14)},
                   **{k: 0.3 for k in evens(22, 32) + [36]},
                   **{k: 0.1 for k in evens(40, 52)}},
    "resnet110-A": {k: 0.5 for k in evens(2, 34)},
    "resnet110-B": {**{k: 0.5 for k in evens(2, 34)}, **{k: 0.4 for k in evens(40, 72)},
                    **{k: 0.3 for k in evens(76, 108)}},
    "resnet34-A": {k: 0.3 for k in (4, 6, 10, 12, 18, 20, 22, 24)},
    "resnet34-B": {4: 0.5, 6: 0.5, 10: 0.6, 12: 0.6, 18: 0.4, 20: 0.4, 22: 0.4, 24: 0.4},
    "vgg16-A": {k: 0.5 for k in (1, 8, 9, 10, 11, 12, 13)},
}
# Blocks per stage, widths per stage, stem width and its kernel size.
RESNETS = {"resnet56": ((9, 9, 9), (16, 32, 64), 16, 3),
           "resnet110": ((18, 18, 18), (16, 32, 64), 16, 3),
           "resnet34": ((3, 4, 6, 3), (64, 128, 256, 512), 64, 7)}
VGG_WIDTHS = (64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512)
CLASSES = {"resnet56": 10, "resnet110": 10, "resnet34": 1000}
TOTALS = {"resnet56": 851_760, "resnet110": 1_722_672, "resnet34": 21_783_744,
          "vgg16_nofc": 14_715_584}


def resnet_shapes(arch):
    """{conv number: (kh·kw·cin, cout)} of the 3×3 convs, and every
    kernel's size (stem, convs, projections, dense) summed."""
    blocks, widths, stem, size = RESNETS[arch]
    shapes, total, k, previous = {}, size * size * 3 * stem, 2, stem
    for count, width in zip(blocks, widths):
        total += previous * width  # the 1x1 projection of the stage's first block
        for block in range(count):
            cin = previous if block == 0 else width
            shapes[k], shapes[k + 1] = (9 * cin, width), (9 * width, width)
            total += 9 * cin * width + 9 * width * width
            k += 2
        previous = width
    return shapes, total + widths[-1] * CLASSES[arch]


def drawn(listed, widths, level):
    """Filters removed per listed layer, drawn as the original does."""
    rng, removed = random.Random(0), {}
    for k in sorted(listed):
        x = widths[k] * (1 - (1 - listed[k]) ** level)
        removed[k] = int(x) + (rng.random() < x - int(x))
    return removed


def expected_resnet_kept(config, level):
    shapes, total = resnet_shapes(config.split("-")[0])
    removed = drawn(PAPER[config], {k: s[1] for k, s in shapes.items()}, level)
    # A listed conv (even k) loses n filters of its own and its reader
    # conv_{k+1} (never listed) n input channels: disjoint slices.
    assert not any(k + 1 in PAPER[config] for k in removed)
    lost = sum(n * shapes[k][0] + n * 9 * shapes[k][1] for k, n in removed.items())
    return total - lost, total


def expected_vgg_kept(level):
    widths = {k: w for k, w in enumerate(VGG_WIDTHS, start=1)}
    removed = drawn(PAPER["vgg16-A"], widths, level)
    kept, cin = 0, 3
    for k, width in widths.items():
        # conv_k keeps its kept filters over the kept filters of conv_{k-1}.
        kept += 9 * (cin - removed.get(k - 1, 0)) * (width - removed.get(k, 0))
        cin = width
    kept += (512 - removed[13]) * 10  # fc_14 reads conv_13 through the flatten
    total = sum(9 * a * b for a, b in zip((3,) + VGG_WIDTHS, VGG_WIDTHS)) + 512 * 10
    return kept, total


@pytest.fixture(scope="module")
def networks():
    keras.utils.set_random_seed(0)
    built = {name: models.build(name, num_classes=CLASSES[name], input_shape=(32, 32, 3))
             for name in RESNETS}
    built["vgg16_nofc"] = models.build("vgg16_nofc")
    return built


def test_the_denominators_are_the_papers(networks):
    for name, total in TOTALS.items():
        assert sum(m.size for m in kl.get_masks(networks[name]).values()) == total
    for name in RESNETS:
        assert resnet_shapes(name)[1] == TOTALS[name]
    assert expected_vgg_kept(1)[1] == TOTALS["vgg16_nofc"]


@pytest.mark.parametrize("config", list(PAPER))
def test_each_configuration_prunes_to_the_papers_count(networks, config):
    arch = "vgg16_nofc" if config.startswith("vgg") else config.split("-")[0]
    model = networks[arch]
    current = kl.get_masks(model)
    assert {f"conv_{k}" for k in PAPER[config]} <= set(
        structured.structured_masks(model, config, 1))
    for level in LEVELS:
        new = structured.structured_masks(model, config, level)
        kept = sum(int(new.get(k, m).sum()) for k, m in current.items())
        want = expected_vgg_kept(level) if arch == "vgg16_nofc" else (
            expected_resnet_kept(config, level))
        assert (kept, TOTALS[arch]) == want, (config, level)
    # The model itself is not changed by computing the masks.
    assert kl.density(model) == 1.0


def test_prune_filters_sets_the_masks_and_density_counts_the_papers_way():
    model = _resnet8(seed=3)
    masks = kl.prune_filters(model, {"conv_2": 0.5, "conv_4": 0.25})
    assert set(masks) == {"conv_2", "conv_3", "conv_4", "conv_5"}
    # resnet8: conv_2 16 -> 8 filters (16x3x3 inputs) and conv_3 8 of 16
    # inputs; conv_4 32 filters lose 8 (16 inputs), conv_5 8 of 32 inputs.
    lost = 8 * 9 * 16 + 8 * 9 * 16 + 8 * 9 * 16 + 8 * 9 * 32
    assert kl.density(model) == pytest.approx((77_616 - lost) / 77_616)
    kernel = keras.ops.convert_to_numpy(model.get_layer("conv_2").raw_kernel)
    assert not kernel[..., masks["conv_2"][0, 0, 0] == 0].any()  # stored kernel zeroed


def _resnet8(seed=0):
    keras.utils.set_random_seed(seed)
    return models.build("resnet8")


def _set_filter_norms(layer, norms):
    """Gives `layer`'s filter j the L1 norm norms[j] (kernel of ones, scaled)."""
    kernel = np.ones(tuple(layer.raw_kernel.shape), "float32")
    kernel /= np.abs(kernel).reshape(-1, kernel.shape[-1]).sum(axis=0)
    layer.raw_kernel.assign(kernel * np.asarray(norms, "float32"))


def test_the_smallest_filters_go_and_their_readers_input_channels_with_them():
    model = _resnet8()
    norms = np.random.default_rng(0).permutation(16) + 1.0
    _set_filter_norms(model.get_layer("conv_2"), norms)
    before = kl.get_masks(model)
    new = kl.prune_filters(model, {"conv_2": 0.5})
    gone = np.sort(np.argsort(norms)[:8])
    np.testing.assert_array_equal(np.flatnonzero(new["conv_2"][0, 0, 0] == 0), gone)
    assert (new["conv_2"][..., gone] == 0).all()
    assert (np.delete(new["conv_2"], gone, axis=-1) == 1).all()
    assert (new["conv_3"][:, :, gone, :] == 0).all()
    assert (np.delete(new["conv_3"], gone, axis=2) == 1).all()
    after = kl.get_masks(model)
    unchanged = [k for k in before if k not in ("conv_2", "conv_3")]
    assert all(np.array_equal(before[k], after[k]) for k in unchanged)


def test_already_zero_filters_are_not_counted_and_rounding_is_the_originals():
    model = _resnet8()
    _set_filter_norms(model.get_layer("conv_2"), np.arange(1, 17.0))
    masks = kl.get_masks(model)
    masks["conv_2"][..., 12:] = 0  # four filters pruned already
    kl.set_masks(model, masks)
    random.seed(123)
    state = random.getstate()
    new = kl.prune_filters(model, {"conv_2": 0.3, "conv_4": 0.3})
    assert random.getstate() == state  # the global generator is left alone
    rng = random.Random(0)
    # 12 live filters × 0.3 ≈ 3.6, then 32 × 0.3 ≈ 9.6: one draw each, in order.
    x, y = 12 * (1 - (1 - 0.3)), 32 * (1 - (1 - 0.3))
    first = 3 + (rng.random() < x - 3)
    second = 9 + (rng.random() < y - 9)
    kept = new["conv_2"][0, 0, 0]
    assert np.flatnonzero(kept == 0).tolist() == list(range(first)) + [12, 13, 14, 15]
    assert int((new["conv_4"][0, 0, 0] == 0).sum()) == second


def _small(head):
    """conv (4 filters) -> BN -> ReLU -> max-pool -> `head` -> dense."""
    x = image = keras.Input((6, 6, 2))
    x = keras.layers.Conv2D(4, 3, name="conv")(x)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.MaxPooling2D(2)(x)  # 2x2x4
    x = head()(x)
    out = keras.layers.Dense(3, name="fc")(x)
    return kl.masked(keras.Model(image, out))


@pytest.mark.parametrize("head, rows", [
    (keras.layers.Flatten, lambda c: [c, c + 4, c + 8, c + 12]),
    (keras.layers.GlobalAveragePooling2D, lambda c: [c]),
])
def test_a_dense_reader_loses_the_rows_of_the_channel(head, rows):
    keras.utils.set_random_seed(0)
    model = _small(head)
    _set_filter_norms(model.get_layer("conv"), [4.0, 1.0, 3.0, 2.0])
    new = kl.prune_filters(model, {"conv": 0.5})
    assert np.flatnonzero(new["conv"][0, 0, 0] == 0).tolist() == [1, 3]
    zero_rows = np.flatnonzero((new["fc"] == 0).all(axis=1)).tolist()
    assert zero_rows == sorted(rows(1) + rows(3))
    assert new["fc"].sum() == new["fc"].size - len(zero_rows) * 3


def _concatenated():
    x = image = keras.Input((8, 8, 3))
    a = keras.layers.Conv2D(4, 3, padding="same", name="a")(x)
    b = keras.layers.Conv2D(4, 3, padding="same", name="b")(x)
    x = keras.layers.Concatenate(name="cat")([a, b])
    x = keras.layers.Conv2D(2, 3, name="c")(keras.layers.ReLU()(x))
    return kl.masked(keras.Model(image, x))


@pytest.mark.parametrize("build, config, fragment", [
    (_resnet8, {"conv_3": 0.5}, "'conv_3' reach 'conv_3_add' (Add)"),
    (_resnet8, {"proj_2_2": 0.5}, "'proj_2_2' reach 'conv_3_add' (Add)"),
    (_resnet8, {"conv_2": 0.5, "conv_7": 0.5}, "'conv_7' reach 'conv_7_add' (Add)"),
    (_concatenated, {"a": 0.5}, "'a' reach 'cat' (Concatenate)"),
    (_concatenated, {"c": 0.5}, "'c' reach the model's output"),
])
def test_a_layer_whose_channels_reach_an_add_is_refused(build, config, fragment):
    model = build()
    before = kl.get_masks(model)
    with pytest.raises(LotteryError) as info:
        kl.prune_filters(model, config)
    message = single_line(info)
    assert message.startswith("config=") and fragment in message
    assert "before a layer that reads them" in message
    after = kl.get_masks(model)
    assert all(np.array_equal(before[k], after[k]) for k in before)  # nothing set


@pytest.mark.parametrize("config, level, fragment", [
    ("resnet56-a", 1, "is no filter-pruning configuration (did you mean resnet56-A?)"),
    ("resnet50-A", 1, "choose one of resnet56-A, resnet56-B, resnet110-A"),
    (["conv_2"], 1, "expected a configuration's name"),
    ({}, 1, "expected a configuration's name"),
    ({"conv_2": 0.5}, 0, "level=0: expected a level, an integer >= 1"),
    ({"conv_2": 0.5}, 1.5, "level=1.5: expected a level"),
    ({"conv_2": 0.5}, True, "level=True: expected a level"),
    ({"conv_2": 1.0}, 1, "layer 'conv_2' has 1.0; a fraction of its filters to remove is in (0, 1)"),
    ({"conv_2": 0}, 1, "layer 'conv_2' has 0;"),
    ({"conv_2": -0.5}, 1, "layer 'conv_2' has -0.5;"),
    ({"conv_2": "0.5"}, 1, "layer 'conv_2' has '0.5';"),
    ({"dense": 0.5}, 1, "layer 'dense' is a MaskedDense: only a convolution"),
    ({"conv_2_bn": 0.5}, 1, "layer 'conv_2_bn' is a FusedBatchNormalization"),
    ({"conv_22": 0.5}, 1, "names 'conv_22', which is no layer of model 'resnet8' (did you "
                          "mean 'conv_2'?)"),
    ("resnet56-A", 1, "names 'conv_8', which is no layer of model 'resnet8'; resnet56-A "
                      "is a configuration of resnet56"),
])
def test_bad_input_is_one_line_naming_the_argument(config, level, fragment):
    model = _resnet8()
    with pytest.raises(LotteryError) as info:
        kl.prune_filters(model, config, level=level)
    assert fragment in single_line(info)
    assert kl.density(model) == 1.0


def test_an_unmasked_convolution_is_refused():
    image = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="plain")(image)
    x = kl.MaskedDense(2, name="fc")(keras.layers.Flatten()(x))
    with pytest.raises(LotteryError) as info:
        kl.prune_filters(keras.Model(image, x), {"plain": 0.5})
    assert "layer 'plain' is not masked; convert the model with keras_lottery.masked" in (
        single_line(info))


def test_the_pruning_seam_offers_it_as_l1_filters():
    assert "l1-filters" in pruners.available()
    model = _resnet8(seed=1)
    want = structured.structured_masks(model, {"conv_2": 0.5}, level=2)
    got = pruners.new_masks(model, pruner="l1-filters", config={"conv_2": 0.5}, level=2)
    assert set(got) == set(want) and all(np.array_equal(got[k], want[k]) for k in want)
    kl.prune(model, pruner="l1-filters", config={"conv_2": 0.5}, level=2)
    assert all(np.array_equal(kl.get_masks(model)[k], want[k]) for k in want)
    with pytest.raises(LotteryError, match=r"^density=0.5: is not used by the pruner "
                                           r"l1-filters"):
        kl.prune(model, 0.5, pruner="l1-filters", config={"conv_2": 0.5})
    with pytest.raises(LotteryError, match=r"^config=None: the pruner l1-filters needs"):
        kl.prune(model, pruner="l1-filters")
    with pytest.raises(LotteryError, match=r"^density=None: the pruner 'magnitude' needs "
                                           r"a density"):
        kl.prune(model)
    with pytest.raises(LotteryError, match="is a built-in pruner"):
        kl.register_pruner("l1-filters", structured.l1_filters)
