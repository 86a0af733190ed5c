"""Writes tiny CIFAR-10 files in both official formats, byte for byte.

The python version is hand-encoded the way Python 2's cPickle (protocol 2)
wrote the real files: BINSTRING for every str (keys, batch label, file names
and the raw array bytes) and GLOBAL opcodes for
`numpy.core.multiarray._reconstruct`, `numpy.ndarray` and `numpy.dtype`.
Pickling with Python 3 and numpy 2 would name other globals
(`numpy._core...`, `_codecs.encode`), so the bytes are assembled here from
`pickle`'s opcode constants.
"""

import os
import pickle
import struct

import numpy as np

TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
ALL_FILES = TRAIN_FILES + (TEST_FILE,)


def make_batches(records=20, seed=0):
    """`{file name: (images NHWC uint8, labels int list)}` for the six files."""
    rng = np.random.default_rng(seed)
    return {
        name: (
            rng.integers(0, 256, size=(records, 32, 32, 3), dtype=np.uint8),
            [int(v) for v in rng.integers(0, 10, size=records)],
        )
        for name in ALL_FILES
    }


def binary_bytes(images, labels):
    """One binary-version file: per record, label byte then R, G, B planes."""
    planes = np.asarray(images, np.uint8).transpose(0, 3, 1, 2).reshape(len(images), -1)
    records = np.concatenate([np.asarray(labels, np.uint8)[:, None], planes], axis=1)
    return records.tobytes()


def write_binary(folder, batches):
    """Writes `<name>.bin` for every batch; returns the folder."""
    os.makedirs(folder, exist_ok=True)
    for name, (images, labels) in batches.items():
        with open(os.path.join(folder, name + ".bin"), "wb") as f:
            f.write(binary_bytes(images, labels))
    return folder


class _Py2Pickler:
    """Emits protocol-2 opcodes as Python 2 cPickle did for a batch dict."""

    def __init__(self):
        self.out = bytearray(pickle.PROTO + b"\x02")
        self.memo = 0

    def put(self):
        # cPickle memoizes every str, global, container and REDUCE result.
        self.memo += 1
        if self.memo < 256:
            self.out += pickle.BINPUT + bytes([self.memo])
        else:
            self.out += pickle.LONG_BINPUT + struct.pack("<I", self.memo)

    def string(self, value):
        if isinstance(value, str):
            value = value.encode("latin-1")
        if len(value) < 256:
            self.out += pickle.SHORT_BINSTRING + bytes([len(value)]) + value
        else:
            self.out += pickle.BINSTRING + struct.pack("<i", len(value)) + value
        self.put()

    def int(self, value):
        if 0 <= value < 256:
            self.out += pickle.BININT1 + bytes([value])
        elif 0 <= value < 65536:
            self.out += pickle.BININT2 + struct.pack("<H", value)
        else:
            self.out += pickle.BININT + struct.pack("<i", value)

    def glob(self, module, name):
        self.out += pickle.GLOBAL + f"{module}\n{name}\n".encode("ascii")
        self.put()

    def array(self, data):
        """`ndarray.__reduce__` of numpy 1.x under Python 2."""
        data = np.ascontiguousarray(data, np.uint8)
        self.glob("numpy.core.multiarray", "_reconstruct")
        self.glob("numpy", "ndarray")
        self.int(0)
        self.out += pickle.TUPLE1
        self.string(b"b")
        self.out += pickle.TUPLE3 + pickle.REDUCE
        self.put()
        # State: (1, shape, dtype, is_fortran, raw bytes).
        self.out += pickle.MARK
        self.int(1)
        self.int(data.shape[0])
        self.int(data.shape[1])
        self.out += pickle.TUPLE2
        self.glob("numpy", "dtype")
        self.string(b"u1")
        self.int(0)
        self.int(1)
        self.out += pickle.TUPLE3 + pickle.REDUCE
        self.put()
        self.out += pickle.MARK
        self.int(3)
        self.string(b"|")
        self.out += pickle.NONE * 3
        self.out += pickle.BININT + struct.pack("<i", -1)
        self.out += pickle.BININT + struct.pack("<i", -1)
        self.int(0)
        self.out += pickle.TUPLE + pickle.BUILD
        self.out += pickle.NEWFALSE
        self.string(data.tobytes())
        self.out += pickle.TUPLE + pickle.BUILD

    def str_list(self, values):
        self.out += pickle.EMPTY_LIST
        self.put()
        self.out += pickle.MARK
        for v in values:
            self.string(v)
        self.out += pickle.APPENDS

    def int_list(self, values):
        self.out += pickle.EMPTY_LIST
        self.put()
        self.out += pickle.MARK
        for v in values:
            self.int(v)
        self.out += pickle.APPENDS


def python2_batch_bytes(images, labels, batch_label="training batch 1 of 5"):
    """One python-version file: the batch dict as Python 2 cPickle wrote it."""
    images = np.asarray(images, np.uint8)
    data = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
    p = _Py2Pickler()
    p.out += pickle.EMPTY_DICT
    p.put()
    p.out += pickle.MARK
    p.string(b"data")
    p.array(data)
    p.string(b"labels")
    p.int_list(labels)
    p.string(b"batch_label")
    p.string(batch_label)
    p.string(b"filenames")
    p.str_list([f"image_{i:06d}.png" for i in range(len(labels))])
    p.out += pickle.SETITEMS + pickle.STOP
    return bytes(p.out)


def write_python(folder, batches):
    """Writes every batch as a Python 2 protocol-2 pickle; returns the folder."""
    os.makedirs(folder, exist_ok=True)
    for name, (images, labels) in batches.items():
        with open(os.path.join(folder, name), "wb") as f:
            f.write(python2_batch_bytes(images, labels, batch_label=name))
    return folder
