"""The shared argument checks: what passes, and the one line each refusal is."""

import numpy as np
import pytest

from keras_lottery import checks
from keras_lottery.errors import LotteryError


def test_counts_are_integers_not_bools():
    assert checks.is_count(0) and checks.is_count(np.int64(3), 1)
    assert not any(checks.is_count(v) for v in (True, -1, 2.0, "3", None))
    assert checks.count(5, "steps", 1) == 5
    with pytest.raises(LotteryError, match=r"^steps=True: expected an integer >= 1$"):
        checks.count(True, "steps", 1)
    assert checks.optional_count(None, "seed") is None


def test_numbers_are_finite_and_within_their_bounds():
    assert checks.is_number(0.5) and checks.is_number(np.float32(2))
    assert not any(checks.is_number(v) for v in (float("nan"), float("inf"), False, "1"))
    assert checks.fraction(1, "density") == 1.0
    for bad in (0, 1.5, float("nan")):
        with pytest.raises(LotteryError, match=r"expected a fraction in \(0, 1\]"):
            checks.fraction(bad, "density")
    with pytest.raises(LotteryError, match="^rate=1.0: nope$"):
        checks.number(1.0, "rate", above=0, below=1, message="nope")


def test_choices_and_names():
    assert checks.choice("global", "scope", ("global", "layerwise")) == "global"
    with pytest.raises(LotteryError, match="^scope='x': expected one of global, layerwise$"):
        checks.choice("x", "scope", ("global", "layerwise"))
    assert checks.names(["fc_1"], "exclude") == ("fc_1",)
    with pytest.raises(LotteryError, match="^exclude='fc_3': expected a list of layer names$"):
        checks.names("fc_3", "exclude")  # not split into its characters
