"""Runs that prune report layer collapse and take `min_per_layer`."""

import json
import warnings

import keras
import pytest
from click.testing import CliRunner

import keras_lottery as kl
from keras_lottery.cli import main

SMALL = dict(dataset="digits", steps=4, batch_size=32, eval_every=4,
             checkpoint_iters=[0, 1, 4], verbose=0)


@pytest.fixture(scope="module")
def parent(tmp_path_factory):
    """A run whose "thin" layer starts at a ten-thousandth of the others'
    scale: global magnitude pruning takes all of it first."""
    model = keras.Sequential([
        keras.Input((8, 8, 1)), keras.layers.Flatten(),
        keras.layers.Dense(32, activation="relu", name="wide"),
        keras.layers.Dense(8, activation="relu", name="thin",
                           kernel_initializer=keras.initializers.RandomNormal(stddev=1e-5)),
        keras.layers.Dense(10, name="head")])
    return kl.train(model, seed=0, out=tmp_path_factory.mktemp("collapse") / "train",
                    **SMALL)


def _rewind(parent, out, density=0.2, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = kl.rewind(parent, iteration=1, density=density, seed=1, out=out, verbose=0,
                        **kwargs)
    return run, [str(w.message) for w in caught if "no weight" in str(w.message)]


def test_a_rewind_that_collapses_a_layer_says_so(parent, tmp_path):
    run, found = _rewind(parent, tmp_path / "rewind")
    assert found == ["pruning to density 0.2 left 1 kernel(s) with no weight (thin); "
                     "their layers output only their bias: keep some with "
                     "min_per_layer=1 (or more)"]
    assert not kl.get_masks(run.load_model())["thin"].any()
    assert "min_per_layer" not in json.loads((run.path / "run.json").read_text())


def test_min_per_layer_keeps_every_layer_and_is_recorded(parent, tmp_path):
    run, found = _rewind(parent, tmp_path / "kept", min_per_layer=3)
    assert found == []
    masks = kl.get_masks(run.load_model())
    assert masks["thin"].sum() == 3
    total = sum(m.size for m in masks.values())
    assert sum(int(m.sum()) for m in masks.values()) == round(0.2 * total)
    assert run.spec.min_per_layer == 3
    assert json.loads((run.path / "run.json").read_text())["min_per_layer"] == 3
    # Its children inherit it, as they do scope and exclude.
    child, found = _rewind(run, tmp_path / "child", density=0.1)
    assert child.spec.min_per_layer == 3 and found == []


def test_the_command_line_takes_min_per_layer_and_warns_in_one_line(parent, tmp_path):
    args = ["rewind", "--from", str(parent.path), "--iter", "1", "--density", "20",
            "--seed", "1", "-q"]
    result = CliRunner().invoke(main, args + ["--out", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    (line,) = [r for r in result.output.splitlines() if "no weight" in r]
    assert line.startswith("Warning: pruning to density 0.2 left 1 kernel(s)")
    result = CliRunner().invoke(main, args + ["--out", str(tmp_path / "b"),
                                              "--min-per-layer", "2"])
    assert result.exit_code == 0, result.output
    assert "no weight" not in result.output
    assert kl.Run.open(tmp_path / "b").spec.min_per_layer == 2


def test_lottery_masks_marks_the_collapsed_kernels(parent, tmp_path):
    collapsed, _ = _rewind(parent, tmp_path / "collapsed")
    kept, _ = _rewind(parent, tmp_path / "kept", min_per_layer=1)
    result = CliRunner().invoke(main, ["masks", str(collapsed.path), str(kept.path),
                                       "--per-layer"])
    assert result.exit_code == 0, result.output
    (line,) = [r for r in result.output.splitlines() if r.startswith("Warning:")]
    assert line == (f"Warning: {collapsed.path}: 1 kernel(s) with no weight (thin); "
                    "their layers output only their bias")
    assert kl.analysis.layer_densities([collapsed])[0].collapsed == ["thin"]


def test_iterate_gives_min_per_layer_to_every_round(parent, tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        (round_1,) = kl.iterate(parent, iteration=1, rounds=1, rate=0.2, min_per_layer=2,
                                seed=1, out=tmp_path / "chain", verbose=0)
    assert not [w for w in caught if "no weight" in str(w.message)]
    assert round_1.spec.min_per_layer == 2
    assert kl.get_masks(round_1.load_model())["thin"].sum() == 2
