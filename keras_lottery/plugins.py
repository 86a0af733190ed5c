"""Functions of the user's own, named "package.module:function".

An architecture (`--arch mynets:small_cnn`) and a pruner (`--pruner
mycriteria:snip`) can be given so. The module is imported as Python would
from the current folder: the current working directory is searched first,
as `python -c` does, so `mynets.py` beside the user's study or notebook is
found without setting PYTHONPATH.
"""

import importlib
import os
import sys

from keras_lottery.errors import LotteryError


def is_reference(text):
    """Whether `text` has the form "package.module:function"."""
    return isinstance(text, str) and ":" in text and not text.endswith(".keras")


def load(reference, *, param, what):
    """The object `reference` ("package.module:function") names.

    Args:
        reference: "package.module:function".
        param: the argument it was given as (for the error).
        what: what the function must do, for the error ("returns a Keras
            model").

    Raises:
        LotteryError: it cannot be imported, or is not callable.
    """
    module_name, _, name = reference.partition(":")
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)  # as `python -c` and notebooks have it
    try:
        found = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError, ValueError) as e:
        first = str(e).splitlines()[0] if str(e) else ""
        raise LotteryError(
            f"cannot import it ({type(e).__name__}: {first}); give "
            f"package.module:function of a function that {what}, importable "
            "from here (the current folder or an installed package)",
            param=param, value=reference,
        ) from None
    if not callable(found):
        raise LotteryError(
            f"is not a function (a {type(found).__name__}); give "
            f"package.module:function of a function that {what}",
            param=param, value=reference,
        )
    return found
