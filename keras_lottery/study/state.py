"""A study's state, read from disk only.

    <root>/study.json          the expanded plan and the study file's hash
    <root>/recipe.toml         the recipe, when its fields are given inline
    <root>/study-logs/<id>.log each run's output (appended on every attempt)
    <root>/.claims/            the nodes a driver has dispatched (`claims`)
    <root>/<node id>/          each run's own directory (`keras_lottery.runs`)

A node's status comes from its run.json and from who holds its run's lock
(`<run>/run.lock`, held by the run's own process) or the driver's claim:

| status | on disk |
|---|---|
| finished | run.json says finished |
| running | a live process holds the run's lock, or a live driver its claim |
| resumable | run.json exists, unfinished, nobody alive holds it (killed, interrupted) |
| failed | run.json says failed (a NaN loss, say), not by an interruption |
| blocked | an ancestor failed |
| pending | not started |
"""

import json
import os
import pathlib

from keras_lottery import files
from keras_lottery.runs import locks
from keras_lottery.runs import layout
from keras_lottery.spec import record
from keras_lottery.runs.run import Run
from keras_lottery.errors import LotteryError
from keras_lottery.spec.chainspec import IterateSpec
from keras_lottery.study import claims

SCHEMA = 1
JOBS = "jobs"
RUN_LOCK = "run.lock"
FINISHED, RUNNING, RESUMABLE = "finished", "running", "resumable"
FAILED, BLOCKED, PENDING = "failed", "blocked", "pending"
# A run directory whose run.json or metrics.csv cannot be read: it needs the
# user (restore the file or delete the run), so it is never started again.
DAMAGED = "damaged"
STATUSES = (FINISHED, RUNNING, RESUMABLE, FAILED, DAMAGED, BLOCKED, PENDING)
# Statuses whose dependents cannot start: they are blocked.
DEAD_ENDS = (FAILED, DAMAGED, BLOCKED)
# A run marked failed by Ctrl-C (or a driver passing one on) only stopped.
INTERRUPTED = ("KeyboardInterrupt",)


def log_path(plan, node):
    """Where a node's output goes."""
    return log_in(plan.study.root, node)


def log_in(root, node):
    """Where a node's output goes, under the study root `root`."""
    return layout.node_log(root, node.id)


def read_config(path):
    """A run.json (or iterate.json) as a dict, None when missing or damaged."""
    try:
        config = json.loads(pathlib.Path(path).read_text())
    except (OSError, ValueError):
        return None
    return config if isinstance(config, dict) else None


def _lock_alive(path):
    found = locks.holder(path)
    return found is not None and found["alive"]


def node_status(plan, node, claimed=False):
    """The status of one node, blocked aside (see `statuses`); `claimed`:
    the caller holds the node's claim (so only the run's lock counts)."""
    return status_in(plan.study.root, node, claimed)


def status_in(root, node, claimed=False):
    """`node_status` of a node under the study root `root` (what an
    engine's worker has, without the plan)."""
    path = pathlib.Path(root) / node.id
    exists = (path / layout.RUN_JSON).exists()
    damaged = exists and damage(path) is not None
    config = read_config(path / layout.RUN_JSON) if exists and not damaged else None
    if config is not None and config.get("status") == record.FINISHED:
        return FINISHED
    if _lock_alive(path / RUN_LOCK) or (
            not claimed and claims.alive(root, node.id)):
        return RUNNING
    if not exists:
        return PENDING
    if damaged:
        return DAMAGED
    error = str(config.get("error") or "")
    if config.get("status") == record.FAILED and not error.startswith(INTERRUPTED):
        return FAILED
    return RESUMABLE


def damage(path):
    """Why the run directory `path` cannot be read (its run.json is not a
    JSON object, or a finished run's metrics.csv is damaged), as `lottery
    results` says it; None when it can."""
    run_json = pathlib.Path(path) / layout.RUN_JSON
    config = read_config(run_json)
    if config is None:
        return f"{run_json} is not valid JSON; restore it or delete the run directory"
    try:
        if config.get("status") == record.FINISHED:
            Run(path, config).metrics  # noqa: B018  (a damaged metrics.csv is found here)
    except LotteryError as e:
        return str(e)
    return None


def statuses(plan):
    """{node id: status} of every node, parents first."""
    found = {}
    for node in plan.nodes:
        status = node_status(plan, node)
        if (status != FINISHED and node.parent is not None
                and found[node.parent] in DEAD_ENDS):
            status = BLOCKED
        found[node.id] = status
    return found


def final_statuses(plan, given_up=()):
    """The nodes' statuses on disk after a driver's work, where a node it
    gave up on counts as failed and its descendants as blocked."""
    found = {}
    for node in plan.nodes:
        status = node_status(plan, node)
        if status != FINISHED:
            if node.id in given_up:
                status = FAILED
            elif node.parent is not None and found[node.parent] in DEAD_ENDS:
                status = BLOCKED
        found[node.id] = status
    return found


def count(found):
    """{status: number of nodes} for every status of {node id: status}."""
    counts = {s: 0 for s in STATUSES}
    for status in found.values():
        counts[status] += 1
    return counts


def remaining_steps(plan, node, status):
    """Training steps a node still has to make."""
    if status == FINISHED:
        return 0
    if status in (PENDING, BLOCKED):
        return node.steps
    try:
        run = Run.open(plan.path(node))
        saved = [k for k in run.checkpoints if isinstance(k, int)]
        saved += list(run.resume_states)
        done = max(saved) - run.start_step if saved else 0
    except (LotteryError, KeyError, TypeError):
        return node.steps
    return max(0, node.steps - done)


def failure(plan, node):
    """The error a failed run recorded, one line."""
    config = read_config(plan.path(node) / layout.RUN_JSON) or {}
    return str(config.get("error") or "no error recorded").splitlines()[0]


def write(plan):
    """Writes study.json and the recipe file of inline fields (atomically),
    keeping the cluster jobs it records (`write_jobs`)."""
    study = plan.study
    study.root.mkdir(parents=True, exist_ok=True)
    if study.recipe_fields:
        files.write_atomic(study.root / layout.STUDY_RECIPE, recipe_text(study))
    saved = read(study.root) or {}
    files.write_json(study.root / layout.STUDY_JSON, {
        "schema": SCHEMA,
        "file": str(pathlib.Path(study.path).resolve()),
        "file_sha256": study.sha256,
        "root": str(study.root),
        "counts": plan.counts(),
        "total_steps": plan.total_steps,
        "nodes": [node.to_dict() for node in plan.nodes],
        JOBS: saved.get(JOBS, []),
    })


def jobs(root):
    """The cluster jobs study.json records: a list of dicts with at least
    "engine", "id" (a Slurm job or array id) and "nodes"."""
    return list((read(root) or {}).get(JOBS, []))


def write_jobs(root, records):
    """Replaces the cluster jobs study.json records (it must exist)."""
    saved = read(root)
    if saved is None:
        raise LotteryError(f"no study.json under {root}; the study was never run")
    files.write_json(pathlib.Path(root) / layout.STUDY_JSON, dict(saved, **{JOBS: list(records)}))


def read(root):
    """The study.json dict under `root`, or None."""
    return read_config(pathlib.Path(root) / layout.STUDY_JSON)


def recipe_text(study):
    """The recipe file of inline fields: the preset, then each field."""
    lines = [f"preset = {_toml(study.recipe_preset)}"]
    lines += [f"{name} = {_toml(value)}" for name, value in study.recipe_fields]
    return "# Written by lottery study from " + str(study.path) + "\n" + "\n".join(lines) + "\n"


def _toml(value):
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):  # a Keras optimizer's config: an inline table
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + "}"
    return repr(value)


def check_disk(plan):
    """Refuses a plan that would alter runs already on disk.

    Every node whose run directory (or iterative study) exists is compared
    with what the study file asks for now (a damaged one cannot be: it is
    reported as damaged instead, and left alone).

    Raises:
        LotteryError: one line with the first difference and how many more.
    """
    found = []
    for node in plan.nodes:
        found += _differences(plan, node)
    if found:
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise LotteryError(
            f"the study file would change runs already on disk under "
            f"{plan.study.root}: {found[0]}{more}; restore the file, delete "
            "those runs, or choose another root"
        )


def _differences(plan, node):
    found = []
    if node.chain is not None and node.round == 1:
        found += _chain_differences(plan, node)
    path = plan.path(node)
    if not (path / layout.RUN_JSON).exists():
        return found
    try:
        spec = Run.open(path).spec
    except LotteryError:
        return found  # damaged: left alone, and reported as such
    study = plan.study
    parent = None if node.parent is None else str(plan.path(node.parent).resolve())
    density = None if node.kind == "base" else node.density
    wanted = {"mode": node.method, "arch": node.arch, "dataset": study.dataset,
              "seed": node.seed, "iteration": node.iteration, "round": node.round,
              "val_split": study.val_split, "parent": parent}
    for field, value in wanted.items():
        if getattr(spec, field) != value:
            found.append(f"{node.id}: {field} {getattr(spec, field)!r} on disk, "
                         f"{value!r} in the file")
    if (density is None) != (spec.target_density is None) or (
            density is not None and abs(density - spec.target_density) > 1e-9):
        found.append(f"{node.id}: density {spec.target_density!r} on disk, "
                     f"{density!r} in the file")
    for field in ("filters", "level"):
        theirs = getattr(spec, field)
        mine = getattr(node, field)
        if (tuple(mine) if isinstance(mine, list) else mine) != theirs:
            found.append(f"{node.id}: {field} {theirs!r} on disk, {mine!r} in the file")
    if node.kind == "base":
        found += _recipe_differences(node, spec.recipe.to_dict(), study.recipe.to_dict())
    return found


def _recipe_differences(node, disk, wanted):
    changed = [k for k in wanted if k != "preset" and disk.get(k) != wanted[k]]
    return [f"{node.id}: recipe {k} {disk.get(k)!r} on disk, {wanted[k]!r} in the file"
            for k in changed]


def _chain_differences(plan, node):
    path = plan.study.root / node.chain / layout.CHAIN_JSON
    config = read_config(path)
    if config is None:
        return []
    try:
        spec = IterateSpec.from_config(config, path.parent)
    except (LotteryError, TypeError):
        return [f"{node.chain}: {layout.CHAIN_JSON} is damaged; delete the folder"]
    wanted = {"method": node.method, "iteration": node.iteration,
              "rate": node.rate, "seed": node.seed,
              "parent": str(plan.path(node.parent).resolve())}
    return [f"{node.chain}: {field} {getattr(spec, field)!r} on disk, {value!r} "
            "in the file" for field, value in wanted.items()
            if getattr(spec, field) != value]


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _dead_temporary(path):
    """Whether `path` is a temporary file whose writer (by its pid) is gone."""
    name = path.name
    if not name.startswith(files.TEMPORARY_PREFIX):
        return False
    pid = name[len(files.TEMPORARY_PREFIX):].split("-", 1)[0]
    return pid.isdigit() and not _pid_alive(int(pid))


def tidy_before_start(plan, node):
    """Clears what killed processes left where a node's run is about to
    start: a run directory (or iterative study) that holds no run.json
    (iterate.json) yet, only a dead temporary file or lock, would be
    refused as "not empty" by the command."""
    tidy_in(plan.study.root, node)


def tidy_in(root, node):
    """`tidy_before_start` under the study root `root`."""
    root = pathlib.Path(root)
    folders = [(root / node.id, layout.RUN_JSON)]
    if node.chain is not None:
        folders.append((root / node.chain, layout.CHAIN_JSON))
    for folder, marker in folders:
        if not folder.is_dir() or (folder / marker).exists():
            continue
        for path in folder.iterdir():
            if _dead_temporary(path) or (path.name == RUN_LOCK and not _lock_alive(path)):
                path.unlink(missing_ok=True)


def tidy_nodes(root, nodes):
    """What a cluster job tidies after its runs: their dead locks once
    finished, dead temporary files in their folders, dead claims; not the
    whole root, where runs of other hosts write."""
    root = pathlib.Path(root)
    claims.remove_dead(root)
    for node in nodes:
        folder = root / node.id
        if not folder.is_dir():
            continue
        lock = folder / RUN_LOCK
        if status_in(root, node) == FINISHED and lock.exists() and not _lock_alive(lock):
            lock.unlink(missing_ok=True)
        for path in folder.rglob(f"{files.TEMPORARY_PREFIX}*"):
            if path.is_file() and _dead_temporary(path):
                path.unlink(missing_ok=True)


def tidy_root(plan, found):
    """After a driver's work: removes dead claims, the dead locks of
    finished runs and dead temporary files anywhere under the root."""
    root = plan.study.root
    claims.remove_dead(root)
    for node in plan.nodes:
        lock = plan.path(node) / RUN_LOCK
        if found.get(node.id) == FINISHED and lock.exists() and not _lock_alive(lock):
            lock.unlink(missing_ok=True)
    if root.is_dir():
        for path in root.rglob(f"{files.TEMPORARY_PREFIX}*"):
            if path.is_file() and _dead_temporary(path):
                path.unlink(missing_ok=True)
