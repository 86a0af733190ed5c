"""Any Keras optimizer and learning-rate schedule: held in a recipe as its
config, stored in run.json, rebuilt by every derived run, whose rewind
restores its slots at k and replays its schedule; what a rewind could not
rebuild is refused in one line."""

import json

import keras
import numpy as np
import pytest
from backend_script import LRs

import keras_lottery as kl
from keras_lottery.errors import LotteryError
from keras_lottery.spec import recipe as recipe_lib
from keras_lottery.spec.optimizer_config import OptimizerConfig
from keras_lottery.training import keras_optimizers

SMALL = dict(dataset="digits", steps=12, batch_size=32, eval_every=1,
             checkpoint_iters=[0, 3, 12], verbose=0)
K = 3


def _adamw():
    return keras.optimizers.AdamW(keras.optimizers.schedules.CosineDecay(1e-2, 12),
                                  weight_decay=0.01)


def _cosine(step):
    """CosineDecay(1e-2, 12) in numpy: the LR of the update at `step`."""
    return np.float32(1e-2 * 0.5 * (1 + np.cos(np.pi * min(step, 12) / 12)))


@keras.saving.register_keras_serializable(package="tests")
class Halving(keras.optimizers.schedules.LearningRateSchedule):
    """A schedule of one's own: halves the LR every `every` steps."""

    def __init__(self, lr, every):
        self.lr, self.every = lr, every

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        return self.lr * keras.ops.power(0.5, keras.ops.floor(step / self.every))

    def get_config(self):
        return {"lr": self.lr, "every": self.every}


class Counting(keras.optimizers.schedules.LearningRateSchedule):
    """Not a function of the iteration: each call lowers the LR."""

    calls = 0

    def __call__(self, step):
        Counting.calls += 1
        return 0.1 / Counting.calls

    def get_config(self):
        return {}


keras.saving.register_keras_serializable(package="tests")(Counting)


class Unregistered(keras.optimizers.SGD):
    pass


class Forgetful(keras.optimizers.SGD):
    """Ignores the momentum its config gives it."""

    def __init__(self, learning_rate=0.01, momentum=0.0, **kwargs):
        super().__init__(learning_rate, **kwargs)


keras.saving.register_keras_serializable(package="tests")(Forgetful)


def _slots(model):
    """The optimizer's slot variables by name (the counter left out)."""
    return {v.name: keras.ops.convert_to_numpy(v) for v in model.optimizer.variables
            if len(v.shape) > 0}


@pytest.fixture(scope="module")
def adamw_parent(tmp_path_factory):
    root = tmp_path_factory.mktemp("adamw")
    return kl.train("lenet300", seed=0, out=root / "train", optimizer=_adamw(), **SMALL)


def test_a_recipe_holds_a_keras_optimizers_config(tmp_path):
    config = {"class_name": "AdamW", "config": {"learning_rate": 1e-3, "weight_decay": 0.05}}
    recipe = recipe_lib.make(steps=500, optimizer=config)
    assert recipe.keras_optimizer and recipe.optimizer_name == "AdamW"
    assert recipe.lr_drops == () and hash(recipe) == hash(recipe_lib.make(steps=500,
                                                                          optimizer=config))
    written = recipe.to_dict()
    assert written["optimizer"] == config and "lr" not in written and "lr_drops" not in written
    assert recipe_lib.Recipe.from_dict(json.loads(json.dumps(written))) == recipe
    # A recipe file names it as a table (the schedule a table within).
    path = tmp_path / "adamw.toml"
    path.write_text('steps = 500\n[optimizer]\nclass_name = "AdamW"\n'
                    '[optimizer.config]\nweight_decay = 0.05\n'
                    '[optimizer.config.learning_rate]\nclass_name = "CosineDecay"\n'
                    'config = {initial_learning_rate = 1e-3, decay_steps = 500}\n')
    from_file = recipe_lib.make(path)
    assert from_file.optimizer.to_dict()["config"]["learning_rate"]["class_name"] == "CosineDecay"
    lr = keras_optimizers.lr_function(keras_optimizers.canonical(from_file))
    assert lr(0) == pytest.approx(1e-3) and lr(250) == pytest.approx(5e-4)


def test_built_in_fields_beside_a_keras_optimizer_are_refused():
    with pytest.raises(LotteryError, match=r"^lr=0\.1: is a field of the built-in "
                       "optimizers; a Keras optimizer's config holds its own"):
        recipe_lib.make(steps=500, lr=0.1, optimizer={"class_name": "Adam"})
    # The preset's LR scaling with the batch size leaves the Keras config alone.
    recipe = recipe_lib.make(steps=500, batch_size=64, optimizer={"class_name": "SGD"})
    assert recipe.keras_optimizer


def test_a_partial_config_and_the_optimizer_make_the_same_run():
    given = recipe_lib.make(steps=12, optimizer=_adamw())
    partial = recipe_lib.make(steps=12, optimizer={
        "class_name": "AdamW", "config": {"weight_decay": 0.01, "learning_rate": {
            "class_name": "CosineDecay",
            "config": {"initial_learning_rate": 1e-2, "decay_steps": 12}}}})
    assert given != partial  # as given
    assert keras_optimizers.canonical(given) == keras_optimizers.canonical(partial)
    float_lr = keras_optimizers.canonical(recipe_lib.make(
        steps=12, optimizer=keras.optimizers.Adam(1e-3)))
    assert float_lr.optimizer.to_dict()["config"]["learning_rate"] == 0.001
    # Driven by a schedule object: no learning_rate variable, like every run.
    optimizer = keras_optimizers.build(float_lr.optimizer,
                                       keras_optimizers.schedule(float_lr.optimizer))
    # (named: an unnamed variable's name counts the variables made before it)
    optimizer.build([keras.Variable(np.zeros(3), name="w")])
    assert [v.name for v in optimizer.variables] == ["iteration", "w_momentum",
                                                     "w_velocity"]


REFUSED = {
    "a loss-scale wrapper": (lambda: keras.optimizers.LossScaleOptimizer(
        keras.optimizers.SGD()), "give the optimizer it wraps"),
    "a callable LR": (lambda: keras.optimizers.SGD(lambda: 0.1), "a callable is not"),
    "an unregistered class": (lambda: Unregistered(0.1), "Keras cannot rebuild it from"),
    "a config that loses an argument": (lambda: {"class_name": "tests>Forgetful", "config": {
        "momentum": 0.9}}, r"does not give it back \(momentum 0\.9 != 0\.0\)"),
    "a schedule not a function of the iteration": (
        lambda: keras.optimizers.SGD(Counting()), "is not a function of the iteration"),
    "gradient accumulation": (lambda: keras.optimizers.SGD(
        0.1, gradient_accumulation_steps=2), "use a larger batch_size"),
    "an unknown schedule": (lambda: {"class_name": "SGD", "config": {"learning_rate": {
        "class_name": "NoSuchDecay", "config": {}}}}, "schedule cannot be rebuilt"),
}


@pytest.mark.parametrize("name", list(REFUSED))
def test_optimizers_a_rewind_could_not_rebuild_are_refused_in_one_line(name, tmp_path):
    make, message = REFUSED[name]
    with pytest.raises(LotteryError, match=message) as caught:
        kl.train("lenet300", optimizer=make(), out=tmp_path / "run", **SMALL)
    assert caught.value.param == "optimizer" and "\n" not in str(caught.value)
    assert not (tmp_path / "run").exists()


def test_a_rewind_restores_adamws_moments_and_replays_cosine_decay_from_k(adamw_parent,
                                                                        tmp_path):
    parent = adamw_parent
    stored = parent.config["recipe"]["optimizer"]
    assert stored["class_name"] == "AdamW"
    assert stored["config"]["learning_rate"]["class_name"] == "CosineDecay"
    assert [m["lr"] for m in parent.metrics] == [
        pytest.approx(float(_cosine(g)), rel=1e-5) for g in range(12)]
    # Weight rewinding restores the state at k, LR rewinding the final one.
    sources = {kl.rewind: _slots(parent.load_model(K)),
               kl.rewind_lr: _slots(parent.load_model())}
    for procedure, at_k in sources.items():
        assert any((v != 0).any() for v in at_k.values())
        lrs = LRs()
        child = procedure(parent, iteration=K, density=0.5, seed=1, callbacks=[lrs],
                          out=tmp_path / procedure.__name__, verbose=0)
        assert child.spec.recipe == parent.spec.recipe
        start = child.load_model(K)
        masks = kl.get_masks(start)
        restored = _slots(start)
        assert restored.keys() == at_k.keys()
        for name, value in restored.items():
            layer = name.split("_kernel_")[0]
            if "_kernel_" in name and layer in masks:  # moments of a pruned kernel
                np.testing.assert_array_equal(value, at_k[name] * masks[layer])
            else:
                np.testing.assert_array_equal(value, at_k[name])
        # The schedule replays from k: what the optimizer applied, what was logged.
        assert [g for g, _ in lrs.seen] == list(range(K, 12))
        for g, lr in lrs.seen:
            assert lr == pytest.approx(float(_cosine(g)), rel=1e-5), g
        assert [m["step"] for m in child.metrics] == list(range(K + 1, 13))
        assert [m["lr"] for m in child.metrics] == [
            pytest.approx(float(_cosine(g)), rel=1e-5) for g in range(K, 12)]


def test_finetuning_a_keras_optimizers_run_takes_its_schedules_last_lr(adamw_parent,
                                                                       tmp_path):
    parent = adamw_parent
    child = kl.finetune(parent, iteration=K, density=0.5, seed=1, out=tmp_path / "ft",
                        verbose=0)
    assert child.spec.lr == pytest.approx(float(_cosine(11)), rel=1e-5)  # its last update's
    assert [m["lr"] for m in child.metrics] == [pytest.approx(child.spec.lr)] * (12 - K)
    given = kl.finetune(parent, iteration=K, density=0.5, seed=1, lr=1e-4,
                        out=tmp_path / "ft-lr", verbose=0)
    assert [m["lr"] for m in given.metrics] == [1e-4] * (12 - K)
    # The constant LR leaves the optimizer's variables as they were.
    assert _slots(given.load_model()).keys() == _slots(parent.load_model()).keys()


def test_a_schedule_of_ones_own_drives_lion_and_is_replayed(tmp_path):
    optimizer = keras.optimizers.Lion(Halving(1e-3, 4))
    parent = kl.train("lenet300", seed=0, out=tmp_path / "train", optimizer=optimizer,
                      **SMALL)
    assert parent.config["recipe"]["optimizer"]["config"]["learning_rate"][
        "registered_name"] == "tests>Halving"
    child = kl.rewind_lr(parent, iteration=K, density=0.5, seed=1, out=tmp_path / "lr",
                         verbose=0)
    assert [m["lr"] for m in child.metrics] == [
        pytest.approx(1e-3 * 0.5 ** (g // 4)) for g in range(K, 12)]


def test_a_built_in_name_picks_the_recipes_optimizer(tmp_path):
    run = kl.train("lenet300", seed=0, out=tmp_path / "adam", optimizer="adam", **SMALL)
    assert run.spec.recipe.optimizer == "adam"
    assert run.record.backend == keras.backend.backend()


def test_an_optimizer_config_is_refused_where_it_is_not_one():
    with pytest.raises(LotteryError, match="expected a built-in name, a Keras optimizer"):
        OptimizerConfig.of(42)
    with pytest.raises(LotteryError, match="expected a Keras optimizer config"):
        OptimizerConfig.of({"name": "adam"})
