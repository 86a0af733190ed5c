"""Which input shapes an architecture can take, checked before any layer exists.

A builder given a shape it cannot take would otherwise fail deep inside Keras
(or, for a pooled map that shrinks to zero, build a useless model); callers
such as the CLI also want to validate a dataset's shape before writing a run.
"""


from keras_lottery import checks


class AnyShape:
    """Any shape of one or more positive sizes (a net that flattens first)."""

    need = "one or more positive integer sizes, e.g. (784,) or (28, 28, 1)"

    def accepts(self, shape):
        return len(shape) >= 1


class Image:
    """A channels-last image (height, width, channels) of at least `min_side`
    pixels per side, so that `pools` 2×2 max-pools leave at least 1×1."""

    def __init__(self, pools=0):
        self.pools = pools
        self.min_side = 2**pools

    @property
    def need(self):
        text = "an image shape (height, width, channels) of "
        if not self.pools:
            return text + "positive integers"
        times = {1: "once", 2: "twice"}.get(self.pools, f"{self.pools} times")
        return text + (
            f"at least {self.min_side}x{self.min_side}, as it halves the "
            f"size {times} by 2x2 max-pooling"
        )

    def accepts(self, shape):
        return len(shape) == 3 and min(shape[:2]) >= self.min_side


def check(name, input_shape, rule):
    """Returns `input_shape` as a tuple of ints if `rule` accepts it.

    Args:
        name: the architecture, for the message.
        input_shape: the shape of one example, without the batch axis.
        rule: an `AnyShape` or `Image`.

    Raises:
        ValueError: one line naming the architecture, the shape received and
            what the architecture needs.
    """
    shape = _as_sizes(input_shape)
    if shape is None or not rule.accepts(shape):
        shown = tuple(shape) if shape is not None else input_shape
        raise ValueError(
            f"{name} cannot take input_shape {shown!r}: it needs {rule.need}."
        )
    return shape


def _as_sizes(input_shape):
    """The shape as a tuple of Python ints, or None if it is not one of
    positive integers (numpy integers are fine: dataset shapes may be)."""
    if isinstance(input_shape, (str, bytes)):
        return None
    try:
        sizes = tuple(input_shape)
    except TypeError:
        return None
    if not all(checks.is_count(s, 1) for s in sizes):
        return None
    return tuple(int(s) for s in sizes)
