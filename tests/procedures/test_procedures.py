"""The procedures' semantics (DESIGN decision 6), on resnet8 and synthetic data."""

import pathlib

import keras
import numpy as np
import pytest

import keras_lottery as kl
from keras_lottery.spec import requests
from keras_lottery.spec import recipe as recipe_lib
from keras_lottery.runs import layout
from keras_lottery.spec import record
from keras_lottery.runs import run as run_lib
from snapshots import snapshot

T = 24
K = 15  # after the first LR drop (boundary 12), so the LR at k is 0.01
BATCH = 32
EVAL_EVERY = 8
SMALL = dict(steps=T, batch_size=BATCH, eval_every=EVAL_EVERY)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("runs")


@pytest.fixture(scope="module")
def parent(root):
    return kl.train("resnet8", dataset="synthetic", seed=3, verbose=0,
                    out=root / "train", **SMALL)


@pytest.fixture(scope="module")
def derived(parent, root):
    made = {}
    for name, fn in [("rewind", kl.rewind), ("rewind_lr", kl.rewind_lr),
                     ("finetune", kl.finetune), ("lowlr_rewind", kl.lowlr_rewind),
                     ("random", kl.random_prune)]:
        made[name] = fn(parent.path, iteration=K, density=0.8, seed=4,
                        verbose=0, out=root / name)
    made["reinit"] = kl.reinit(parent.path, density=0.8, seed=4, verbose=0,
                               out=root / "reinit")
    return made


def _state(run, iteration):
    """(weights by path, momentum by path, iteration) of a checkpoint."""
    model = kl.models.build("resnet8")
    kl.compile_model(model, run.spec.recipe, lr=run.spec.lr)
    model.load_weights(run.checkpoints[iteration])
    weights = {v.path: keras.ops.convert_to_numpy(v) for v in model.weights}
    momentum = {v.path: keras.ops.convert_to_numpy(model.optimizer.slot(v))
                for v in model.trainable_variables}
    return weights, momentum, int(model.optimizer.iterations)


def _masks(weights):
    return {p: w for p, w in weights.items() if p.endswith("/mask")}


def test_train_checkpoints_at_exact_iterations(parent):
    recipe = recipe_lib.make(**SMALL)
    assert parent.status == record.FINISHED
    assert list(parent.checkpoints) == list(recipe.checkpoint_iters) + ["final"]
    for it in recipe.checkpoint_iters:
        assert _state(parent, it)[2] == it
    assert _state(parent, "final")[2] == T
    leftovers = [p for p in (parent.path / "checkpoints").iterdir()
                 if not p.name.startswith("checkpoint_iter_")]
    assert leftovers == []


def test_iteration_zero_is_the_initialization(parent):
    keras.utils.set_random_seed(3)
    fresh = kl.models.build("resnet8")
    weights, momentum, it = _state(parent, 0)
    assert it == 0
    for v in fresh.weights:
        np.testing.assert_array_equal(weights[v.path], keras.ops.convert_to_numpy(v))
    assert all(not m.any() for m in momentum.values())
    after, _, _ = _state(parent, recipe_lib.make(**SMALL).checkpoint_iters[1])
    assert any(not np.array_equal(after[p], weights[p]) for p in weights)


def test_train_metrics_cadence_and_columns(parent):
    rows = parent.metrics
    assert [r["step"] for r in rows] == [8, 16, 24]
    assert list(rows[0]) == list(run_lib.METRIC_COLUMNS)
    recipe = recipe_lib.make(**SMALL)
    assert [r["lr"] for r in rows] == pytest.approx([recipe.lr_at(s - 1) for s in (8, 16, 24)])
    for r in rows:
        assert 0 <= r["top1"] <= r["top5"] <= 1 and r["density"] == 1.0
    assert list((parent.path / "logs" / "eval").glob("events.out.tfevents.*"))


def test_rewind_starts_from_parent_iteration_k(parent, derived):
    run = derived["rewind"]
    assert (run.config["start_step"], run.config["end_step"]) == (K, T)
    p_weights, p_momentum, _ = _state(parent, K)
    weights, momentum, it = _state(run, K)
    assert it == K
    masks = _masks(weights)
    for path, w in weights.items():
        if path.endswith("/mask"):
            continue
        mask = masks.get(path.replace("/kernel", "/mask"))
        expected = p_weights[path] * mask if mask is not None and path.endswith("/kernel") else p_weights[path]
        np.testing.assert_array_equal(w, expected, err_msg=path)
    for path, m in momentum.items():
        mask = masks.get(path.replace("/kernel", "/mask"))
        expected = p_momentum[path] * mask if mask is not None and path.endswith("/kernel") else p_momentum[path]
        np.testing.assert_array_equal(m, expected, err_msg=path)
    assert any(np.abs(m).sum() > 0 for m in momentum.values())
    # BN moving statistics came from k too (they differ from the final ones).
    final, _, _ = _state(parent, "final")
    stat = next(p for p in weights if p.endswith("moving_mean"))
    assert not np.array_equal(final[stat], weights[stat])
    # The first update's LR is the parent's LR at k.
    model = kl.models.build("resnet8")
    kl.compile_model(model, run.spec.recipe, lr=run.spec.lr)
    model.load_weights(run.checkpoints[K])
    lr_first = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
    parent_lr_at_k = recipe_lib.make(**SMALL).lr_at(K)
    assert parent_lr_at_k == pytest.approx(0.01 * BATCH / 128)  # after the drop
    assert lr_first == pytest.approx(parent_lr_at_k)


def test_rewind_lr_starts_from_final_state_at_iteration_k(parent, derived):
    run = derived["rewind_lr"]
    assert (run.config["start_step"], run.config["end_step"]) == (K, T)
    p_weights, p_momentum, _ = _state(parent, "final")
    weights, momentum, it = _state(run, K)
    assert it == K
    masks = _masks(weights)
    for path, w in weights.items():
        if path.endswith("/kernel") and path.replace("/kernel", "/mask") in masks:
            np.testing.assert_array_equal(w, p_weights[path] * masks[path.replace("/kernel", "/mask")])
            np.testing.assert_array_equal(momentum[path], p_momentum[path] * masks[path.replace("/kernel", "/mask")])
        elif not path.endswith("/mask"):
            np.testing.assert_array_equal(w, p_weights[path], err_msg=path)


def test_finetune_constant_lr_ends_at_2t_minus_k(parent, derived):
    run = derived["finetune"]
    assert (run.config["start_step"], run.config["end_step"]) == (T, 2 * T - K)
    assert list(run.checkpoints) == [T, "final"]
    assert _state(run, "final")[2] == 2 * T - K
    assert _state(run, T)[2] == T
    assert {r["lr"] for r in run.metrics} == {0.001 * BATCH / 128}  # scaled like the schedule
    assert [r["step"] for r in run.metrics] == [T + EVAL_EVERY, 2 * T - K]


@pytest.mark.parametrize(
    "mode", ["rewind", "rewind_lr", "finetune", "lowlr_rewind", "random", "reinit"]
)
def test_derived_masks_exact_fixed_and_kernels_zero(derived, mode):
    run = derived[mode]
    total = 77_616
    first = None
    for it in run.checkpoints:
        weights, momentum, _ = _state(run, it)
        masks = _masks(weights)
        kept = sum(int(m.sum()) for m in masks.values())
        assert kept == round(0.8 * total), it
        if first is None:
            first = masks
        for path, mask in masks.items():
            np.testing.assert_array_equal(mask, first[path])
            kernel = weights[path.replace("/mask", "/kernel")]
            assert (kernel[mask == 0] == 0).all(), (it, path)
    assert all(r["density"] == round(0.8 * total) / total for r in run.metrics)


def test_masks_come_from_magnitudes_of_parent_final(parent, derived):
    final, _, _ = _state(parent, "final")
    kernels = {p: w for p, w in final.items() if p.endswith("/kernel")}
    ones = {p: np.ones_like(w) for p, w in kernels.items()}
    expected = kl.magnitude_masks(kernels, ones, 0.8)
    weights, _, _ = _state(derived["rewind"], K)
    for path, mask in expected.items():
        np.testing.assert_array_equal(weights[path.replace("/kernel", "/mask")], mask)


def test_chaining_rounds_nests_masks(derived, root):
    first = derived["rewind"]
    second = kl.rewind(first.path, iteration=K, density=0.64, seed=5,
                       verbose=0, out=root / "round2")
    m1 = _masks(_state(first, "final")[0])
    m2 = _masks(_state(second, "final")[0])
    for path in m1:
        assert (m2[path] <= m1[path]).all()
    assert sum(int(m.sum()) for m in m2.values()) == round(0.64 * 77_616)
    assert second.spec.parent == str(first.path.resolve())


def test_derived_run_refuses_contradicting_recipe_and_bad_iteration(parent, root):
    with pytest.raises(kl.LotteryError, match="contradicts the parent"):
        kl.rewind(parent.path, iteration=K, density=0.8, steps=T + 1, out=root / "x")
    with pytest.raises(kl.LotteryError, match="saved iterations: 0, 2"):
        kl.rewind(parent.path, iteration=K + 1, density=0.8, out=root / "x")
    with pytest.raises(kl.LotteryError, match=r"\(0, 1\]"):
        kl.rewind_lr(parent.path, iteration=K, density=1.5, out=root / "x")
    assert not (root / "x").exists()


def test_finished_run_is_never_overwritten(parent, capsys):
    before = snapshot(parent.path)
    # The same request again is a no-op that says so...
    again = kl.train("resnet8", dataset="synthetic", seed=3, verbose=2,
                     out=parent.path, **SMALL)
    assert again.path == parent.path
    assert "already finished; nothing to do" in capsys.readouterr().out
    # ...and a different one is refused, naming the difference.
    with pytest.raises(kl.LotteryError, match="holds a different finished run"):
        kl.train("resnet8", dataset="synthetic", seed=4, verbose=0,
                 out=parent.path, **SMALL)
    with pytest.raises(kl.LotteryError, match="recipe"):
        kl.train("resnet8", dataset="synthetic", seed=3, verbose=0,
                 out=parent.path, steps=T + 1, batch_size=BATCH)
    assert snapshot(parent.path) == before


def test_run_open_exposes_config_metrics_checkpoints(parent):
    run = kl.Run.open(parent.path)
    assert run.config["arch"] == "resnet8" and run.config["seed"] == 3
    assert run.config["recipe"]["steps"] == T
    assert "keras" in run.config["versions"]
    assert run.metrics == parent.metrics
    assert run.checkpoints[0].name == "checkpoint_iter_0.weights.h5"


def test_train_accepts_a_user_model(tmp_path):
    model = keras.Sequential([
        keras.Input((32, 32, 3)), keras.layers.Conv2D(4, 3, strides=4),
        keras.layers.Flatten(), keras.layers.Dense(10)])
    run = kl.train(model, dataset="synthetic", seed=1, verbose=0,
                   out=tmp_path / "mine", steps=4, batch_size=16, eval_every=4)
    assert (run.path / "model.json").exists()
    child = kl.finetune(run.path, iteration=2, density=0.5, verbose=0,
                        out=tmp_path / "child")
    assert child.config["end_step"] == 4 + 2
    assert child.metrics[-1]["density"] == pytest.approx(0.5, abs=1e-3)


def _assert_rewound_to_k(parent, run):
    """The run's start state is the parent's state at K times the mask."""
    p_weights, p_momentum, _ = _state(parent, K)
    weights, momentum, it = _state(run, K)
    assert it == K
    masks = _masks(weights)
    for path, w in weights.items():
        mask = masks.get(path.replace("/kernel", "/mask"))
        if path.endswith("/mask"):
            continue
        factor = mask if mask is not None and path.endswith("/kernel") else 1
        np.testing.assert_array_equal(w, p_weights[path] * factor, err_msg=path)
        if path in momentum:
            np.testing.assert_array_equal(momentum[path], p_momentum[path] * factor)
    return masks


def test_lowlr_rewind_rewinds_weights_but_not_the_lr(parent, derived):
    run = derived["lowlr_rewind"]
    assert run.mode == "lowlr_rewind"
    assert (run.config["start_step"], run.config["end_step"]) == (K, T)
    masks = _assert_rewound_to_k(parent, run)
    rewound = _masks(_state(derived["rewind"], K)[0])
    for path in masks:  # the magnitude masks, as weight rewinding's
        np.testing.assert_array_equal(masks[path], rewound[path])
    assert {r["lr"] for r in run.metrics} == {0.001 * BATCH / 128}  # scaled like the schedule


def test_random_pruning_is_random_exact_and_rewound(parent, derived):
    run = derived["random"]
    assert run.mode == "random"
    masks = _assert_rewound_to_k(parent, run)
    magnitude = _masks(_state(derived["rewind"], K)[0])
    kept = sum(int(m.sum()) for m in masks.values())
    assert kept == round(0.8 * 77_616)
    same = sum(int((masks[p] == magnitude[p]).sum()) for p in masks)
    assert same < 0.9 * 77_616  # not the magnitude mask (random: ~0.68 agree)
    # Reproducible from the seed, and nested when pruned again.
    again = kl.random_masks(
        {p: np.ones_like(m) for p, m in masks.items()}, 0.8, seed=4)
    for path in masks:
        np.testing.assert_array_equal(again[path], masks[path])
    deeper = kl.random_masks(masks, 0.5, seed=9)
    assert all((deeper[p] <= masks[p]).all() for p in masks)
    assert sum(int(m.sum()) for m in deeper.values()) == round(0.5 * 77_616)


def test_reinit_keeps_the_mask_with_fresh_weights_and_full_schedule(parent, derived):
    run = derived["reinit"]
    assert run.mode == "reinit" and run.config["iteration"] is None
    assert (run.config["start_step"], run.config["end_step"]) == (0, T)
    assert list(run.checkpoints) == list(parent.checkpoints)
    weights, momentum, it = _state(run, 0)
    assert it == 0 and all(np.abs(m).sum() == 0 for m in momentum.values())
    masks = _masks(weights)
    magnitude = _masks(_state(derived["rewind"], K)[0])
    for path in masks:
        np.testing.assert_array_equal(masks[path], magnitude[path])
    parent_init = _state(parent, 0)[0]
    for path, w in weights.items():
        if path.endswith("/kernel"):
            m = masks[path.replace("/kernel", "/mask")]
            assert not np.array_equal(w, parent_init[path] * m), path
    assert [r["step"] for r in run.metrics] == [r["step"] for r in parent.metrics]
    assert [r["lr"] for r in run.metrics] == [r["lr"] for r in parent.metrics]
    with pytest.raises(kl.LotteryError,
                       match="iteration=15: reinit trains from step 0, so it takes no iteration"):
        kl.reinit(parent.path, density=0.8, iteration=K)


def test_iterate_rounds_exact_nested_and_idempotent(parent, root, capsys):
    study = root / "study"
    made = kl.iterate(parent.path, method="rewind", iteration=K, rounds=2,
                      seed=6, verbose=0, out=study)
    assert [r.path.name for r in made] == ["round-1", "round-2"]
    assert made[0].spec.parent == str(parent.path.resolve())
    assert made[1].spec.parent == str(made[0].path.resolve())
    # Interrupt round 2 as a kill would: no final state, status running.
    (made[1].path / layout.CHECKPOINT_DIR / layout.checkpoint_name("final")).unlink()
    made[1].set_status(record.RUNNING)
    made = kl.iterate(parent.path, method="rewind", iteration=K, rounds=3,
                      seed=6, verbose=2, out=study)
    said = capsys.readouterr().out
    assert "round-1 is already finished; nothing to do" in said
    assert "resuming" in said and "round-2" in said
    assert [r.config["round"] for r in made] == [1, 2, 3]
    total = 77_616
    previous = None
    for run, density in zip(made, [0.8, 0.64, 0.512]):
        assert run.status == record.FINISHED
        assert run.config["target_density"] == density
        masks = _masks(_state(run, "final")[0])
        assert sum(int(m.sum()) for m in masks.values()) == round(density * total)
        if previous is not None:
            assert all((masks[p] <= previous[p]).all() for p in masks)
        previous = masks
    before = snapshot(study)
    kl.iterate(parent.path, method="rewind", iteration=K, rounds=3, seed=6,
               verbose=0, out=study)
    assert snapshot(study) == before
    with pytest.raises(kl.LotteryError, match="holds a different iterative study"):
        kl.iterate(parent.path, method="finetune", iteration=K, rounds=1,
                   seed=6, verbose=0, out=study)
    with pytest.raises(kl.LotteryError, match=r"rate=1.5: expected a fraction in \(0, 1\)"):
        kl.iterate(parent.path, method="rewind", iteration=K, rounds=1, rate=1.5)


def test_validation_split_is_held_out_of_the_test_set(tmp_path):
    run = kl.train("resnet8", dataset="synthetic", seed=1, verbose=0,
                   out=tmp_path / "v", steps=4, batch_size=16, eval_every=4,
                   val_split=64)
    (row,) = run.metrics
    assert row["val_top1"] is not None
    # top-1 over the other 192 of synthetic's 256 test images.
    assert (row["top1"] * 192) == pytest.approx(round(row["top1"] * 192), abs=1e-4)
    assert (row["val_top1"] * 64) == pytest.approx(round(row["val_top1"] * 64), abs=1e-4)
    assert run.config["val_split"] == 64
    child = kl.finetune(run.path, iteration=2, density=0.5, verbose=0,
                        out=tmp_path / "c")
    assert child.config["val_split"] == 64 and child.metrics[-1]["val_top1"] is not None


def test_a_density_at_or_above_the_parents_or_keeping_nothing_is_refused(parent, derived, root):
    pruned = derived["rewind"]  # at 0.8
    with pytest.raises(kl.LotteryError) as error:
        kl.rewind(pruned.path, iteration=K, density=0.9, seed=5, out=root / "above")
    assert str(error.value) == (
        f"density=0.9: is at or above the density of {pruned.path} (0.8); density is "
        "absolute (the share of all prunable weights kept, not of the parent's), so ask "
        "for less than 0.8")
    with pytest.raises(kl.LotteryError) as error:
        kl.rewind(parent.path, iteration=K, density=1e-6, seed=5, out=root / "nothing" / "x")
    assert str(error.value).startswith(
        "density=1e-06: keeps no weight (round(density x 77,616) = 0); ask for at least")
    assert not (root / "above").exists() and not (root / "nothing").exists()


# --- Your own arrays (issue 16) ---------------------------------------------

OWN = dict(steps=4, batch_size=32, eval_every=4, checkpoint_iters=[0, 1, 4], verbose=0)


def _digit_arrays(start=0):
    digits = kl.data.load("digits")
    train = slice(start, start + 256)
    return kl.data.arrays(digits.x_train[train], digits.y_train[train],
                          digits.x_test[:64], digits.y_test[:64])


def test_your_own_arrays_train_and_derive_and_other_data_is_refused(tmp_path):
    data = _digit_arrays()
    run = kl.train("lenet300", dataset=data, seed=0, out=tmp_path / "own", **OWN)
    assert (run.spec.dataset, run.spec.data_fingerprint) == ("arrays", data.fingerprint)
    assert (run.config["input_shape"], run.config["num_classes"]) == ([8, 8, 1], 10)
    child = kl.rewind(run, iteration=1, density=0.5, dataset=data, seed=0, verbose=0,
                      out=tmp_path / "child")
    # The child records the data too: children of other arrays never group together.
    assert child.status == record.FINISHED and child.spec.data_fingerprint == data.fingerprint
    assert child.spec.comparable() != child.spec.replace(data_fingerprint="other").comparable()
    other = _digit_arrays(start=256)
    with pytest.raises(kl.LotteryError) as error:
        kl.rewind(run, iteration=1, density=0.5, dataset=other, seed=0, out=tmp_path / "other")
    assert str(error.value) == (
        f"dataset='arrays': differs from the data {run.path} trained on (sha256 "
        f"{other.fingerprint[:12]}… != {data.fingerprint[:12]}…); derive with the parent's data")
    with pytest.raises(kl.LotteryError) as error:
        kl.rewind(run, iteration=1, density=0.5, seed=0, out=tmp_path / "forgotten")
    assert str(error.value) == (
        f"dataset=None: {run.path} trained on arrays in memory (arrays); pass them again "
        "as dataset=keras_lottery.data.arrays(...)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["child", "own"]


# --- The default validation split (issue 17.11) ----------------------------

def _features(name, test_images):
    """Arrays of 2 features named like a dataset, with `test_images` test rows."""
    rng = np.random.default_rng(0)
    return kl.data.arrays(rng.random((64, 2), np.float32), np.arange(64) % 10,
                          rng.random((test_images, 2), np.float32),
                          np.arange(test_images) % 10, name=name)


@pytest.mark.parametrize("name, test_images, val_split, expected", [
    ("cifar10", 10_000, None, 2000),  # CIFAR's real test set: the paper's protocol
    ("cifar100", 10_000, None, 2000),
    ("cifar10", 10_000, 0, 0),  # turned off
    ("cifar10", 9_999, None, 0),  # not CIFAR's test set
])
def test_the_paper_validation_split_is_the_default_only_on_cifars_test_set(
        tmp_path, name, test_images, val_split, expected):
    net = keras.Sequential([keras.Input((2,)), keras.layers.Dense(10)])
    run = kl.train(net, dataset=_features(name, test_images), val_split=val_split, seed=0,
                   out=tmp_path / "r", steps=1, batch_size=64, checkpoint_iters=[0, 1],
                   verbose=0)
    assert run.spec.val_split == expected
    (row,) = run.metrics
    assert (row["val_top1"] is None) == (expected == 0)
    assert requests.PAPER_VAL_SPLIT == 2000
    assert requests.CIFAR_TEST_IMAGES == 10_000


def test_no_validation_split_by_default_on_other_data(digits_family):
    parent, child = digits_family
    assert parent.spec.val_split == child.spec.val_split == 0
    assert all(row["val_top1"] is None for row in parent.metrics)


def test_derived_runs_follow_their_parents_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    small = dict(dataset="digits", steps=8, batch_size=32, checkpoint_iters=[0, 4, 8],
                 eval_every=8, verbose=0)
    base = kl.train("lenet300", root="myruns", seed=0, **small)
    assert base.path == pathlib.Path("myruns/lenet300/train-s0")
    child = kl.rewind(base, iteration=4, density=0.5, seed=0, verbose=0)
    assert child.path.resolve() == (tmp_path / "myruns/lenet300/rewind-k4-d50-s0")
    rounds = kl.iterate(child.path, iteration=4, rounds=1, seed=0, verbose=0)
    assert rounds[0].path.resolve().is_relative_to(tmp_path / "myruns/lenet300")
    # A moved tree of runs keeps following (the root is recorded relative).
    (tmp_path / "moved").mkdir()
    (tmp_path / "myruns").rename(tmp_path / "moved" / "myruns")
    moved = kl.Run.open(tmp_path / "moved/myruns/lenet300/train-s0")
    again = kl.rewind(moved, iteration=4, density=0.25, seed=0, verbose=0)
    assert again.path.resolve() == (tmp_path / "moved/myruns/lenet300/rewind-k4-d25-s0")
    assert not (tmp_path / "runs").exists()
