"""A restricted unpickler for the python versions of CIFAR-10 and CIFAR-100.

The real files are Python 2 cPickle protocol 2 dicts. `b"data"` is pickled
as `_reconstruct(ndarray, (0,), b"b")`, then BUILD with the state
`(1, shape, dtype, is_fortran, raw_bytes)`; the dtype is `dtype("u1", 0, 1)`
then BUILD with `(3, "|", None, None, None, -1, -1, 0)`. The stand-ins below
accept exactly that and build the array with `np.frombuffer`, so no numpy
constructor ever sees bytes from the file and a doctored file cannot run
code: any other global is refused.
"""

import math
import pickle

import numpy as np

from keras_lottery.data import checks


class RefusedGlobal(pickle.UnpicklingError):
    """The pickle names a global outside the CIFAR allowlist."""


# `numpy.ndarray` only ever appears as `_reconstruct`'s first argument; a
# plain object is not callable, so REDUCE on it fails.
_NDARRAY = object()


class _UInt8Dtype:
    """Stand-in for `numpy.dtype`: admits only the uint8 description."""

    def __init__(self, spec, align=False, copy=True):
        if _text(spec) not in ("u1", "|u1"):
            raise pickle.UnpicklingError(f"dtype {spec!r} is not uint8")

    def __setstate__(self, state):
        if not isinstance(state, tuple) or len(state) < 2:
            raise pickle.UnpicklingError(f"unexpected dtype state {state!r}")
        if _text(state[1]) not in ("|", "=", "<", ">"):
            raise pickle.UnpicklingError(f"unexpected dtype byte order {state[1]!r}")


class PickledArray:
    """Stand-in for the ndarray `_reconstruct` makes; BUILD fills `array`."""

    array = None

    def __setstate__(self, state):
        if not isinstance(state, tuple) or len(state) != 5:
            raise pickle.UnpicklingError("unexpected ndarray state")
        _, shape, dtype, is_fortran, raw = state
        if not isinstance(dtype, _UInt8Dtype):
            raise pickle.UnpicklingError("ndarray dtype is not uint8")
        if not isinstance(shape, tuple) or not all(
            checks.is_int(d) and d >= 0 for d in shape
        ):
            raise pickle.UnpicklingError(f"bad ndarray shape {shape!r}")
        if not isinstance(raw, bytes) or len(raw) != math.prod(shape):
            raise pickle.UnpicklingError(
                f"ndarray of shape {shape} does not match its data size"
            )
        order = "F" if is_fortran else "C"
        self.array = np.frombuffer(raw, dtype=np.uint8).reshape(shape, order=order)


def _reconstruct(subtype, shape, typecode):
    """Stand-in for `numpy.core.multiarray._reconstruct`."""
    if subtype is not _NDARRAY:
        raise pickle.UnpicklingError("_reconstruct of something other than ndarray")
    return PickledArray()


class CifarUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals a CIFAR batch names.

    Use with `encoding="bytes"`, as the files hold Python 2 strs. A uint8
    array comes back as a `PickledArray` whose `array` holds it.
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy", "ndarray"): _NDARRAY,
        ("numpy", "dtype"): _UInt8Dtype,
    }

    def find_class(self, module, name):
        try:
            return self._ALLOWED[(module, name)]
        except (KeyError, TypeError):
            raise RefusedGlobal(f"{module}.{name}") from None


def _text(value):
    """A pickled str (bytes under `encoding="bytes"`) as str, else None."""
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return value if isinstance(value, str) else None
