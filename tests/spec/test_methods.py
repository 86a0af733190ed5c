import pytest

from keras_lottery.spec import methods
from keras_lottery.errors import LotteryError


def test_registry_names_commands_and_derived():
    assert list(methods.METHODS) == ["train", "rewind", "rewind_lr", "finetune",
                                     "lowlr_rewind", "random", "reinit", "branch"]
    assert methods.DERIVED == tuple(list(methods.METHODS)[1:])
    assert methods.PRUNING == tuple(list(methods.METHODS)[1:-1])  # not branch
    assert not methods.BRANCH.prunes and methods.REWIND.prunes
    assert methods.REWIND_LR.command == "rewind-lr"
    assert not methods.TRAIN.derived and methods.REINIT.derived


@pytest.mark.parametrize("name", ["rewind-lr", "rewind_lr"])
def test_get_accepts_both_spellings(name):
    assert methods.get(name) is methods.REWIND_LR


def test_get_suggests_the_closest_and_names_the_argument():
    with pytest.raises(LotteryError) as info:
        methods.get("rewnd")
    assert str(info.value).startswith("method='rewnd': unknown method (did you mean rewind?)")
    with pytest.raises(LotteryError, match="choose one of: rewind, rewind-lr"):
        methods.get("train", derived=True)


@pytest.mark.parametrize("method, iteration, parent_end, want", [
    (methods.TRAIN, None, None, (0, 100)),
    (methods.REWIND, 30, 100, (30, 100)),
    (methods.REWIND_LR, 30, 100, (30, 100)),
    (methods.FINETUNE, 30, 100, (100, 170)),      # ends at 2T - k
    (methods.FINETUNE, 30, 170, (170, 240)),      # a finetuned parent
    (methods.LOWLR_REWIND, 30, 100, (30, 100)),
    (methods.RANDOM, 0, 100, (0, 100)),
    (methods.REINIT, None, 100, (0, 100)),
    (methods.BRANCH, 30, 100, (30, 100)),
])
def test_bounds_follow_the_table(method, iteration, parent_end, want):
    assert method.bounds(steps=100, iteration=iteration, parent_end=parent_end) == want


def test_iterate_takes_only_methods_that_prune():
    with pytest.raises(LotteryError, match="choose one of: rewind, .*reinit$"):
        methods.get("branch", pruning=True)
    assert methods.get("branch", derived=True) is methods.BRANCH
