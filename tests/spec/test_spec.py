import json

import pytest

from keras_lottery.spec import recipe
from keras_lottery.errors import LotteryError
from keras_lottery.spec.chainspec import IterateSpec
from keras_lottery.spec.runspec import RunSpec

RECIPE = recipe.make(steps=20)


def _spec(mode="rewind", **fields):
    base = dict(seed=1, parent="/runs/base", iteration=4, target_density=0.8)
    if mode == "train":
        base = dict(seed=1)
    return RunSpec(mode, "resnet8", "synthetic", RECIPE, **dict(base, **fields))


@pytest.mark.parametrize("fields, message", [
    (dict(seed=-1), "seed=-1: expected an integer >= 0"),
    (dict(seed=True), "seed=True: expected an integer >= 0"),
    (dict(iteration=20), "iteration=20: must lie in [0, 20) for a recipe of 20 steps"),
    (dict(iteration=-2), "iteration=-2: expected an integer >= 0"),
    (dict(target_density=1.5), "density=1.5: expected a fraction in (0, 1]"),
    (dict(target_density=0), "density=0: expected a fraction in (0, 1]"),
    (dict(target_density=float("nan")), "density=nan: expected a fraction"),
    (dict(parent="relative/path"), "parent='relative/path': expected the parent run's absolute path"),
    (dict(lr=0.1), "lr=0.1: rewind follows the recipe's schedule"),
    (dict(scope="local"), "scope='local': expected one of global, layerwise"),
    (dict(exclude="fc_3"), "exclude='fc_3': expected a list of layer names"),
    (dict(val_split=-3), "val_split=-3: expected an integer >= 0"),
    (dict(round=0), "round=0: expected an integer >= 1"),
    (dict(precision="fp8"), "mixed_precision='fp8': expected bf16, fp16 or None"),
    (dict(mode="rewnd"), "mode='rewnd': unknown method (did you mean rewind?)"),
])
def test_constructor_names_the_argument_and_value(fields, message):
    mode = fields.pop("mode", "rewind")
    with pytest.raises(LotteryError) as info:
        _spec(mode, **fields)
    assert str(info.value).startswith(message), str(info.value)
    assert "--" not in str(info.value)  # Python errors name Python arguments


def test_method_specific_fields():
    with pytest.raises(LotteryError, match="reinit trains from step 0, so it takes no iteration"):
        _spec("reinit")
    assert _spec("reinit", iteration=None).iteration is None
    with pytest.raises(LotteryError, match="lr=None: expected a positive learning rate"):
        _spec("finetune")
    with pytest.raises(LotteryError, match="parent='/runs/base': a train run has none"):
        _spec("train", parent="/runs/base")
    assert _spec("finetune", lr=0.001).lr == 0.001


def test_equality_is_what_makes_two_requests_the_same_run():
    assert _spec() == _spec()
    assert _spec() != _spec(seed=2)
    assert _spec() != _spec(exclude=("fc_3",))
    assert _spec(exclude=["fc_3"]) == _spec(exclude=("fc_3",))  # lists are tuples
    assert _spec(target_density=1) == _spec(target_density=1.0)
    assert _spec().replace(seed=None) == _spec(seed=None)
    assert _spec().differences(_spec(seed=2)) == ["seed 1 != 2"]
    other = RunSpec("rewind", "resnet8", "synthetic", recipe.make(steps=24), seed=1,
                    parent="/runs/base", iteration=4, target_density=0.8)
    (difference,) = _spec().differences(other)
    assert difference.startswith("recipe {") and "'steps': 20" in difference
    assert "'steps': 24" in difference


def test_config_round_trip_keeps_every_field(tmp_path):
    spec = _spec(parent=str(tmp_path / "base"), exclude=("dense",), scope="layerwise",
                 round=2, val_split=10, precision="bf16")
    config = json.loads(json.dumps(spec.to_config(tmp_path / "child")))
    assert config["schema"] == 1 and config["parent"] == "../base"
    assert config["parent_absolute"] == str(tmp_path / "base")
    assert RunSpec.from_config(config, tmp_path / "child") == spec


def test_legacy_run_json_without_schema_reads_as_before(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    legacy = {"mode": "rewind", "arch": "resnet8", "dataset": "synthetic",
              "recipe": RECIPE.to_dict(), "seed": 1, "parent": "runs/base",
              "iteration": 4, "target_density": 0.8, "lr": None, "precision": None,
              "status": "finished", "density": 0.8, "start_step": 4, "end_step": 20}
    spec = RunSpec.from_config(legacy, tmp_path / "runs" / "child")
    assert spec.parent == str(tmp_path / "runs" / "base")  # as typed, from here
    assert spec.scope == "global" and spec.exclude == ()


def test_iterate_spec_validates_and_gives_round_densities():
    spec = IterateSpec("rewind-lr", "/runs/base", 4, 0.8, 3)
    assert spec.method == "rewind_lr"
    assert [spec.density(1.0, i) for i in (1, 2, 3)] == [0.8, 0.64, 0.512]
    for bad, message in [(dict(rate=1.5), "rate=1.5: expected a fraction in (0, 1)"),
                         (dict(method="train"), "method='train': unknown method"),
                         (dict(seed=-4), "seed=-4: expected an integer >= 0")]:
        with pytest.raises(LotteryError) as info:
            spec.replace(**bad)
        assert str(info.value).startswith(message)


def test_branch_prunes_nothing_so_it_takes_no_density():
    spec = _spec("branch", target_density=None)
    assert spec.target_density is None and spec.iteration == 4
    with pytest.raises(LotteryError, match=r"^density=0.8: branch keeps the "
                       "parent's masks, so it takes no density"):
        _spec("branch")
    with pytest.raises(LotteryError, match="iteration=None: expected an integer"):
        _spec("branch", target_density=None, iteration=None)
    # every other derived method still needs one
    with pytest.raises(LotteryError, match="density=None: expected a fraction"):
        _spec("rewind", target_density=None)
    with pytest.raises(LotteryError, match="method='branch': unknown method"):
        IterateSpec("branch", "/runs/base", 4)
