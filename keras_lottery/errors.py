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

    Densities a message suggests are given apart (`densities`, named in the
    message as `{name}`) so that each reader sees them in its own unit:
    Python as fractions (`0.03`), the command line as it takes them
    (`3`, `0.5%`); so are other arguments the message names (`arguments`,
    `{data_dir}`): `data_dir` in Python, `--data-dir` on the command line.

    Args:
        message: what is wrong and how to fix it (without the argument's
            name, when `param` is given).
        param: the Python argument at fault, if one is.
        value: the value it received.
        densities: {name: fraction} of the densities `message` names.
        arguments: the names of other arguments `message` names.
    """

    def __init__(self, message, *, param=None, value=None, densities=None, arguments=()):
        self.message = message
        self.param = param
        self.value = value
        self.densities = dict(densities or {})
        self.arguments = tuple(arguments)
        super().__init__(self.render())

    def __reduce__(self):  # keyword arguments survive pickling (subprocesses)
        return _rebuild, (type(self), self.message, self.param, self.value, self.densities,
                          self.arguments)

    def render(self, name=None, value=None, density=None, argument=None):
        """The message, naming the argument as `name` (default `param=`).

        Args:
            name: how to name the argument: the CLI passes its `--flag`.
            value: how to show the value (default: its `repr`).
            density: how to show a density the message names (default: the
                fraction, `0.03`).
            argument: how to name another argument the message names
                (default: its Python name).
        """
        message = self.message
        shown = density or (lambda fraction: f"{fraction:g}")
        for key, fraction in self.densities.items():
            message = message.replace("{" + key + "}", shown(fraction))
        for key in self.arguments:
            message = message.replace("{" + key + "}", argument(key) if argument else key)
        if self.param is None:
            return message
        if name is None:
            return f"{self.param}={self.value!r}: {message}"
        shown = self.value if value is None else value
        if shown is None:  # nothing was given: name only the option
            return f"{name}: {message}"
        return f"{name} {shown}: {message}"


def _rebuild(cls, message, param, value, densities=None, arguments=()):
    return cls(message, param=param, value=value, densities=densities, arguments=arguments)
