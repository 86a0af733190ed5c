"""The stages every procedure composes: loading the data, locking the run
directory, setting up a derived run's start state, and the shared body of
the derived procedures (`derive`)."""

import contextlib
import pathlib
import shutil
import warnings

import keras

from keras_lottery import data as data_lib
from keras_lottery import locks
from keras_lottery import parents
from keras_lottery import pruning
from keras_lottery import resolver
from keras_lottery import runs
from keras_lottery import training
from keras_lottery.errors import LotteryError
from keras_lottery.execution import Execution
from keras_lottery.state import load_state

# Datasets that are generated (synthetic) use a fixed seed, so the data is
# the same for every run, like a real dataset; `seed` is the run's.
DATA_SEED = 0


def derive(method, parent, args):
    """The shared body of every derived procedure: `method` (a
    `methods.Method`) from `parent`, with `args` the procedure's keyword
    arguments (those of `procedures.rewind`, plus `lr` and `round_index`)."""
    parent = parents.open_parent(parent, args["root"])
    parents.check_precision(parent, args["mixed_precision"])
    execution = Execution(args["jit_compile"], args["mixed_precision"],
                          args["steps_per_execution"], args["strategy"])
    spec = parents.child_spec(method, parent, args, execution.precision)
    found = resolver.resolve(spec, out=args["out"], root=args["root"])
    if finished(found, args["verbose"]):
        return found.run
    data_dir = args["data_dir"] or parent.config.get("data_dir")
    data = parents.load_data(parent, args["dataset"], data_dir, DATA_SEED)
    start, end = method.bounds(steps=spec.recipe.steps, iteration=spec.iteration,
                               parent_end=parent.end_step)
    model_json = parents.model_json(parent)
    with locked(found.path), execution.building():
        seed = found.spec.seed
        keras.utils.set_random_seed(_init_seed(method, seed, parent.spec.seed))
        model = execution.prepare(parents.rebuild(parent, model_json, data))
        training.compile_model(model, spec.recipe, execution, lr=spec.lr)
        run, position = training.open_run(
            found, model, facts=facts(data, data_dir, execution),
            model_json=model_json, verbose=args["verbose"], bounds=(start, end),
            prepare=lambda: _prepare(method, model, parent, found.spec, data,
                                     execution, start))
        training.fit(run, model, data, training.plan_for(found.spec, run, args["save_every"]),
                     position=position, verbose=args["verbose"], callbacks=args["callbacks"])
    return run


def _prepare(method, model, parent, spec, data, execution, start):
    """The start state of a derived run: masks from the parent's final
    state (its magnitudes, or random among its survivors: they nest in the
    parent's masks either way), weights from the method's source; or,
    for a method that prunes nothing, the parent's whole state at k."""
    if not method.prunes:
        load_state(model, parent.checkpoints[spec.iteration], spec.iteration)
        model.optimizer.iterations.assign(start)
        return
    fresh = method.state == "init"
    source = parents.rebuild(parent, parents.model_json(parent), data) if fresh else model
    if fresh:
        training.compile_model(source, spec.recipe, execution, lr=spec.lr)
    load_state(source, parent.checkpoints["final"], parent.end_step)
    excluded = check_exclude(source, spec.exclude)
    check_layer_densities(source, spec.layer_densities)
    if method.masks == "random":
        ranked = {k: m for k, m in pruning.get_masks(source).items() if k not in excluded}
        masks = pruning.random_masks(ranked, spec.target_density, seed=spec.seed)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            masks = pruning.prune(source, spec.target_density, scope=spec.scope,
                                  exclude=spec.exclude,
                                  layer_densities=dict(spec.layer_densities))
    kept = sum(int(m.sum()) for m in masks.values())
    if kept == 0:
        total = sum(m.size for m in masks.values())
        raise LotteryError(
            f"keeps no weight (round(density x {total:,}) = 0); ask for at "
            f"least {1 / total:.2g}", param="density", value=spec.target_density,
        )
    if method.state == "k":
        load_state(model, parent.checkpoints[spec.iteration], spec.iteration)
    model.optimizer.iterations.assign(start)
    pruning.set_masks(model, masks)


def check_exclude(model, exclude):
    """The mask keys `exclude` names in `model`, checked before anything is
    written: every name is a masked layer, and something is left to prune."""
    try:
        excluded = pruning.excluded_keys(model, exclude)
    except ValueError as e:
        raise LotteryError(str(e).rstrip("."), param="exclude", value=list(exclude)) from None
    if exclude and len(excluded) == len(pruning.get_masks(model)):
        raise LotteryError("leaves no layer to prune; exclude fewer",
                           param="exclude", value=list(exclude))
    return excluded


def check_layer_densities(model, layer_densities):
    """Every layer given a density of its own is a masked layer of `model`."""
    try:
        pruning.excluded_keys(model, [name for name, _ in layer_densities])
    except ValueError as e:
        message = str(e).rstrip(".").replace("exclude names", "names", 1)
        raise LotteryError(message, param="layer_rates",
                           value=dict(layer_densities)) from None


def _init_seed(method, seed, parent_seed):
    # reinit: never the parent's own initialization (that would be
    # rewinding to 0), even with the parent's seed.
    if method.derived and method.state == "init":
        return (seed * 1_000_003 + parent_seed + 1) % 2**31
    return seed


@contextlib.contextmanager
def locked(path):
    """Holds the run directory's lock while its run trains, so a second
    process refuses in one line instead of training it twice; a directory
    made only for the lock goes again if nothing else was written."""
    made = missing_folders(path)
    path.mkdir(parents=True, exist_ok=True)
    # Refused: the folder is the holder's, left as it is.
    lock = locks.Lock(path / runs.LOCK, what=str(path)).acquire()
    try:
        yield
    finally:
        lock.release()
        remove_unused(made)


def missing_folders(path):
    """`path` and those of its parents that do not exist, innermost first."""
    path = pathlib.Path(path)
    return [p for p in (path, *path.parents) if not p.exists()]


def remove_unused(made, keep=(runs.LOCK,)):
    """Removes the folders `made` (from `missing_folders`) when the first
    holds nothing but files named in `keep` and the others nothing at all:
    bad input found after the folders were made leaves nothing behind."""
    if not made or not made[0].is_dir() or any(
            p.name not in keep for p in made[0].iterdir()):
        return
    shutil.rmtree(made[0], ignore_errors=True)
    for folder in made[1:]:
        try:
            folder.rmdir()
        except OSError:  # not empty (another run's), or gone
            return


def finished(found, verbose):
    if found.run is not None and found.run.status == runs.FINISHED:
        if verbose:
            print(f"{found.run.path} is already finished; nothing to do")
        return True
    return False


def facts(data, data_dir, execution):
    """What run.json records besides the spec: where the data was read
    from, its fingerprint, how the run executes."""
    return {"data_dir": None if data_dir is None else str(data_dir),
            "data_sha256": data.fingerprint, "input_shape": list(data.image_shape),
            "num_classes": data.num_classes, "execution": execution.to_dict()}


def load_data(dataset, data_dir):
    if isinstance(dataset, data_lib.Dataset):
        return dataset
    return data_lib.load(dataset, data_dir, seed=DATA_SEED)
