"""Atomic file writing: the one place that writes files readers may see.

Every file of a run is written to a temporary name in the same folder and
renamed, so a reader never sees half a file; a killed writer leaves only a
`.tmp-*` file, which resuming deletes. The temporary name keeps the file's
ending (`.weights.h5`, `.json`), which Keras and readers check.
"""

import contextlib
import json
import os
import pathlib

TEMPORARY_PREFIX = ".tmp-"


def temporary_path(path):
    """A sibling temporary name of `path` that keeps its ending."""
    path = pathlib.Path(path)
    return path.with_name(f"{TEMPORARY_PREFIX}{os.getpid()}-{path.name}")


@contextlib.contextmanager
def replacing(path):
    """Yields a temporary path to write; on success it replaces `path`.

    If the body fails (a full disk, say), the temporary file is removed and
    `path` keeps its previous content.

    Example:

    >>> with replacing("ckpt/state.weights.h5") as tmp:
    ...     model.save_weights(tmp)
    """
    path = pathlib.Path(path)
    tmp = temporary_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_atomic(path, text):
    """Writes `text` to `path` through a temporary file, fsync and rename."""
    with replacing(path) as tmp:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())


def write_json(path, value):
    """Writes a JSON file atomically, as every run file is written."""
    write_atomic(path, json.dumps(value, indent=2) + "\n")


def remove_temporary_files(*folders):
    """Deletes what killed writers left behind in `folders`."""
    for folder in folders:
        for path in pathlib.Path(folder).glob(f"{TEMPORARY_PREFIX}*"):
            path.unlink()
