"""Checks of an argument's value, shared by every layer of the package.

Each checker returns the value (normalized: a float for a number) or raises
a `LotteryError` that names the argument and the value received, in the
form every error of the package has (`seed=-1: expected an integer >= 0`).
The predicates (`is_count`, `is_number`) answer without raising.
"""

import math
import numbers

from keras_lottery.errors import LotteryError


def is_count(value, minimum=0):
    """Whether `value` is an integer (not a bool) of at least `minimum`."""
    return (isinstance(value, numbers.Integral) and not isinstance(value, bool)
            and value >= minimum)


def is_number(value):
    """Whether `value` is a finite real number (not a bool)."""
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and math.isfinite(value))


def count(value, param, minimum=0, message=None):
    """`value` if it is an integer >= `minimum`, else a `LotteryError`."""
    if not is_count(value, minimum):
        raise LotteryError(message or f"expected an integer >= {minimum}",
                           param=param, value=value)
    return int(value)


def optional_count(value, param, minimum=0, message=None):
    """None, or an integer >= `minimum`."""
    return None if value is None else count(value, param, minimum, message)


def number(value, param, *, above=None, below=None, at_most=None, message):
    """`value` as a float if it is a finite number within the bounds given
    (`above` < value, value < `below`, value <= `at_most`)."""
    ok = is_number(value) and (
        (above is None or value > above) and (below is None or value < below)
        and (at_most is None or value <= at_most))
    if not ok:
        raise LotteryError(message, param=param, value=value)
    return float(value)


def fraction(value, param, message="expected a fraction in (0, 1]"):
    """`value` as a float in (0, 1]."""
    return number(value, param, above=0, at_most=1, message=message)


def choice(value, param, choices, what="one of"):
    """`value` if it is one of `choices`."""
    if value not in choices:
        shown = ", ".join("None" if c is None else str(c) for c in choices)
        raise LotteryError(f"expected {what} {shown}", param=param, value=value)
    return value


def names(value, param, what="a list of layer names"):
    """A tuple of strings from a list of strings (a lone string is refused,
    not split into its characters)."""
    if isinstance(value, str) or not all(isinstance(n, str) for n in value or ()):
        raise LotteryError(f"expected {what}", param=param, value=value)
    return tuple(value or ())


def percent_text(fraction):
    """A density as the command line and study files take it: percent,
    with a `%` sign below 1 % (0.2 -> "20", 0.005 -> "0.5%")."""
    percent = float(f"{fraction * 100:.6g}")
    return f"{percent:g}" if percent > 1 else f"{percent:g}%"


def percent_shown(fraction):
    """A density as tables and progress lines show it: percent with its
    sign, to 4 significant digits (0.2 -> "20%", 0.005 -> "0.5%")."""
    return f"{fraction * 100:.4g}%"


def percent(value, param):
    """A density typed in percent (the command line's "80" or "0.5%", a
    study file's 80 or "0.5%") as the fraction the library takes.

    A value up to 1 without a `%` sign is far more often a fraction typed by
    mistake than a sub-percent density, so it is refused, in the unit typed.
    """
    text = str(value).strip()
    deliberate = text.endswith("%")
    try:
        number = float(text[:-1] if deliberate else text)
    except ValueError:
        number = None
    if isinstance(value, bool) or number is None or not is_number(number):
        raise LotteryError("is not a number; give the percent of weights to keep, "
                           "e.g. 80", param=param, value=value)
    if not 0 < number <= 100:
        raise LotteryError("is not a percent in (0, 100]; 80 keeps 80 % of the "
                           "weights", param=param, value=value)
    if number <= 1 and not deliberate:
        raise LotteryError(
            f"is a percent here: for {number:g} % write {number:g}%, for "
            f"{number * 100:g} % of the weights write {percent_text(number)}",
            param=param, value=value)
    return number / 100
class Summary:
    """A value shown by what it is, for errors about large values (arrays)."""

    def __init__(self, text):
        self.text = text

    def __repr__(self):
        return self.text


def summary(value):
    """`value` with a short repr: arrays by shape, tuples and lists by
    their items' (a repr of the data would fill the screen)."""
    def what(item):
        shape = getattr(item, "shape", None)
        if shape is not None:
            return f"array of shape {tuple(shape)}"
        return type(item).__name__

    if isinstance(value, (tuple, list)):
        return Summary(f"<{type(value).__name__} of {', '.join(map(what, value))}>")
    return Summary(f"<{what(value)}>")
