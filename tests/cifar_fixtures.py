"""Writes tiny CIFAR-10 and CIFAR-100 files in both official formats, byte for byte.

The python version is hand-encoded the way Python 2's cPickle (protocol 2)
wrote the real files: BINSTRING for every str (keys, batch label, file names
and the raw array bytes), GLOBAL opcodes for
`numpy.core.multiarray._reconstruct`, `numpy.ndarray` and `numpy.dtype`, and
lists appended in batches of 1,000 items. Pickling with Python 3 and numpy 2
would name other globals (`numpy._core...`, `_codecs.encode`), so the bytes
are assembled here from `pickle`'s opcode constants.
"""

import os
import pickle
import struct

import numpy as np

TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
ALL_FILES = TRAIN_FILES + (TEST_FILE,)
# cPickle's BATCHSIZE: list items go in APPENDS groups of at most this many.
PICKLE_BATCH = 1000


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

    def items(self, values, write):
        """A list as cPickle's batch_list wrote it: MARK ... APPENDS per group
        of up to 1,000 items, a lone last item with APPEND."""
        self.out += pickle.EMPTY_LIST
        self.put()
        for start in range(0, len(values), PICKLE_BATCH):
            group = values[start : start + PICKLE_BATCH]
            if len(group) == 1:
                write(group[0])
                self.out += pickle.APPEND
                continue
            self.out += pickle.MARK
            for v in group:
                write(v)
            self.out += pickle.APPENDS

    def str_list(self, values):
        self.items(values, self.string)

    def int_list(self, values):
        self.items(values, self.int)


def _dict_bytes(entries):
    """A dict of `(key, write)` entries, in the given order, as one SETITEMS."""
    p = _Py2Pickler()
    p.out += pickle.EMPTY_DICT
    p.put()
    p.out += pickle.MARK
    for key, write in entries:
        p.string(key)
        write(p)
    p.out += pickle.SETITEMS + pickle.STOP
    return bytes(p.out)


def _planes(images):
    """NHWC images as the files' rows: R, G, B planes, each row-major."""
    images = np.asarray(images, np.uint8)
    return images.transpose(0, 3, 1, 2).reshape(len(images), -1)


def _file_names(n):
    return [f"image_{i:06d}.png" for i in range(n)]


def python2_batch_bytes(images, labels, batch_label="training batch 1 of 5"):
    """One CIFAR-10 python-version file: the batch dict as cPickle wrote it."""
    data = _planes(images)
    return _dict_bytes([
        (b"data", lambda p: p.array(data)),
        (b"labels", lambda p: p.int_list(labels)),
        (b"batch_label", lambda p: p.string(batch_label)),
        (b"filenames", lambda p: p.str_list(_file_names(len(labels)))),
    ])


def write_python(folder, batches):
    """Writes every batch as a Python 2 protocol-2 pickle; returns the folder."""
    os.makedirs(folder, exist_ok=True)
    for name, (images, labels) in batches.items():
        with open(os.path.join(folder, name), "wb") as f:
            f.write(python2_batch_bytes(images, labels, batch_label=name))
    return folder


# -- CIFAR-100 -----------------------------------------------------------------

CIFAR100_FILES = ("train", "test")


def make_cifar100(train_records=30, test_records=12, seed=0):
    """`{"train"|"test": (images NHWC uint8, fine labels, coarse labels)}`.

    Fine and coarse labels are drawn independently, so a reader that takes
    the wrong one gives other labels.
    """
    rng = np.random.default_rng(seed)
    return {
        name: (
            rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8),
            [int(v) for v in rng.integers(0, 100, size=n)],
            [int(v) for v in rng.integers(0, 20, size=n)],
        )
        for name, n in (("train", train_records), ("test", test_records))
    }


def cifar100_binary_bytes(images, fine, coarse):
    """One CIFAR-100 binary file: coarse byte, fine byte, R, G, B planes."""
    labels = np.stack([np.asarray(coarse, np.uint8), np.asarray(fine, np.uint8)], 1)
    return np.concatenate([labels, _planes(images)], axis=1).tobytes()


def write_cifar100_binary(folder, parts):
    """Writes `train.bin` and `test.bin`; returns the folder."""
    os.makedirs(folder, exist_ok=True)
    for name, (images, fine, coarse) in parts.items():
        with open(os.path.join(folder, name + ".bin"), "wb") as f:
            f.write(cifar100_binary_bytes(images, fine, coarse))
    return folder


def python2_cifar100_bytes(images, fine, coarse, batch_label):
    """One CIFAR-100 python file, keys in the order the real files hold them."""
    data = _planes(images)
    return _dict_bytes([
        (b"filenames", lambda p: p.str_list(_file_names(len(fine)))),
        (b"batch_label", lambda p: p.string(batch_label)),
        (b"fine_labels", lambda p: p.int_list(fine)),
        (b"coarse_labels", lambda p: p.int_list(coarse)),
        (b"data", lambda p: p.array(data)),
    ])


def write_cifar100_python(folder, parts):
    """Writes `train` and `test` as Python 2 protocol-2 pickles; returns the folder."""
    os.makedirs(folder, exist_ok=True)
    labels = {"train": "training batch 1 of 1", "test": "testing batch 1 of 1"}
    for name, (images, fine, coarse) in parts.items():
        with open(os.path.join(folder, name), "wb") as f:
            f.write(python2_cifar100_bytes(images, fine, coarse, labels[name]))
    return folder
