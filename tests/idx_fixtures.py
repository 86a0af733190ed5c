"""Writes tiny MNIST-layout IDX files, raw or gzipped, as the official ones.

IDX: big-endian magic (0, 0, 0x08 for uint8, number of dimensions), one
big-endian uint32 per dimension, then the bytes row-major. Images are magic
2051 (count, rows, cols), labels 2049 (count).
"""

import gzip
import os
import struct

import numpy as np

NAMES = (
    "train-images-idx3-ubyte", "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte",
)


def idx_bytes(array):
    """The IDX encoding of a uint8 array (magic 0x0800 + ndim)."""
    array = np.ascontiguousarray(array, np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def make_mnist(train=40, test=16, seed=0, size=28):
    """`(x_train, y_train, x_test, y_test)`: uint8 `(n, size, size)`, labels 0-9."""
    rng = np.random.default_rng(seed)
    return (
        rng.integers(0, 256, (train, size, size), dtype=np.uint8),
        rng.integers(0, 10, train, dtype=np.uint8),
        rng.integers(0, 256, (test, size, size), dtype=np.uint8),
        rng.integers(0, 10, test, dtype=np.uint8),
    )


def write_mnist(folder, arrays, *, gz=False):
    """Writes the four files (`.gz` when `gz`); returns their paths."""
    os.makedirs(folder, exist_ok=True)
    paths = []
    for name, array in zip(NAMES, arrays):
        raw = idx_bytes(array)
        path = os.path.join(folder, name + (".gz" if gz else ""))
        with open(path, "wb") as f:
            f.write(gzip.compress(raw, mtime=0) if gz else raw)
        paths.append(path)
    return paths
