"""The life of a run, shared by `train` and every derived method.

A procedure resolves its request into a `Job`: the run it means (found on
disk or new), its data and how to build its model and start state. `run`
then does what every run does:

    finished already? -> lock the directory -> seed -> build -> compile
    -> resume the latest saved state, or set up the start state and create
    run.json -> plan the segments -> fit -> finished (or failed, or
    interrupted: resumable)

so calling a procedure again resumes an interrupted run, returns a finished
one unchanged, and a second process refuses in one line instead of
training the same run twice.
"""

import contextlib
import dataclasses
import os
import pathlib
import shutil
import warnings

import keras

from keras_lottery import data as data_lib
from keras_lottery.runs import layout
from keras_lottery.runs import locks
from keras_lottery.runs.run import Run
from keras_lottery.runs.run import versions
from keras_lottery.sparse import pruning
from keras_lottery.spec import record
from keras_lottery.spec import recipe as recipe_lib
from keras_lottery.spec.record import RunRecord
from keras_lottery.training import compile as compile_lib
from keras_lottery.training import evaluation
from keras_lottery.training import keras_optimizers
from keras_lottery.training import loop
from keras_lottery.training import timing
from keras_lottery.training.state import load_state

# Datasets that are generated (synthetic) use a fixed seed, so the data is
# the same for every run, like a real dataset; `seed` is the run's.
DATA_SEED = 0


@dataclasses.dataclass(frozen=True)
class Job:
    """A resolved request: everything `run` needs.

    Attributes:
        found: the run it means (`keras_lottery.runs.resolver.Resolved`).
        data: its `keras_lottery.data.Dataset`.
        data_dir: the folder the data was read from (recorded), or None.
        execution: its `Execution`.
        build: () -> a freshly initialized, uncompiled model.
        bounds: the (first, last) iteration of a new run.
        init_seed: the seed the model is built under.
        model_json: the config of a model of the user's own, stored with it.
        prepare: (model) -> None, setting a new derived run's start state
            (masks, weights, iteration) into the compiled model; None for a
            run from scratch.
        save_every: steps between resume states.
        root: the root its default directory went under (recorded for its
            children), or None when its directory was given.
        clock: the `timing.Stopwatch` started with the request (None: one
            starts with the run).
    """

    found: object
    data: object
    data_dir: object
    execution: object
    build: object
    bounds: tuple
    init_seed: int
    model_json: str = None
    prepare: object = None
    save_every: int = 1000
    root: object = None
    clock: object = None

    @property
    def spec(self):
        return self.found.spec


def run(job, *, verbose=1, callbacks=None, check=None):
    """Trains `job`'s run to its end (or returns it, finished already).

    `check(model)` is called on the built model before anything is written
    (a model of the user's own must fit the data).
    """
    if finished(job.found, verbose):
        return job.found.run
    spec = job.spec
    clock = timing.stopwatch(job.clock)
    with locked(job.found.path), job.execution.building():
        clock.switch("build")
        keras.utils.set_random_seed(job.init_seed)
        model = job.execution.prepare(job.build())
        if check is not None:
            check(model)
        clock.switch("compile")
        compile_lib.compile_model(model, spec.recipe, job.execution, lr=spec.lr)
        clock.switch("build")
        the_run, position = open_run(job, model, verbose, clock)
        loop.fit(the_run, model, job.data, plan_for(spec, the_run, job.save_every),
                 position=position, verbose=verbose, callbacks=callbacks, clock=clock)
    return the_run


def open_run(job, model, verbose, clock):
    """(run, position): the run resumed into `model`, or created after
    `job.prepare` set up its start state."""
    found = job.found
    with clock.phase("checkpoint"):
        position = resume(found.run, model, verbose) if found.run else None
    if position is None and job.prepare is not None:
        job.prepare(model)
    if found.run is not None:
        return found.run, position
    with clock.phase("checkpoint"):
        return _create(job, model), position


def _create(job, model):
    """The run directory of a new run, its start state set in `model`."""
    found, data = job.found, job.data
    start, end = job.bounds
    new = Run.create(found.path, found.spec, RunRecord(
        status=record.RUNNING, start_step=start, end_step=end,
        density=pruning.density(model, found.spec.exclude), seed_drawn=found.seed_drawn,
        root=None if job.root is None else pathlib.Path(
            os.path.relpath(job.root, found.path)).as_posix(),
        data_dir=None if job.data_dir is None else str(job.data_dir),
        data_sha256=data.fingerprint, input_shape=data.image_shape,
        num_classes=data.num_classes, execution=job.execution.to_dict(),
        backend=keras.backend.backend(), versions=versions()))
    if job.model_json is not None:
        new.write_model_config(job.model_json)
    evaluation.write_hparams(new.path / layout.LOGS_DIR / "hparams", found.spec)
    return new


def resume(run, model, verbose=1):
    """Loads the latest saved state of an unfinished run into `model`.

    Returns its step, or None when the run saved nothing yet (it then starts
    over, which gives the same result: initialization and data order are
    functions of the seed).
    """
    run.check()
    run.remove_temporary_files()
    start, end = run.start_step, run.end_step
    states = {i: p for i, p in run.checkpoints.items()
              if isinstance(i, int) and start <= i <= end}
    states.update({i: p for i, p in run.resume_states.items() if start <= i <= end})
    if "final" in run.checkpoints:
        states[end] = run.checkpoints["final"]
    if not states:
        run.set_status(record.RUNNING)
        return None
    step = max(states)
    load_state(model, states[step], step)
    if run.backend not in (None, keras.backend.backend()):
        warnings.warn(f"{run.path} trained on {run.backend} to step {step} and resumes "
                      f"on {keras.backend.backend()}: its later steps are "
                      f"{keras.backend.backend()}'s (runs repeat bit for bit on one "
                      "backend)", stacklevel=2)
    run.set_status(record.RUNNING)
    if verbose:
        print(f"resuming {run.path} from step {step} ({states[step].name})")
    return step


def plan_for(spec, run, save_every):
    """The `loop.Plan` of a run of `spec` in `run` (its bounds on disk)."""
    recipe = spec.recipe
    start, end = run.start_step, run.end_step
    # The start state, then the parent's listed iterations above it.
    iters = [i for i in recipe.checkpoint_iters if start < i <= end]
    if spec.method.derived or start in recipe.checkpoint_iters:
        iters = [start] + iters
    # Training loss and LR every 100 steps at the paper's length, as the
    # original's summaries; scaled like every step quantity.
    every = max(1, round(100 * recipe.steps / recipe_lib.BASE_STEPS))
    lr_at = keras_optimizers.lr_function(recipe, spec.lr)
    return loop.Plan(start, end, spec.seed, recipe.batch_size, tuple(iters),
                     tuple(recipe.eval_steps(start, end)), save_every, spec.val_split,
                     every, spec.exclude, lr_at)


def finished(found, verbose):
    """Whether the run `found` names is finished (and says so)."""
    if found.run is not None and found.run.status == record.FINISHED:
        if verbose:
            print(f"{found.run.path} is already finished; nothing to do")
        return True
    return False


@contextlib.contextmanager
def locked(path):
    """Holds the run directory's lock while its run trains, so a second
    process refuses in one line instead of training it twice; a directory
    made only for the lock goes again if nothing else was written."""
    made = missing_folders(path)
    path.mkdir(parents=True, exist_ok=True)
    # Refused: the folder is the holder's, left as it is.
    lock = locks.Lock(path / layout.LOCK, what=str(path)).acquire()
    try:
        yield
    finally:
        lock.release()
        remove_unused(made)


def missing_folders(path):
    """`path` and those of its parents that do not exist, innermost first."""
    path = pathlib.Path(path)
    return [p for p in (path, *path.parents) if not p.exists()]


def remove_unused(made, keep=(layout.LOCK,)):
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


def child_root(parent, root):
    """Where a derived run's default folder goes: `root` when given, else
    its parent's (as recorded; runs made before it was: "runs")."""
    if root is not None:
        return root
    recorded = parent.record.root
    if recorded is None:
        return layout.DEFAULT_ROOT
    return os.path.normpath(parent.path / recorded)


def load_data(dataset, data_dir):
    """A named dataset (read with the fixed data seed), or your own."""
    if isinstance(dataset, data_lib.Dataset):
        return dataset
    return data_lib.load(dataset, data_dir, seed=DATA_SEED)
