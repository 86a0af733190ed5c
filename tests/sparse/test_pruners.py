"""The pruning seam: a pruner registered from Python, or named as
package.module:function, drives rewind and iterate (Python and the command
line) and is recorded; what any pruner returns is checked, with one clear
error for each way it can be wrong."""

import json
import textwrap

import keras
import numpy as np
import pytest
from click.testing import CliRunner

import keras_lottery as kl
from keras_lottery.cli import main
from keras_lottery import procedures
from keras_lottery.errors import LotteryError
from keras_lottery.runs import layout
from keras_lottery.sparse import pruners
from keras_lottery.sparse.ranking import magnitude_masks
from keras_lottery.spec.requests import DeriveRequest
from snapshots import snapshot

SMALL = dict(dataset="digits", steps=16, batch_size=32, checkpoint_iters=[0, 4, 16],
             eval_every=16)
# A criterion of a researcher's own, the reverse of magnitude: it keeps the
# smallest weights (what the paper's magnitude pruning removes first).
CRITERION = '''
import numpy as np
import keras_lottery as kl


def smallest(model, density, *, exclude=()):
    masks, kernels = kl.get_masks(model), kl.get_kernels(model)
    ranked = [k for k in masks if k not in exclude]
    scores = {k: np.where(masks[k] > 0, 1.0 / (np.abs(kernels[k]) + 1e-12), 0.0)
              for k in ranked}
    return kl.magnitude_masks(scores, {k: masks[k] for k in ranked}, density)
'''


def smallest(model, density, *, exclude=()):
    namespace = {}
    exec(CRITERION, namespace)
    return namespace["smallest"](model, density, exclude=exclude)


@pytest.fixture(scope="module")
def parent(tmp_path_factory):
    return kl.train("lenet300", out=tmp_path_factory.mktemp("pruners") / "train", seed=0,
                    verbose=0, **SMALL)


@pytest.fixture(scope="module")
def registered():
    kl.register_pruner("smallest", smallest)
    return "smallest"


def _masks(run, iteration):
    return kl.get_masks(run.load_model(iteration))


def _expected(parent, density):
    """The criterion applied by hand to the parent's final state."""
    model = parent.load_model("final")
    return smallest(model, density)


def test_a_registered_pruner_drives_rewind_and_is_recorded(parent, registered, tmp_path):
    run = kl.rewind(parent, iteration=4, density=0.5, pruner=registered, seed=1,
                    out=tmp_path / "rewind", verbose=0)
    assert run.spec.pruner == "smallest"
    assert json.loads((run.path / layout.RUN_JSON).read_text())["pruner"] == "smallest"
    got, want = _masks(run, 4), _expected(parent, 0.5)
    assert all(np.array_equal(got[k], want[k]) for k in want)
    # It is not magnitude pruning: the paper's criterion keeps other weights.
    magnitude = kl.rewind(parent, iteration=4, density=0.5, seed=1,
                          out=tmp_path / "magnitude", verbose=0)
    assert magnitude.spec.pruner == "magnitude"
    assert not np.array_equal(_masks(magnitude, 4)["fc_1"], got["fc_1"])


def test_a_registered_pruner_drives_iterate(parent, registered, tmp_path):
    rounds = kl.iterate(parent, method="rewind", iteration=4, rounds=2, pruner=registered,
                        seed=1, out=tmp_path / "chain", verbose=0)
    assert [r.spec.pruner for r in rounds] == ["smallest", "smallest"]
    first, second = (_masks(r, "final") for r in rounds)
    assert all(np.array_equal(first[k], _expected(parent, 0.8)[k]) for k in first)
    for key in first:  # masks nest: round 2 prunes inside round 1
        assert not np.any((second[key] > 0) & (first[key] == 0))
    assert rounds[1].density == pytest.approx(0.64, abs=1e-4)


def test_a_module_function_pruner_on_the_command_line(parent, tmp_path, monkeypatch):
    (tmp_path / "mycriteria.py").write_text(textwrap.dedent(CRITERION))
    monkeypatch.chdir(tmp_path)  # importable from here, without PYTHONPATH
    monkeypatch.delenv("PYTHONPATH", raising=False)
    result = CliRunner().invoke(main, [
        "rewind", "--from", str(parent.path), "--iter", "4", "--density", "50",
        "--pruner", "mycriteria:smallest", "--seed", "1", "--out", "cli-rewind", "-q"])
    assert result.exit_code == 0, result.output
    run = kl.Run.open(tmp_path / "cli-rewind")
    assert run.spec.pruner == "mycriteria:smallest"
    got, want = _masks(run, 4), _expected(parent, 0.5)
    assert all(np.array_equal(got[k], want[k]) for k in want)
    result = CliRunner().invoke(main, [
        "iterate", "--from", str(parent.path), "--iter", "4", "--rounds", "2",
        "--pruner", "mycriteria:smallest", "--seed", "1", "--out", "cli-chain", "-q"])
    assert result.exit_code == 0, result.output
    last = kl.Run.open(tmp_path / "cli-chain" / "round-2")
    assert last.spec.pruner == "mycriteria:smallest"
    assert last.density == pytest.approx(0.64, abs=1e-4)


def _tiny():
    keras.utils.set_random_seed(0)
    model = kl.masked(keras.Sequential([keras.Input((6,)), keras.layers.Dense(5, name="a"),
                                        keras.layers.Dense(3, name="b")]))
    kl.prune(model, 0.5)  # some weights already pruned
    return model


def _returning(value):
    return lambda model, density: value(kl.get_masks(model))


def _revive(masks):
    masks["a"] = np.ones_like(masks["a"])
    return masks


def _prune_one(masks):
    masks["a"].flat[np.flatnonzero(masks["a"])[0]] = 0
    return masks


BAD = [
    ("not a dict", _returning(lambda m: list(m.values())), "are a list, not {mask key"),
    ("unknown key", _returning(lambda m: {"c": m["a"]}), "name 'c', which is no masked kernel"),
    ("wrong shape", _returning(lambda m: {"a": m["a"].T}), "give 'a' the shape (5, 6)"),
    ("not 0/1", _returning(lambda m: {"a": m["a"] * 0.5}), "hold values other than 0 and 1"),
    ("revives", _returning(_revive), "revive pruned weights of 'a'"),
    ("keeps too many", _returning(_prune_one), "keep 21 weights where density 0.1 asks for 4"),
]


@pytest.mark.parametrize("case, function, fragment", BAD, ids=[c[0] for c in BAD])
def test_what_a_pruner_returns_is_checked(case, function, fragment):
    with pytest.raises(LotteryError) as error:
        pruners.new_masks(_tiny(), 0.1, pruner=function)
    assert fragment in str(error.value), str(error.value)
    assert "\n" not in str(error.value)


def test_exclusions_are_the_seams_not_the_pruners():
    model = _tiny()

    def ignores_exclude(model, density, **options):
        return {k: np.zeros_like(m) for k, m in kl.get_masks(model).items()}

    with pytest.raises(LotteryError, match="change 'b', which is excluded"):
        pruners.new_masks(model, 0.1, pruner=ignores_exclude, exclude=["b"])
    with pytest.raises(LotteryError, match=r"pruner=.*takes no exclude="):
        pruners.new_masks(model, 0.1, pruner=lambda model, density: {}, exclude=["b"])
    with pytest.raises(LotteryError, match="takes no scope="):
        pruners.new_masks(model, 0.1, pruner=lambda model, density: {}, scope="layerwise")
    # The seed is offered, never imposed; a pruner's own options reach it.
    seen = {}

    def own(model, density, *, strength):
        seen["strength"] = strength
        return {}

    assert pruners.new_masks(model, 0.1, pruner=own, seed=3, strength=2.0) == {}
    assert seen == {"strength": 2.0}


def test_the_built_in_pruners_are_the_papers():
    model = _tiny()
    masks, kernels = kl.get_masks(model), kl.get_kernels(model)
    assert pruners.available()[:2] == ["magnitude", "random"]
    magnitude = pruners.new_masks(model, 0.25)
    want = magnitude_masks(kernels, masks, 0.25)
    assert all(np.array_equal(magnitude[k], want[k]) for k in want)
    random = pruners.new_masks(model, 0.25, pruner="random", seed=4)
    want = kl.random_masks(masks, 0.25, seed=4)
    assert all(np.array_equal(random[k], want[k]) for k in want)


def test_naming_a_pruner_wrongly_is_one_line(parent, tmp_path):
    with pytest.raises(LotteryError, match="pruner='nope': is not a registered pruner"):
        pruners.get("nope")
    with pytest.raises(LotteryError, match="name='magnitude': is a built-in pruner"):
        kl.register_pruner("magnitude", smallest)
    with pytest.raises(LotteryError, match="name='a:b': expected a name without ':'"):
        kl.register_pruner("a:b", smallest)
    with pytest.raises(TypeError, match="pruner"):  # the control takes none
        kl.random_prune(parent, iteration=4, density=0.5, pruner="magnitude")
    asked = DeriveRequest(method="random", parent=parent.path, iteration=4, density=0.5,
                          pruner="magnitude", out=tmp_path / "r")
    with pytest.raises(LotteryError, match="random prunes with its own pruner"):
        procedures.execute(asked, verbose=0)
    before = snapshot(tmp_path)
    result = CliRunner().invoke(main, [
        "rewind", "--from", str(parent.path), "--iter", "4", "--density", "50",
        "--pruner", "nosuchmodule:f", "--out", str(tmp_path / "x"), "-q"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: --pruner nosuchmodule:f: cannot import it")
    assert len(result.output.strip().splitlines()) == 1
    assert snapshot(tmp_path) == before  # nothing written


def test_a_bad_pruner_in_a_run_leaves_no_run_directory(parent, tmp_path):
    kl.register_pruner("broken", lambda model, density: {"fc_1": np.full((64, 300), 2.0)})
    with pytest.raises(LotteryError, match="pruner='broken': returned masks that"):
        kl.rewind(parent, iteration=4, density=0.5, pruner="broken", verbose=0,
                  out=tmp_path / "bad")
    assert not (tmp_path / "bad").exists()
