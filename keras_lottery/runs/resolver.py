"""Which run, `iterate` chain or instability analysis a request means: the
one place that scans what exists for a match and draws seeds.

A request is a `RunSpec` whose seed may be None ("draw one"). With a seed or
an `out` directory, the run is the one at that directory, which must have
been made by an equal request (a different run there is refused, never
overwritten). With neither, it is the run under `root` made by an equal
request with a drawn seed, so re-running a command resumes its run; a new
seed is drawn when there is none.
"""

import collections
import json
import os
import pathlib
import random

from keras_lottery.runs import layout

from keras_lottery.spec import methods
from keras_lottery.spec import record

from keras_lottery.runs.run import Run
from keras_lottery.errors import LotteryError
from keras_lottery.spec.chainspec import IterateSpec

Resolved = collections.namedtuple("Resolved", ["run", "path", "spec", "seed_drawn"])


def draw_seed():
    """A fresh seed, recorded in run.json so the run can be reproduced."""
    return random.SystemRandom().randrange(10**6)


def resolve(request, *, out=None, root=None):
    """Finds the run `request` names, or where a new one goes.

    Returns:
        `Resolved(run, path, spec, seed_drawn)`: the existing `Run` (or
        None), its directory, the spec with its seed, and whether the seed
        was drawn rather than given.

    Raises:
        LotteryError: `out` holds a different run or other files, or
            several unfinished runs match.
    """
    root = layout.DEFAULT_ROOT if root is None else root
    if out is None and request.seed is None:
        found = _matching_runs(request, root)
        unfinished = [r for r in found if r.status != record.FINISHED]
        if len(unfinished) > 1:
            raise LotteryError(
                f"{len(unfinished)} unfinished runs match this command ("
                f"{', '.join(str(r.path) for r in unfinished)}); name the one "
                "to resume", param="out", value=None,
            )
        if unfinished or found:
            run = (unfinished or found)[0]
            return Resolved(run, run.path, run.spec, True)
    spec = request if request.seed is not None else request.replace(seed=draw_seed())
    out = pathlib.Path(out) if out is not None else layout.default_out(spec, root)
    if (out / layout.RUN_JSON).exists():
        run = Run.open(out).check()
        mine = run.spec if request.seed is not None else run.spec.replace(seed=None)
        differ = mine.differences(request)
        if differ:
            raise LotteryError(
                f"holds a different {run.status} run ({'; '.join(differ)}); "
                "to resume it re-run the command that started it (see its "
                "run.json), to replace it delete the directory, or choose "
                "another directory", param="out", value=str(out),
            )
        return Resolved(run, out, run.spec, bool(run.config.get("seed_drawn")))
    _check_free(out, "a run directory")
    return Resolved(None, out, spec, request.seed is None)


def _matching_runs(request, root):
    found = []
    for path in layout.find_runs(root):
        try:
            run = Run.open(path)
            if run.config.get("seed_drawn") and run.spec.replace(seed=None) == request:
                found.append(run)
        except LotteryError:
            continue  # a damaged run matches nothing
    return found


def base_run(root=layout.DEFAULT_ROOT):
    """The single finished `train` run under `root`, the default parent."""
    root = pathlib.Path(root)
    found = []
    for path in layout.find_runs(root):
        try:
            config = json.loads((path / layout.RUN_JSON).read_text())
        except (OSError, ValueError):
            continue
        if config.get("mode") == methods.TRAIN.name and config.get("status") == record.FINISHED:
            found.append(path)
    if len(found) == 1:
        return found[0]
    listing = ", ".join(map(str, found)) if found else "none"
    raise LotteryError(
        f"need exactly one finished train run under {root}/ to use as the "
        f"parent, found {len(found)} ({listing}); name the parent run",
        param="parent", value=None,
    )


def resolve_study(request, *, arch, out=None, root=None):
    """Finds the `iterate` study `request` (an `IterateSpec`) names.

    Returns:
        `Resolved(None, path, spec, seed_drawn)` with `spec` read from the
        study's iterate.json when it exists; a new study's directory is
        free to create.
    """
    root = layout.DEFAULT_ROOT if root is None else root
    if out is None and request.seed is None:
        for path in sorted(pathlib.Path(root).glob(f"**/{layout.CHAIN_JSON}")):
            spec, config = _read_study(path)
            if (spec is not None and config.get("seed_drawn")
                    and spec.replace(seed=None) == request):
                return Resolved(None, path.parent, spec, True)
    spec = request if request.seed is not None else request.replace(seed=draw_seed())
    out = pathlib.Path(out) if out is not None else layout.chain_out(spec, arch, root)
    path = out / layout.CHAIN_JSON
    if path.exists():
        found, config = _read_study(path)
        if found is None:
            raise LotteryError(f"{path} is not valid JSON; delete the study "
                               "directory to start over")
        mine = found if request.seed is not None else found.replace(seed=None)
        if mine != request:
            raise LotteryError(
                f"holds a different iterative study ({found.method} from "
                f"{config.get('parent')}, k={found.iteration}, rate "
                f"{found.rate}, seed {found.seed}); choose another directory, "
                "or delete it to start over", param="out", value=str(out),
            )
        return Resolved(None, out, found, bool(config.get("seed_drawn")))
    _check_free(out, "a study directory")
    return Resolved(None, out, spec, request.seed is None)


def _read_study(path):
    try:
        config = json.loads(path.read_text())
        return IterateSpec.from_config(config, path.parent), config
    except (OSError, ValueError, TypeError):
        return None, {}


def _check_free(out, what):
    # A lone lock is a run being started by another process; locking tells.
    if out.exists() and (not out.is_dir()
                         or any(p.name != layout.LOCK for p in out.iterdir())):
        raise LotteryError(
            f"exists and is not {what} or an empty one; choose another",
            param="out", value=str(out),
        )


def resolve_stability(parent, iteration, density, seed, *, out=None, many=False):
    """(folder, seed, drawn) of the instability analysis of the run at
    `parent` at k = `iteration`, copies pruned to `density` (or None).

    With no seed, the analysis a call without one made before is found
    again (its drawn seed recorded), or a seed is drawn. The folder is
    `out`, or (for several analyses, `many`) inside it, or beside the run;
    a folder holding something else is refused.
    """
    parent = pathlib.Path(parent)
    real = os.path.realpath(parent)
    if seed is None and (out is None or many):
        place = pathlib.Path(out) if out is not None else parent.parent
        prefix = layout.stability_name(parent.name, iteration, density, None)
        for found in sorted(place.glob(f"{prefix}*/{layout.STABILITY_JSON}")):
            config = read_stability(found)
            if config.get("seed_drawn") and _same(config, found.parent, real, iteration, density):
                return found.parent, config["seed"], True
        seed, drawn = draw_seed(), True
    else:
        drawn = seed is None
        seed = draw_seed() if drawn else seed
    name = layout.stability_name(parent.name, iteration, density, seed)
    path = parent.parent / name if out is None else pathlib.Path(out)
    if many and out is not None:
        path = pathlib.Path(out) / name
    stored = path / layout.STABILITY_JSON
    if stored.exists():
        config = read_stability(stored)
        if not _same(config, path, real, iteration, density) or (
                not drawn and config.get("seed") != seed):
            raise LotteryError(
                f"holds a different stability analysis (of {config.get('parent')} "
                f"at k={config.get('iteration')}, density "
                f"{config.get('density')}, seed {config.get('seed')}); choose "
                "another folder, or delete it to start over",
                param="out", value=str(path))
        return path, config["seed"], bool(config.get("seed_drawn"))
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise LotteryError("exists and is not a stability analysis or an "
                           "empty folder; choose another", param="out",
                           value=str(path))
    return path, seed, drawn


def read_stability(path):
    """A stability.json, or a LotteryError naming the fix."""
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise LotteryError(f"{path} cannot be read ({e}); delete its folder to "
                           "start the analysis over") from None
    if not isinstance(config, dict):
        raise LotteryError(f"{path} is not a stability analysis; delete its "
                           "folder to start the analysis over")
    return config


def _same(config, folder, parent, k, density):
    stored = config.get("parent_absolute")
    relative = config.get("parent")
    if relative is not None and (folder / relative).exists():
        stored = os.path.realpath(folder / relative)
    return (stored == parent and config.get("iteration") == k
            and config.get("density") == density)
