"""Which run (or `iterate` study) a request means: the one place that scans
existing runs for a match and draws seeds.

A request is a `RunSpec` whose seed may be None ("draw one"). With a seed or
an `out` directory, the run is the one at that directory, which must have
been made by an equal request (a different run there is refused, never
overwritten). With neither, it is the run under `root` made by an equal
request with a drawn seed, so re-running a command resumes its run; a new
seed is drawn when there is none.
"""

import collections
import json
import pathlib
import random

from keras_lottery import runs
from keras_lottery.errors import LotteryError
from keras_lottery.spec import IterateSpec

Resolved = collections.namedtuple("Resolved", ["run", "path", "spec", "seed_drawn"])


def draw_seed():
    """A fresh seed, recorded in run.json so the run can be reproduced."""
    return random.SystemRandom().randrange(10**6)


def resolve(request, *, out=None, root=runs.DEFAULT_ROOT):
    """Finds the run `request` names, or where a new one goes.

    Returns:
        `Resolved(run, path, spec, seed_drawn)`: the existing `Run` (or
        None), its directory, the spec with its seed, and whether the seed
        was drawn rather than given.

    Raises:
        LotteryError: `out` holds a different run or other files, or
            several unfinished runs match.
    """
    if out is None and request.seed is None:
        found = _matching_runs(request, root)
        unfinished = [r for r in found if r.status != runs.FINISHED]
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
    out = pathlib.Path(out) if out is not None else runs.default_out(spec, root)
    if (out / runs.RUN_JSON).exists():
        run = runs.Run.open(out).check()
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
    for path in runs.find_runs(root):
        try:
            run = runs.Run.open(path)
            if run.config.get("seed_drawn") and run.spec.replace(seed=None) == request:
                found.append(run)
        except LotteryError:
            continue  # a damaged run matches nothing
    return found


def base_run(root=runs.DEFAULT_ROOT):
    """The single finished `train` run under `root`, the default parent."""
    root = pathlib.Path(root)
    found = []
    for path in runs.find_runs(root):
        try:
            config = json.loads((path / runs.RUN_JSON).read_text())
        except (OSError, ValueError):
            continue
        if config.get("mode") == "train" and config.get("status") == runs.FINISHED:
            found.append(path)
    if len(found) == 1:
        return found[0]
    listing = ", ".join(map(str, found)) if found else "none"
    raise LotteryError(
        f"need exactly one finished train run under {root}/ to use as the "
        f"parent, found {len(found)} ({listing}); name the parent run",
        param="parent", value=None,
    )


def resolve_study(request, *, arch, out=None, root=runs.DEFAULT_ROOT):
    """Finds the `iterate` study `request` (an `IterateSpec`) names.

    Returns:
        `Resolved(None, path, spec, seed_drawn)` with `spec` read from the
        study's iterate.json when it exists; a new study's directory is
        free to create.
    """
    if out is None and request.seed is None:
        for path in sorted(pathlib.Path(root).glob(f"**/{runs.STUDY_JSON}")):
            spec, config = _read_study(path)
            if (spec is not None and config.get("seed_drawn")
                    and spec.replace(seed=None) == request):
                return Resolved(None, path.parent, spec, True)
    spec = request if request.seed is not None else request.replace(seed=draw_seed())
    if out is None:
        k = "" if spec.iteration is None else f"-k{spec.iteration}"
        command = spec.method.replace("_", "-")
        out = (pathlib.Path(root) / arch
               / f"iterate-{command}{k}-r{spec.rate * 100:.4g}-s{spec.seed}")
    out = pathlib.Path(out)
    path = out / runs.STUDY_JSON
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
                         or any(p.name != runs.LOCK for p in out.iterdir())):
        raise LotteryError(
            f"exists and is not {what} or an empty one; choose another",
            param="out", value=str(out),
        )
