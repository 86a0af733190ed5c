"""Weight decay as the original code applies it: `wd · Σ v²/2` as an L2 loss.

Every family builder takes `weight_decay=None` (its module's `WEIGHT_DECAY`)
or a number that overrides it; 0 means no regularizer objects at all, so the
model has no `losses` and its config names no L2.
"""


import keras

from keras_lottery import checks


def resolve(weight_decay, default):
    """The coefficient to apply: `default` for None, else `weight_decay`.

    Raises:
        ValueError: `weight_decay` is not a finite number >= 0.
    """
    if weight_decay is None:
        return default
    if not checks.is_number(weight_decay) or weight_decay < 0:
        raise ValueError(
            f"weight_decay must be a finite number >= 0 (or None for the "
            f"architecture's default), got {weight_decay!r}."
        )
    return float(weight_decay)


def regularizer(weight_decay):
    """Keras's `L2(wd / 2)`, which is the original's `wd · Σ v²/2`; None at 0.

    Callers pass the one object to every layer, as the builders always did.
    """
    if not weight_decay:
        return None
    return keras.regularizers.L2(weight_decay / 2)
