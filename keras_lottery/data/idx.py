"""The IDX file format of MNIST and Fashion-MNIST, raw or gzipped.

Big-endian: a 4-byte magic number (two zero bytes, the element type 0x08 for
uint8, the number of dimensions), one 4-byte size per dimension, then the
elements row-major. Images are magic 2051 (count, rows, cols), labels 2049
(count).
"""

import gzip
import math
import os
import struct
import zlib

import numpy as np

from keras_lottery.data import checks
from keras_lottery.errors import LotteryError

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
_KINDS = {IMAGES_MAGIC: "image", LABELS_MAGIC: "label"}


def read_idx(path, magic, fix):
    """Reads a uint8 IDX file, checking its magic number and its length.

    Args:
        path: The file; a name ending in `.gz` is decompressed.
        magic: The expected magic number, `IMAGES_MAGIC` or `LABELS_MAGIC`.
        fix: How to get a good file, for the error message.

    Returns:
        A writable uint8 array of the header's dimensions.
    """
    path = os.fspath(path)
    raw = _read_bytes(path, fix)
    kind = _KINDS[magic]
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < 4 or struct.unpack(">I", raw[:4])[0] != magic:
        found = struct.unpack(">I", raw[:4])[0] if len(raw) >= 4 else "missing"
        raise LotteryError(
            f"{path}: not an IDX {kind} file (magic number {found}, expected "
            f"{magic}); {fix}"
        )
    if len(raw) < header:
        raise LotteryError(f"{path}: truncated in its header ({len(raw)} bytes); {fix}")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    expected = header + math.prod(dims)
    if len(raw) != expected:
        what = "truncated" if len(raw) < expected else "longer than its header says"
        raise LotteryError(
            f"{path}: {what} ({len(raw)} bytes; the header's sizes {dims} need "
            f"{expected}); {fix}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims).copy()


def _read_bytes(path, fix):
    """The file's (decompressed) contents."""
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            return f.read()
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise LotteryError(
            f"{path}: truncated or corrupt gzip ({checks.one_line(e)}); {fix}"
        ) from None
    except OSError as e:
        raise LotteryError(f"{path}: unreadable ({checks.one_line(e)}); {fix}") from None
