"""Byte-for-byte snapshots of directory trees, to show that a command left
existing runs untouched, and the tensors of a checkpoint file, to compare
runs by value."""

import pathlib

import h5py


def snapshot(root):
    """{relative path: bytes} of every file under `root`, plus its folders."""
    root = pathlib.Path(root)
    if not root.exists():
        return {}
    return {
        str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
        for p in sorted(root.rglob("*"))
    }


def tensors(path):
    """{dataset name: array} of every array in a `.weights.h5` file."""
    found = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, item: found.__setitem__(name, item[()])
                     if isinstance(item, h5py.Dataset) else None)
    return found
