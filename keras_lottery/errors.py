"""The one exception type for bad input and unusable run directories."""


class LotteryError(ValueError):
    """A problem the user can fix; its message is one line naming the fix.

    When the problem is one argument's value, `param` names the Python
    argument and `value` holds what was received; the message then reads
    like Keras's own, `seed=-1: expected an integer >= 0`. The `lottery`
    command prints the same error with the argument's `--flag` instead
    (`--seed -1: expected ...`), as `Error: <message>` with exit status 1,
    never a traceback.

    Example:

    >>> raise LotteryError("expected an integer >= 0", param="seed", value=-1)
    LotteryError: seed=-1: expected an integer >= 0

    Args:
        message: what is wrong and how to fix it (without the argument's
            name, when `param` is given).
        param: the Python argument at fault, if one is.
        value: the value it received.
    """

    def __init__(self, message, *, param=None, value=None):
        self.message = message
        self.param = param
        self.value = value
        super().__init__(self.render())

    def __reduce__(self):  # keyword arguments survive pickling (subprocesses)
        return _rebuild, (type(self), self.message, self.param, self.value)

    def render(self, name=None, value=None):
        """The message, naming the argument as `name` (default `param=`).

        Args:
            name: how to name the argument: the CLI passes its `--flag`.
            value: how to show the value (default: its `repr`).
        """
        if self.param is None:
            return self.message
        if name is None:
            return f"{self.param}={self.value!r}: {self.message}"
        shown = self.value if value is None else value
        if shown is None:  # nothing was given: name only the option
            return f"{name}: {self.message}"
        return f"{name} {shown}: {self.message}"


def _rebuild(cls, message, param, value):
    return cls(message, param=param, value=value)
