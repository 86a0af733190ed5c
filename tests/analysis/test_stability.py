"""Instability analysis (`kl.stability`, `lottery stability`) and the
`branch` method it trains unpruned copies with, on tiny runs: LeNet-300-100
on the bundled digits, and resnet8 (batch norm) on synthetic data."""

import json
import shutil

import keras
import numpy as np
import pytest
from click.testing import CliRunner

import keras_lottery as kl
from keras_lottery import data as data_lib
from keras_lottery.training import evaluation
from keras_lottery.sparse import pruning
from keras_lottery.analysis import connectivity
from keras_lottery.analysis import instability
from keras_lottery.analysis import interpolation
from keras_lottery.cli import main
from snapshots import snapshot
from snapshots import tensors

T = 40
K = 3  # the paper's 4701, scaled to T = 40
DIGITS = dict(dataset="digits", steps=T, batch_size=32, eval_every=1000)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("stability")


@pytest.fixture(scope="module")
def base(root):
    run = kl.train("lenet300", seed=0, verbose=0, out=root / "lenet300" / "train-s0", **DIGITS)
    assert K in run.checkpoints
    return run


@pytest.fixture(scope="module")
def pruned(base):
    """Two rewind copies at density 0.2 with seeds 1 and 2."""
    return kl.stability(base, iteration=K, density=0.2, seed=1, points=5, verbose=0)


@pytest.fixture(scope="module")
def twins(base):
    """Two unpruned (branch) copies with the same seed."""
    return kl.stability(base, iteration=K, seed=[7, 7], points=5, verbose=0)


def _final_model(run):
    model = run.load_model("final")
    return model, [keras.ops.convert_to_numpy(v) for v in model.weights]


def _test_set(run):
    data = data_lib.load(run.spec.dataset)
    return evaluation.evaluation_sets(data, run.spec.val_split, run.spec.recipe.batch_size)[0]


def test_copies_are_rewind_runs_from_k_with_their_own_seeds(base, pruned):
    assert [c.spec.mode for c in pruned.copies] == ["rewind", "rewind"]
    assert [c.spec.seed for c in pruned.copies] == [1, 2]
    for copy in pruned.copies:
        assert copy.spec.iteration == K and copy.spec.target_density == 0.2
        assert (copy.start_step, copy.end_step) == (K, T) and copy.status == "finished"
    # exactly the run `rewind` makes with that seed
    alone = kl.rewind(base, iteration=K, density=0.2, seed=2, verbose=0,
                      out=base.path.parent / "rewind-alone")
    a, b = tensors(alone.checkpoints["final"]), tensors(pruned.copies[1].checkpoints["final"])
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert pruned.path == base.path.parent / "stability-train-s0-k3-d20-s1"


def test_barrier_recomputed_from_the_saved_checkpoints(pruned):
    model, a = _final_model(pruned.copies[0])
    _, b = _final_model(pruned.copies[1])
    test = _test_set(pruned.copies[0])
    errors = []
    for alpha in pruned.alphas:
        for variable, x, y in zip(model.weights, a, b):
            variable.assign((1 - alpha) * x + alpha * y)
        errors.append(1 - model.evaluate(test, verbose=0, return_dict=True)["top1"])
    assert pruned.alphas == [0.0, 0.25, 0.5, 0.75, 1.0]
    np.testing.assert_allclose(pruned.errors[(0, 1)], errors, atol=1e-6)
    barrier = max(errors) - (errors[0] + errors[-1]) / 2
    assert pruned.barriers[(0, 1)] == pytest.approx(barrier, abs=1e-6)
    stored = json.loads((pruned.path / "stability.json").read_text())
    evaluation_ = stored["evaluations"]["p5-bn-interpolated"]
    assert evaluation_["pairs"]["0-1"]["barrier"] == pruned.barriers[(0, 1)]
    assert evaluation_["bn"] == connectivity.NO_BN and pruned.figure.exists()


def test_path_ends_are_the_copies_own_final_accuracies(pruned, twins):
    for result in (pruned, twins):
        ends = [result.errors[(0, 1)][0], result.errors[(0, 1)][-1]]
        tops = [c.metrics[-1]["top1"] for c in result.copies]
        assert ends == pytest.approx([1 - t for t in tops], abs=1e-7)


def test_two_copies_with_one_seed_have_no_barrier(twins):
    assert [c.spec.mode for c in twins.copies] == ["branch", "branch"]
    assert all(c.spec.target_density is None for c in twins.copies)
    assert twins.barriers[(0, 1)] <= 1e-7
    assert len(set(twins.errors[(0, 1)])) == 1


def test_pruned_weights_stay_exactly_zero_at_every_alpha(pruned):
    model, states = connectivity.load_states(pruned.copies)
    masks = states[0].masks
    assert 0.19 < sum(m.sum() for m in masks.values()) / sum(m.size for m in masks.values()) < 0.21
    for alpha in (0.0, 0.3, 0.5, 0.71, 1.0):
        interpolation.assign_interpolated(model, states[0], states[1], alpha)
        for key, (_, kernel) in pruning.masked_kernels(model).items():
            pruned_at = masks[key] == 0
            assert np.array_equal(keras.ops.convert_to_numpy(kernel.mask), masks[key])
            assert not keras.ops.convert_to_numpy(kernel.raw)[pruned_at].any()
    # a mask that differs is refused rather than interpolated
    other = interpolation.State(states[1].arrays, dict(masks, fc_1=np.ones_like(masks["fc_1"])))
    with pytest.raises(kl.LotteryError, match="masks of a and b differ"):
        interpolation.check_same_masks([states[0], other], ["a", "b"])


def test_branch_is_the_parents_state_at_k_trained_on(base, root):
    # With the parent's own seed it retraces the parent exactly.
    again = kl.branch(base, iteration=K, seed=0, verbose=0, out=root / "branch-same")
    a, b = tensors(base.checkpoints["final"]), tensors(again.checkpoints["final"])
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert again.config["target_density"] is None and again.density == 1.0
    with pytest.raises(TypeError):
        kl.branch(base, iteration=K, density=0.5)


def test_calling_again_returns_the_stored_analysis_and_extends_it(base, pruned, monkeypatch):
    calls = []
    real = connectivity.evaluate_pairs
    monkeypatch.setattr(connectivity, "evaluate_pairs",
                        lambda copies, pairs, *a: calls.append(pairs) or real(copies, pairs, *a))
    again = kl.stability(base, iteration=K, density=0.2, seed=1, points=5, verbose=0)
    assert calls == [] and again.barriers == pruned.barriers
    more = kl.stability(base, iteration=K, density=0.2, seed=1, points=5, copies=3, verbose=0)
    assert calls == [[(0, 2), (1, 2)]]
    assert list(more.barriers) == [(0, 1), (0, 2), (1, 2)]
    assert more.barriers[(0, 1)] == pruned.barriers[(0, 1)]
    assert [c.spec.seed for c in more.copies] == [1, 2, 3]
    # a drawn seed is found again by the same call
    drawn = kl.stability(base, iteration=K, points=2, verbose=0)
    assert kl.stability(base, iteration=K, points=2, verbose=0).path == drawn.path


def test_a_study_is_analysed_run_by_run_skipping_runs_that_cannot_be(
        base, pruned, root, monkeypatch, capsys):
    # A folder of runs, named by a study file: the base is analysed (the
    # analysis already made is found again, nothing trained or evaluated),
    # a run sparser than the density asked is skipped with its reason, and
    # the copies inside analysis folders are not taken for runs of the study.
    sparse = kl.rewind(base, iteration=K, density=0.1, seed=3, verbose=0,
                       out=base.path.parent / "rewind-d10")
    # The first test's run (made again, or found, when this one runs alone).
    equal = kl.rewind(base, iteration=K, density=0.2, seed=2, verbose=0,
                      out=base.path.parent / "rewind-alone")
    study = root / "study.toml"
    study.write_text(f'[study]\nname = "s"\nroot = "{base.path.parent}"\n')
    calls = []
    monkeypatch.setattr(connectivity, "evaluate_pairs", lambda *a: calls.append(a))
    found = kl.stability(study, iteration=K, density=0.2, seed=1, points=5, verbose=1)
    assert calls == []
    assert [r.path for r in found] == [pruned.path]
    assert found[0].barriers == pruned.barriers
    said = capsys.readouterr().out
    assert f"skipping {sparse.path}: its density 10% is not above 20%" in said
    # A run at exactly the density asked can't be pruned to it either.
    assert f"skipping {equal.path}: its density 20% is not above 20%" in said
    done = CliRunner().invoke(main, ["stability", "--from", str(study), "--iter", str(K),
                                     "--density", "20", "--seed", "1", "--points", "5"])
    assert done.exit_code == 0, done.output
    rows = [line.split() for line in done.output.splitlines() if line.startswith(str(base.path))]
    assert [(row[1], row[3]) for row in rows] == [(str(K), "0-1")]
    assert f"skipping {sparse.path}" in done.output
    shutil.rmtree(sparse.path)  # the other tests' folder as it was


def test_reestimated_statistics_are_the_average_batch_moments():
    inputs = keras.Input((3,))
    hidden = keras.layers.Dense(4, name="d")(inputs)
    model = keras.Model(inputs, keras.layers.BatchNormalization(momentum=0.99, name="bn")(hidden))
    rng = np.random.default_rng(0)
    batches = [(rng.normal(size=(8, 3)).astype("float32"), None) for _ in range(5)]
    assert interpolation.reestimate_bn(model, batches) == 1
    dense = model.get_layer("d")
    outs = [keras.ops.convert_to_numpy(dense(x)) for x, _ in batches]
    bn = model.get_layer("bn")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(bn.moving_mean),
                               np.mean([o.mean(0) for o in outs], 0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(bn.moving_variance),
                               np.mean([o.var(0) for o in outs], 0), rtol=1e-5, atol=1e-6)
    assert bn.momentum == 0.99


def test_your_own_model_with_batch_norm_on_your_arrays(root):
    digits = data_lib.load("digits")
    mine = data_lib.arrays(digits.x_train[:512] / 16, digits.y_train[:512],
                           digits.x_test / 16, digits.y_test, name="mine")
    model = keras.Sequential([
        keras.Input((8, 8, 1)), keras.layers.Conv2D(8, 3, name="conv"),
        keras.layers.BatchNormalization(momentum=0.9, name="bn"), keras.layers.ReLU(),
        keras.layers.Flatten(), keras.layers.Dense(10, name="out")])
    base = kl.train(model, dataset=mine, steps=12, batch_size=32, eval_every=1000,
                    seed=0, verbose=0, out=root / "own")
    k = base.config["recipe"]["checkpoint_iters"][1]
    with pytest.raises(kl.LotteryError, match="pass them again as dataset="):
        kl.stability(base, iteration=k, density=0.5, seed=0, points=3, verbose=0)
    assert not list(root.glob("stability-own-*"))

    plain = kl.stability(base, iteration=k, density=0.5, seed=0, points=3,
                         dataset=mine, verbose=0)
    assert plain.bn == "interpolated"
    assert plain.copies[0].spec.model == base.spec.model
    ends = [plain.errors[(0, 1)][0], plain.errors[(0, 1)][-1]]
    assert ends == pytest.approx([1 - c.metrics[-1]["top1"] for c in plain.copies], abs=1e-7)

    reset = kl.stability(base, iteration=k, density=0.5, seed=0, points=3,
                         reset_bn=True, dataset=mine, verbose=0)
    assert [c.path for c in reset.copies] == [c.path for c in plain.copies]
    assert reset.bn.startswith(f"re-estimated at each alpha on {instability.BN_BATCHES} "
                               "training batches of 32 (seed 0)")
    stored = json.loads((plain.path / "stability.json").read_text())["evaluations"]
    assert sorted(stored) == ["p3-bn-interpolated", "p3-bn-reset"]
    assert stored["p3-bn-reset"]["bn"] == reset.bn
    # at alpha 0 the statistics were measured again, so the error moved off
    # the copy's own (its training-time moving averages, momentum 0.9)
    model, states = connectivity.load_states(plain.copies)
    interpolation.assign_interpolated(model, states[0], states[1], 0.0)
    before = keras.ops.convert_to_numpy(model.get_layer("bn").moving_mean)
    stream = data_lib.TrainBatches(mine.x_train, mine.y_train, 32, seed=0, num_steps=16,
                                   augment=mine.augment, normalize=mine.normalize)
    batches = [stream[i] for i in range(16)]
    interpolation.reestimate_bn(model, batches)
    after = keras.ops.convert_to_numpy(model.get_layer("bn").moving_mean)
    assert not np.allclose(before, after)
    test = _test_set_of(mine, base)
    error = 1 - model.evaluate(test, verbose=0, return_dict=True)["top1"]
    assert reset.errors[(0, 1)][0] == pytest.approx(error, abs=1e-7)


def _test_set_of(data, run):
    return evaluation.evaluation_sets(data, run.spec.val_split, run.spec.recipe.batch_size)[0]


def test_cli_several_iterations_one_curve_each(base, pruned, tmp_path):
    figure = tmp_path / "curves.png"
    done = CliRunner().invoke(main, [
        "stability", "--from", str(base.path), "--iter", str(K), "--iter", "7",
        "--density", "20", "--seed", "1", "--points", "5", "-q", "-o", str(figure)])
    assert done.exit_code == 0, done.output
    assert "barrier" in done.output and figure.exists()
    table = [line.split() for line in done.output.splitlines() if line.startswith(str(base.path))]
    assert [(row[1], row[3]) for row in table] == [(str(K), "0-1"), ("7", "0-1")]
    assert float(table[0][7]) == pytest.approx(pruned.barriers[(0, 1)], abs=1e-4)
    assert (base.path.parent / "stability-train-s0-k7-d20-s1" / "stability.json").exists()


@pytest.mark.parametrize("args, message", [
    (["--iter", "5"], "Error: --iter 5: is not a checkpoint of"),
    (["--iter", str(K), "--iter", "5"], "Error: --iter 5: is not a checkpoint of"),
    (["--iter", str(K), "--copies", "1"], "Error: --copies 1: expected an integer >= 2"),
    (["--iter", str(K), "--points", "1"], "Error: --points 1: expected an integer >= 2"),
    (["--iter", str(K), "--density", "50", "--from", "COPY"],
     "Error: --density 50: is above the density of"),
    (["--iter", str(K), "-o", "curves.txt"], "Error: --output curves.txt: cannot save a figure"),
])
def test_cli_bad_input_is_one_error_line_and_writes_nothing(base, pruned, root, args, message):
    copy = str(pruned.copies[0].path)  # a rewind run at 20 %, saved at k
    args = [copy if a == "COPY" else a for a in args]
    if "--from" not in args:
        args = ["--from", str(base.path)] + args
    before = snapshot(root)
    done = CliRunner().invoke(main, ["stability", "--seed", "11"] + args)
    assert isinstance(done.exception, SystemExit) and done.exit_code == 1, done.output
    errors = [line for line in done.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and errors[0].startswith(message), done.output
    assert "Traceback" not in done.output
    assert snapshot(root) == before


def test_cli_branch_takes_no_density_and_iterate_no_branch():
    done = CliRunner().invoke(main, ["branch", "--iter", "3", "--density", "50"])
    assert done.exit_code == 2 and "No such option '--density'" in done.output
    done = CliRunner().invoke(main, ["iterate", "--method", "branch", "--iter", "3",
                                     "--rounds", "2"])
    assert done.exit_code == 2 and "unknown method; choose one of: rewind, rewind-lr" in done.output
    reset = next(p for p in main.commands["stability"].params if p.name == "reset_bn")
    assert f"on {instability.BN_BATCHES} fixed training batches" in reset.help
