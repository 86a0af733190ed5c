"""Byte-for-byte snapshots of directory trees, to show that a command left
existing runs untouched."""

import pathlib


def snapshot(root):
    """{relative path: bytes} of every file under `root`, plus its folders."""
    root = pathlib.Path(root)
    if not root.exists():
        return {}
    return {
        str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
        for p in sorted(root.rglob("*"))
    }
