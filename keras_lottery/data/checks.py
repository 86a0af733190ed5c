"""Argument checks and error text shared by the data modules."""

import numpy as np

from keras_lottery.errors import LotteryError


def is_int(value):
    """Whether `value` is a Python or numpy integer (bools are not)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def check_count(name, value, minimum=0):
    """Raises a `LotteryError` unless `value` is an integer >= `minimum`."""
    if not is_int(value) or value < minimum:
        raise LotteryError(f"expected an integer >= {minimum}", param=name, value=value)
    return int(value)


def check_seed(seed):
    """`seed` as an int; `np.random.default_rng([seed, ...])` needs it >= 0."""
    return check_count("seed", seed)


def one_line(error):
    """An exception's text on one line, at most 200 characters."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 200 else text[:197] + "..."
