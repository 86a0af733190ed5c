"""The one exception type for bad input and unusable run directories."""


class LotteryError(ValueError):
    """A problem the user can fix; its message is one line naming the fix.

    The `lottery` command prints it as `Error: <message>` with exit status 1,
    never a traceback.
    """
