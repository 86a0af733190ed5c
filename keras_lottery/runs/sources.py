"""What the result and analysis tools take: runs, folders of runs and
study files.

An item is a `Run`, a run directory, a folder of runs (a study's root: every
run directory under it, `layout.find_runs`), or a study file (`*.toml`) whose
`[study] root = "..."` names that folder (relative to the file's own folder;
`runs/<its name>` when it names none, as studies have it). Expanding a
folder leaves out the copies that stability analyses keep inside it (the
run directories of a folder holding a `stability.json`): they are results
of an analysis, not runs of the study; name them directly to include them.

`expand` refuses a damaged run (the analyses need each run whole);
`expand(..., damaged=...)` reports and skips it instead (the tables and
figures: one damaged run must not hide every other result).

Imports no TensorFlow, so the command line can expand its arguments first.
"""

import os
import pathlib

from keras_lottery.runs import layout

from keras_lottery.runs.run import Run
from keras_lottery import tomlfiles
from keras_lottery.errors import LotteryError

STUDY_SUFFIX = ".toml"


def is_study(item):
    """Whether `item` names several runs (a folder of runs or a study
    file) rather than one run."""
    if isinstance(item, Run):
        return False
    path = pathlib.Path(item)
    if path.suffix == STUDY_SUFFIX and path.is_file():
        return True
    return path.is_dir() and not (path / layout.RUN_JSON).exists()


def expand(items, *, param="runs", damaged=None):
    """The `Run`s that `items` name, in order, each checked (`Run.check`).

    Args:
        items: one item or a list of them: `Run`s, run directories, folders
            of runs, study files.
        param: the argument to name in errors.
        damaged: None: a damaged run (run.json or metrics.csv) is an error;
            else `damaged(path, error)` is told of it and it is left out.

    Raises:
        LotteryError: an item is missing, not a run, or a folder or study
            holding no runs.
    """
    if isinstance(items, (str, os.PathLike, Run)):
        items = [items]
    found = []
    for item in items:
        if isinstance(item, Run):
            found.append(item.check())
        elif is_study(item):
            paths = _run_paths(_folder_of(pathlib.Path(item), param), item, param)
            found += [r for r in (_open(p, damaged) for p in paths) if r is not None]
        else:
            found += [r for r in [_open(item, damaged)] if r is not None]
    return found


def _open(path, damaged):
    try:
        run = Run.open(path).check()
        if damaged is not None:
            run.metrics  # noqa: B018  (a damaged metrics.csv is found here)
        return run
    except LotteryError as e:
        if damaged is None:
            raise
        damaged(path, e)
        return None


def study_root(path, param="runs"):
    """The root folder a study file names in `[study] root = "..."`."""
    path = pathlib.Path(path)
    try:
        config = tomlfiles.read(path)
    except (OSError, ValueError) as e:
        raise LotteryError(
            f"cannot be read as a study file ({str(e).splitlines()[0]}); fix "
            "the file or name the study's root folder instead",
            param=param, value=str(path),
        ) from None
    root = (config.get("study") or {}).get("root", layout.study_root(path.stem))
    if not isinstance(root, str) or not root:
        raise LotteryError(
            'names no root folder; a study file holds [study] root = "FOLDER"',
            param=param, value=str(path),
        )
    return path.parent / root


def _folder_of(path, param):
    if path.is_file():
        folder = study_root(path, param)
        if not folder.is_dir():
            raise LotteryError(
                f"names the root {folder}, which does not exist yet; run the "
                "study first", param=param, value=str(path),
            )
        return folder
    return path


def _run_paths(folder, named, param):
    paths = [p for p in layout.find_runs(folder)
             if not (p.parent / layout.STABILITY_JSON).exists()]
    if not paths:
        raise LotteryError(
            "holds no run directories (none with a run.json under it); name "
            "run directories or a study that has run", param=param,
            value=str(named),
        )
    return paths
