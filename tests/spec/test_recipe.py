import json

import keras
import numpy as np
import pytest

from keras_lottery.spec import recipe
from keras_lottery.errors import LotteryError
from keras_lottery.training.compile import optimizer_for
from keras_lottery.training.compile import schedule_for

# The paper's numbers, written out here (SPEC §3, §4.1) rather than read from
# the module under test.
T0 = 71108
BOUNDARIES = (35546, 53125)
VALUES = (0.1, 0.01, 0.001)
CHECKPOINTS = (0, 4701, 12514, 20326, 28139, 35951, 43764, 51576, 59389, 67201, 71108)
EVAL = 10000


def _scaled(c, steps):
    return min(max(round(c * steps / T0), 0), steps)


def _expected(steps):
    iters = []
    for c in CHECKPOINTS:
        s = _scaled(c, steps)
        if s not in iters:
            iters.append(s)
    return {
        "steps": steps,
        "boundaries": tuple(_scaled(b, steps) for b in BOUNDARIES),
        "checkpoint_iters": tuple(iters),
        "eval_every": max(1, round(EVAL * steps / T0)),
    }


def _lr(schedule, step):
    return float(keras.ops.convert_to_numpy(schedule(step)))


def test_default_recipe_is_the_paper():
    r = recipe.make()
    assert r.steps == 71108
    assert r.batch_size == 128
    assert tuple(r.lr_drops) == (35546, 53125)
    assert tuple(r.lr_values) == (0.1, 0.01, 0.001)
    assert tuple(r.checkpoint_iters) == CHECKPOINTS
    assert r.eval_every == 10000
    assert r.momentum == 0.9
    assert (r.optimizer, r.gamma, r.warmup_steps, r.weight_decay) == ("momentum", 0.1, 0, None)
    assert recipe.make() == recipe.Recipe() and r.preset == "renda2020"


@pytest.mark.parametrize(
    "step, lr",
    [(0, 0.1), (1, 0.1), (35546, 0.1), (35547, 0.01), (53125, 0.01),
     (53126, 0.001), (71108, 0.001)],
)
def test_schedule_is_piecewise_constant_on_previous_step(step, lr):
    r = recipe.Recipe()
    schedule = schedule_for(r)
    assert isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule)
    assert _lr(schedule, step) == pytest.approx(lr, rel=1e-6)
    assert r.lr_at(step) == pytest.approx(lr, rel=1e-12)


def test_optimizer_uses_lr_of_iteration_before_update():
    # The update made at iteration g uses lr(g): with boundary 1, the first two
    # updates (g = 0, 1) use 0.1 and the third (g = 2) uses 0.01.
    import keras_lottery as kl

    r = recipe.Recipe(steps=4, lr_drops=(1, 3), lr=0.1, gamma=0.1,
                      checkpoint_iters=(0, 4))
    opt = kl.MomentumSGD(schedule_for(r), momentum=0.0)
    var = keras.Variable(np.zeros(1, "float32"))
    seen = []
    for _ in range(4):
        before = float(keras.ops.convert_to_numpy(var)[0])
        opt.apply_gradients([(keras.ops.ones((1,)), var)])
        seen.append(before - float(keras.ops.convert_to_numpy(var)[0]))
    np.testing.assert_allclose(seen, [0.1, 0.1, 0.01, 0.01], rtol=1e-5)
    assert [r.lr_at(g) for g in range(4)] == [0.1, 0.1, 0.01, 0.01]


@pytest.mark.parametrize("steps", [1000, 100, 500, 3])
def test_scaling_to_shorter_runs(steps):
    r = recipe.make(steps=steps)
    want = _expected(steps)
    assert r.steps == steps
    assert tuple(r.lr_drops) == want["boundaries"]
    assert tuple(r.checkpoint_iters) == want["checkpoint_iters"]
    assert r.eval_every == want["eval_every"]
    assert tuple(r.lr_values) == pytest.approx(VALUES)
    assert r.batch_size == 128
    iters = list(r.checkpoint_iters)
    assert iters == sorted(set(iters))
    assert iters[0] == 0 and iters[-1] == steps


def test_scaling_known_values():
    # Hand-checked: 35546*1000/71108 = 499.9, 53125*1000/71108 = 747.1,
    # 10000*1000/71108 = 140.6; 4701*1000/71108 = 66.1.
    r = recipe.make(steps=1000)
    assert tuple(r.lr_drops) == (500, 747)
    assert r.eval_every == 141
    assert tuple(r.checkpoint_iters)[:3] == (0, 66, 176)
    assert recipe.make(steps=100).eval_every == 14


def test_tiny_run_drops_duplicate_checkpoints_and_keeps_eval_positive():
    r = recipe.make(steps=3)
    assert tuple(r.checkpoint_iters) == (0, 1, 2, 3)
    assert r.eval_every == 1
    assert tuple(r.lr_drops) == (1, 2)
    assert r.eval_steps(0, 3) == [1, 2, 3]


@pytest.mark.parametrize("epochs, batch", [(2, 128), (1, 256), (0.5, 100)])
def test_epochs_set_steps(epochs, batch):
    r = recipe.make(epochs=epochs, batch_size=batch)
    assert r.steps == round(epochs * 50000 / batch)
    assert r.batch_size == batch
    assert tuple(r.checkpoint_iters) == _expected(r.steps)["checkpoint_iters"]


def test_epochs_known_value():
    assert recipe.make(epochs=2).steps == 781  # 100000 / 128 = 781.25


def test_batch_size_scales_learning_rates():
    r = recipe.make(batch_size=256)
    assert tuple(r.lr_values) == pytest.approx((0.2, 0.02, 0.002), rel=1e-12)
    assert r.steps == 71108
    assert tuple(r.lr_drops) == BOUNDARIES
    assert _lr(schedule_for(r), 0) == pytest.approx(0.2, rel=1e-6)
    assert _lr(schedule_for(r), 35547) == pytest.approx(0.02, rel=1e-6)
    assert _lr(schedule_for(r), 53126) == pytest.approx(0.002, rel=1e-6)
    assert tuple(recipe.make(batch_size=64).lr_values) == pytest.approx(
        (0.05, 0.005, 0.0005), rel=1e-12
    )


def test_explicit_checkpoints_and_eval_every_override():
    r = recipe.make(steps=100, checkpoint_iters=[0, 7, 100], eval_every=30)
    assert tuple(r.checkpoint_iters) == (0, 7, 100)
    assert r.eval_every == 30
    assert tuple(r.lr_drops) == _expected(100)["boundaries"]
    assert r.eval_steps(0, 100) == [30, 60, 90, 100]


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(steps=100, epochs=1), "epochs"),
        (dict(steps=0), "steps"),
        (dict(steps=-5), "steps"),
        (dict(batch_size=0), "batch"),
        (dict(batch_size=-128), "batch"),
        (dict(steps=100, checkpoint_iters=[0, 50, 20]), "sorted"),
        (dict(steps=100, checkpoint_iters=[0, 20, 20]), "unique"),
        (dict(steps=100, checkpoint_iters=[0, 101]), "101"),
        (dict(steps=100, checkpoint_iters=[-1, 5]), "-1"),
        (dict(steps=100, eval_every=0), "eval"),
        (dict(steps=100, eval_every=-3), "eval"),
        (dict(epochs=0), "epochs"),
    ],
)
def test_invalid_arguments(kwargs, words):
    with pytest.raises(ValueError) as info:
        recipe.make(**kwargs)
    message = str(info.value)
    assert message and "\n" not in message
    assert words in message


def test_eval_steps_base_run():
    r = recipe.Recipe()
    assert r.eval_steps(0, 71108) == [10000, 20000, 30000, 40000, 50000, 60000, 70000, 71108]


def test_eval_steps_rewind_from_4701():
    r = recipe.Recipe()
    want = [14701, 24701, 34701, 44701, 54701, 64701, 71108]
    assert r.eval_steps(4701, 71108) == want


def test_eval_steps_finetune():
    r = recipe.Recipe()
    got = r.eval_steps(71108, 137515)
    assert got == [81108, 91108, 101108, 111108, 121108, 131108, 137515]
    assert 71108 not in got


def test_eval_steps_exact_multiple_and_empty():
    r = recipe.Recipe(eval_every=5)
    assert r.eval_steps(0, 10) == [5, 10]  # the end is not listed twice
    assert r.eval_steps(10, 10) == []
    assert 0 not in r.eval_steps(0, 3)


def test_dict_round_trip():
    r = recipe.make(steps=1000, batch_size=64, checkpoint_iters=[0, 10, 1000], eval_every=7)
    d = r.to_dict()
    text = json.dumps(d)
    back = recipe.Recipe.from_dict(json.loads(text))
    assert back == r
    assert back.lr_drops == r.lr_drops
    assert isinstance(back.checkpoint_iters, tuple)
    assert json.loads(text)["checkpoint_iters"] == [0, 10, 1000]
    assert json.loads(text)["steps"] == 1000
    assert recipe.Recipe.from_dict(recipe.Recipe().to_dict()) == recipe.Recipe()


def test_from_dict_rejects_unknown_field():
    d = recipe.Recipe().to_dict()
    d["warmup"] = 5
    with pytest.raises(ValueError, match="warmup"):
        recipe.Recipe.from_dict(d)




def test_recipes_written_before_presets_read_the_same():
    legacy = {"steps": 24, "batch_size": 32, "lr_boundaries": [12, 18],
              "lr_values": [0.025, 0.0025, 0.00025],
              "checkpoint_iters": [0, 2, 4, 7, 9, 12, 15, 17, 20, 23, 24],
              "eval_every": 8, "momentum": 0.9}
    back = recipe.Recipe.from_dict(legacy)
    assert back == recipe.make(steps=24, batch_size=32, eval_every=8)
    assert back.lr_values == (0.025, 0.0025, 0.00025)


PAPERS = {
    # preset: (optimizer, lr, batch, steps, weight decay), from the papers.
    "frankle2019-lenet": ("adam", 1.2e-3, 60, 50000, 0.0),
    "frankle2019-conv2": ("adam", 2e-4, 60, 20000, 0.0),
    "frankle2019-conv4": ("adam", 3e-4, 60, 25000, 0.0),
    "frankle2019-conv6": ("adam", 3e-4, 60, 30000, 0.0),
    "openlth-lenet": ("sgd", 0.1, 128, 18750, 0.0),  # 40 epochs of 60,000
}


@pytest.mark.parametrize("name", sorted(PAPERS))
def test_presets_are_the_papers(name):
    r = recipe.make(name, train_images=60000)
    assert (r.optimizer, r.lr, r.batch_size, r.steps, r.weight_decay) == PAPERS[name]
    assert r.lr_drops == () and r.preset == name
    assert r.checkpoint_iters[0] == 0 and r.checkpoint_iters[-1] == r.steps
    if name == "openlth-lenet":
        assert r.momentum == 0.0 and r.eval_every == round(r.steps / 40)  # every epoch
    else:
        assert (r.beta_1, r.beta_2, r.epsilon) == (0.9, 0.999, 1e-8)


def test_fields_override_a_preset_and_lengths_scale_it():
    r = recipe.make("frankle2019-lenet", lr=3e-4, steps=5000)
    # 1000 at 50,000 steps scales to 100, but a short run evaluates at most
    # 20 times: every 250 steps.
    assert (r.optimizer, r.lr, r.steps, r.eval_every) == ("adam", 3e-4, 5000, 250)
    assert recipe.make("frankle2019-lenet").eval_every == 1000  # its own, unscaled
    assert recipe.make("frankle2019-lenet", steps=5000, eval_every=100).eval_every == 100
    assert len(recipe.make("frankle2019-lenet", steps=200).eval_steps(0, 200)) == 20
    # Only renda2020's LR follows the batch size.
    assert recipe.make("frankle2019-lenet", batch_size=120).lr == 1.2e-3
    assert recipe.make(batch_size=64, lr=0.3).lr == 0.3  # a given lr wins
    warm = recipe.make(steps=1000, warmup_steps=50)
    assert warm.warmup_steps == 50 and warm.lr_drops == (500, 747)
    assert recipe.make(warm, steps=100).warmup_steps == 5  # scaled with T
    assert recipe.make(recipe.make(steps=10)) == recipe.make(steps=10)


def test_recipe_files(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('preset = "frankle2019-conv2"\nlr = 5e-4\nwarmup_steps = 100\n')
    r = recipe.make(path, steps=2000)
    # A file's fields are given values: not scaled with the length.
    assert (r.optimizer, r.lr, r.warmup_steps, r.steps) == ("adam", 5e-4, 100, 2000)
    plain = tmp_path / "plain.toml"
    plain.write_text("optimizer = 'nesterov'\nmomentum = 0.95\n")
    assert recipe.make(str(plain)).optimizer == "nesterov"
    bad = tmp_path / "bad.toml"
    bad.write_text("lrr = 0.1\n")
    with pytest.raises(LotteryError, match=r"is not a recipe field \(did you mean lr\?\)"):
        recipe.make(bad)
    bad.write_text("lr = \n")
    with pytest.raises(LotteryError, match="is not valid TOML"):
        recipe.make(bad)
    with pytest.raises(LotteryError, match="no such recipe file"):
        recipe.make(tmp_path / "none.toml")


@pytest.mark.parametrize("fields, message", [
    (dict(optimizer="adm"), "optimizer='adm': expected one of momentum, sgd, nesterov, adam (did you mean adam?)"),
    (dict(lr=-0.1), "lr=-0.1: expected a positive learning rate"),
    (dict(steps=100, lr_drops=[50, 150]), "lr_drops=[50, 150]: [150] lie outside [0, 100]"),
    (dict(momentum=1.0), "momentum=1.0: expected a number in [0, 1)"),
    (dict(weight_decay=-1e-4), "weight_decay=-0.0001: expected a number >= 0"),
    (dict(warmup_steps=-1), "warmup_steps=-1: expected an integer >= 0"),
    (dict(gama=0.5), "gama=0.5: is not a recipe field (did you mean gamma?)"),
])
def test_bad_fields_name_the_field_and_the_fix(fields, message):
    with pytest.raises(LotteryError) as info:
        recipe.make(**fields)
    assert str(info.value).startswith(message), str(info.value)


def test_unknown_preset_suggests_the_closest():
    with pytest.raises(LotteryError, match=r"recipe='renda': unknown recipe \(did you mean renda2020\?\)"):
        recipe.make("renda")


@pytest.mark.parametrize("kind, cls, check", [
    ("momentum", "MomentumSGD", lambda o: o.momentum == 0.9),
    ("sgd", "SGD", lambda o: o.momentum == 0.5 and not o.nesterov),
    ("nesterov", "SGD", lambda o: o.momentum == 0.5 and o.nesterov),
    ("adam", "Adam", lambda o: (o.beta_1, o.beta_2, o.epsilon) == (0.8, 0.99, 1e-6)),
])
def test_optimizer_of_each_kind(kind, cls, check):
    r = recipe.make(steps=10, optimizer=kind, momentum=0.5 if kind != "momentum" else 0.9,
                    beta_1=0.8, beta_2=0.99, epsilon=1e-6)
    opt = optimizer_for(r, schedule_for(r))
    assert type(opt).__name__ == cls and check(opt)


def test_warmup_ramps_linearly_then_follows_the_schedule():
    r = recipe.make(steps=100, lr=0.4, lr_drops=[60], gamma=0.5, warmup_steps=4)
    got = [_lr(schedule_for(r), g) for g in (0, 1, 3, 4, 60, 61)]
    assert got == pytest.approx([0.1, 0.2, 0.4, 0.4, 0.4, 0.2], rel=1e-6)
    assert [r.lr_at(g) for g in (0, 1, 3, 4, 60, 61)] == pytest.approx(got, rel=1e-6)


def test_a_preset_on_the_command_line_trains_with_its_optimizer_and_children_inherit_it(
        tmp_path, monkeypatch):
    from click.testing import CliRunner

    import keras_lottery as kl
    from keras_lottery.cli import main
    from snapshots import tensors

    def optimizer_variables(run):
        found = tensors(run.checkpoints["final"])
        return [found[k].shape for k in found if k.startswith("optimizer/vars/")]

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, [
        "train", "--arch", "lenet300", "--dataset", "digits", "--recipe", "frankle2019-lenet",
        "--steps", "20", "--eval-every", "20", "--checkpoint-iters", "0,2,20", "--seed", "0",
        "-q", "--out", "adam"])
    assert result.exit_code == 0, result.output
    run = kl.Run.open("adam")
    made = run.spec.recipe
    assert (made.preset, made.optimizer, made.lr, made.batch_size, made.steps) == (
        "frankle2019-lenet", "adam", 1.2e-3, 60, 20)
    # Adam's state: the iteration, then two moments for each of the 6 weights.
    assert len(optimizer_variables(run)) == 1 + 2 * 6
    result = CliRunner().invoke(main, ["finetune", "--from", "adam", "--iter", "2",
                                       "--density", "50", "--seed", "0", "-q", "--out", "child"])
    assert result.exit_code == 0, result.output
    child = kl.Run.open("child")
    assert child.spec.recipe == made
    assert child.spec.lr == 1.2e-3  # the recipe's last LR
    assert len(optimizer_variables(child)) == 1 + 2 * 6
