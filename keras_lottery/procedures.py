"""The four procedures of the paper over the ordinary `model.fit` loop.

| procedure | masks from | weights, BN stats, momentum from | starts at | LR | steps |
|---|---|---|---|---|---|
| train | all ones | fresh init | 0 | schedule | T |
| rewind | magnitude of parent's final | parent's iteration k | k | schedule | T − k |
| rewind_lr | same | parent's final | k | schedule replayed from k | T − k |
| finetune | same | parent's final | parent's end | constant (0.001) | T − k |

Each writes a run directory (see `keras_lottery.runs`). `fit` runs in
segments that end exactly at the next checkpoint or evaluation step, since
Keras evaluates only at epoch ends; one segment is one Keras "epoch".
"""

import json
import math
import pathlib
import random
import shutil
import time
import warnings

import keras
import numpy as np

from keras_lottery import data as data_lib
from keras_lottery import models
from keras_lottery import pruning
from keras_lottery import recipe as recipe_lib
from keras_lottery import runs
from keras_lottery.callbacks import IterationCheckpoint
from keras_lottery.callbacks import StepCounter
from keras_lottery.conversion import masked
from keras_lottery.errors import LotteryError
from keras_lottery.execution import Execution
from keras_lottery.optimizer import LossScaleOptimizer
from keras_lottery.optimizer import MomentumSGD
from keras_lottery.state import load_state
from keras_lottery.state import save_state

DEFAULT_SAVE_EVERY = 1000
# Datasets that are generated (synthetic) use a fixed seed, so the data is
# the same for every run, like a real dataset; `--seed` is the run's.
DATA_SEED = 0
VAL_SEED = 2020  # the validation split is the same for every run


def train(
    arch="resnet20",
    *,
    out=None,
    dataset="cifar10",
    data_dir=None,
    steps=None,
    epochs=None,
    batch_size=recipe_lib.BASE_BATCH_SIZE,
    checkpoint_iters=None,
    eval_every=None,
    seed=None,
    save_every=DEFAULT_SAVE_EVERY,
    val_split=0,
    jit_compile="auto",
    mixed_precision=None,
    steps_per_execution=1,
    strategy=None,
    verbose=1,
    root=runs.DEFAULT_ROOT,
):
    """Trains a network from scratch with the paper's recipe.

    Re-running the same call resumes an interrupted run from its latest
    saved state and returns a finished one unchanged (see `_resolve`).

    Example:

    >>> run = keras_lottery.train("resnet20", dataset="synthetic", steps=200)
    >>> run.metrics[-1]["top1"]

    Args:
        arch: an architecture name (`keras_lottery.models.available()`) or a
            Keras model (Sequential/Functional; plain Conv2D/Dense layers
            are converted with `masked`). Its config is stored in the run.
        out: run directory; default `<root>/<arch>/train-s<seed>`.
        dataset: "cifar10", "digits" (bundled, offline) or "synthetic".
        data_dir: read CIFAR-10 from these official files instead of
            Keras's cached download.
        steps, epochs, batch_size, checkpoint_iters, eval_every: the recipe,
            see `keras_lottery.recipe.make`; defaults are the paper's.
        seed: seeds initialization and data order; drawn (and recorded in
            run.json) when None.
        save_every: also save the full state every this many steps (besides
            the checkpoint iterations), so a killed run resumes from there.
        val_split: hold out this many test images (a fixed seeded choice) as
            a validation set, reported as `val_top1`, and report test metrics
            on the rest (the paper used 2000); derived runs inherit it.
        jit_compile, mixed_precision, steps_per_execution, strategy: how
            the run executes, see `keras_lottery.execution.Execution`.
        verbose: Keras progress bar (1), one line per evaluation (2), or
            silence (0).
        root: where default run directories go.

    Returns:
        The finished `Run`.

    Raises:
        LotteryError: for bad input (one line naming the fix), before
            anything is written; or when training fails (NaN loss), after
            marking the run failed.
    """
    seed = _check_seed(seed)
    _check_save_every(save_every)
    arch_name, model_json, user_model = _arch(arch)
    data = _load_data(dataset, data_dir)
    recipe = _make_recipe(
        steps=steps, epochs=epochs, batch_size=batch_size,
        checkpoint_iters=checkpoint_iters, eval_every=eval_every,
        train_images=len(data.x_train),
    )
    if (isinstance(val_split, bool) or not isinstance(val_split, int)
            or not 0 <= val_split < len(data.x_test)):
        raise LotteryError(
            f"--val-split must be an integer in [0, {len(data.x_test)}) (the "
            f"test set has {len(data.x_test)} images), got {val_split!r}"
        )
    execution = Execution(jit_compile, mixed_precision, steps_per_execution, strategy)
    if user_model is not None and (execution.precision or execution.strategy):
        raise LotteryError(
            "--mixed-precision and --strategy apply to named architectures; "
            "build your own model under the dtype policy and strategy scope "
            "you want instead"
        )
    request = _request("train", arch_name, dataset, recipe, seed)
    request["val_split"] = val_split
    request["precision"] = execution.precision
    run, out, seed = _resolve(
        out, root, request, model_json,
        lambda s: runs.default_out(arch_name, "train", s, root=root),
    )
    if run is not None and run.status == runs.FINISHED:
        return _nothing_to_do(run, verbose)
    with execution.building():
        keras.utils.set_random_seed(seed)
        model = user_model or execution.prepare(_build(arch_name, data))
        _compile(model, recipe.schedule(), execution)
        position = _resume(run, model, verbose) if run is not None else None
        if run is None:
            config = _config(
                "train", arch_name, dataset, data_dir, recipe, seed, request,
                start=0, end=recipe.steps, density=pruning.density(model),
                execution=execution,
            )
            run = runs.Run.create(out, config)
            if model_json is not None:
                runs.write_atomic(run.model_config_path(), model_json)
        _fit(run, model, data, recipe, recipe.checkpoint_iters, verbose,
             position, save_every)
    return run


def rewind(parent=None, *, iteration, density, **kwargs):
    """Weight rewinding: prune, then retrain from the parent's iteration k.

    Masks come from global magnitude pruning of the parent's final state;
    weights, batch-norm statistics, momentum and the iteration counter come
    from the parent's checkpoint at `iteration`; the LR schedule continues
    from k; the run trains T − k steps, ending at T.

    Example:

    >>> run = keras_lottery.rewind("runs/resnet20/train-s0",
    ...                            iteration=4701, density=0.8)

    Args:
        parent: a finished run (path or `Run`); default: the single finished
            train run under `root`.
        iteration: k, a checkpoint iteration the parent saved.
        density: fraction in (0, 1] of prunable weights kept (absolute).
        **kwargs: `out`, `seed`, `data_dir`, `verbose`, `root`, and recipe
            arguments, which must agree with the parent's (derived runs
            inherit the parent's recipe).
    """
    return _derived("rewind", parent, iteration, density, **kwargs)


def rewind_lr(parent=None, *, iteration, density, **kwargs):
    """Learning-rate rewinding: prune the final state, replay the LR from k.

    Weights, batch-norm statistics and momentum come from the parent's final
    state; the iteration counter is set to k, so the LR schedule replays
    from k; the run trains T − k steps. Arguments as `rewind`.
    """
    return _derived("rewind_lr", parent, iteration, density, **kwargs)


def finetune(parent=None, *, iteration, density, lr=None, **kwargs):
    """Fine-tuning: prune the final state, train on at a constant LR.

    Starts from the parent's final state at the parent's last iteration and
    trains T − k steps at `lr` (default: the schedule's last value, 0.001
    at batch 128, scaled with the batch size as the whole schedule is), ending at 2T − k for a trained parent. `iteration` k sets only
    the length, to match a rewinding run from k. Other arguments as `rewind`.
    """
    return _derived("finetune", parent, iteration, density, lr=lr, **kwargs)


def lowlr_rewind(parent=None, *, iteration, density, lr=None, **kwargs):
    """Low-LR weight rewinding (control): rewind to k, train at a constant LR.

    As `rewind` (masks from the parent's final magnitudes; weights, batch-norm
    statistics, momentum and iteration from k; T − k steps), but at the
    constant `lr` (default: the schedule's last value, 0.001 at batch 128)
    instead of the schedule: it separates what the
    rewound weights contribute from what the rewound learning rate does.
    Arguments as `rewind`.
    """
    return _derived("lowlr_rewind", parent, iteration, density, lr=lr, **kwargs)


def random_prune(parent=None, *, iteration, density, **kwargs):
    """Random pruning (control): a random mask, then weight rewinding from k.

    The mask keeps exactly round(density × N) weights chosen uniformly at
    random (seeded by the run's seed) among the parent's unpruned ones, so
    iterative rounds nest;
    training is then exactly `rewind`'s. Arguments as `rewind`.
    """
    return _derived("random", parent, iteration, density, **kwargs)


def reinit(parent=None, *, density, iteration=None, **kwargs):
    """Random reinitialization (control): the pruned mask, fresh weights.

    Masks come from the parent's final magnitudes, as in `rewind`; the
    weights are freshly initialized (from a seed derived from the run's and
    the parent's seeds, so never the parent's own initialization) and
    trained with the full schedule, T steps from step 0.
    `iteration` is not used. Other arguments as `rewind`.
    """
    if iteration is not None:
        raise LotteryError("reinit trains from step 0; drop --iter")
    return _derived("reinit", parent, None, density, **kwargs)


METHODS = {
    "rewind": rewind,
    "rewind_lr": rewind_lr,
    "finetune": finetune,
    "lowlr_rewind": lowlr_rewind,
    "random": random_prune,
    "reinit": reinit,
}


def iterate(parent=None, *, method="rewind", iteration=None, rounds, rate=0.8,
            out=None, seed=None, root=runs.DEFAULT_ROOT, verbose=1, **kwargs):
    """Iterative pruning: `rounds` rounds of `method`, each from the last.

    Round i prunes to the absolute density base × rate^i (0.8, 0.64, 0.512,
    … from a dense base) and is a run directory `<out>/round-<i>` whose
    parent is round i − 1 (round 0 is `parent`), so masks nest. Re-running
    the call skips finished rounds, resumes an interrupted one, and can add
    rounds (a larger `rounds`).

    Example:

    >>> rounds = keras_lottery.iterate("runs/resnet20/train-s0",
    ...     method="rewind", iteration=4701, rounds=10)
    >>> [r.config["density"] for r in rounds][:3]
    [0.8, 0.64, 0.512]

    Args:
        parent: the base run (default: the single finished train run).
        method: one of `METHODS` ("rewind", "rewind_lr", "finetune",
            "lowlr_rewind", "random", "reinit").
        iteration: k of every round (not for "reinit").
        rounds: number of rounds, ≥ 1.
        rate: kept fraction per round, in (0, 1).
        out: the study directory; default
            `<root>/<arch>/iterate-<method>-k<k>-r<rate%>-s<seed>`.
        seed: seed of every round; drawn and recorded when None.
        **kwargs: as the method's (`lr`, `data_dir`, `save_every`, ...).

    Returns:
        The list of finished rounds' `Run`s.
    """
    method = method.replace("-", "_") if isinstance(method, str) else method
    if method not in METHODS:
        raise LotteryError(
            f"unknown method {method!r}; choose one of: "
            f"{', '.join(m.replace('_', '-') for m in METHODS)}"
        )
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise LotteryError(f"--rounds must be a positive integer, got {rounds!r}")
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate < 1:
        raise LotteryError(
            f"--rate must be a fraction in (0, 1) (0.8 keeps 80 % per round), got {rate!r}"
        )
    seed = _check_seed(seed)
    base = _open_parent(parent, root)
    _check_loss_scaling(base, kwargs.get("mixed_precision"))
    base_density = base.config["density"]
    study = _study(base, method, iteration, rate, seed, out, root)
    seed = study["seed"]
    done = []
    previous = base
    for index in range(1, rounds + 1):
        density = float(f"{base_density * rate ** index:.12g}")
        if verbose:
            print(f"round {index}/{rounds}: {method} to density {density:g}")
        args = dict(kwargs, density=density, seed=seed, root=root, verbose=verbose,
                    out=study["path"] / f"round-{index}", round_index=index)
        if method != "reinit":
            args["iteration"] = iteration
        previous = METHODS[method](previous, **args)
        done.append(previous)
    return done


def _study(base, method, iteration, rate, seed, out, root):
    """The study directory of an `iterate` call, found again on re-runs."""
    request = {"method": method, "parent": str(base.path), "iteration": iteration,
               "rate": rate}

    def same(config):
        return (all(config.get(k) == v for k, v in request.items() if k != "parent")
                and pathlib.Path(config["parent"]).resolve() == base.path.resolve())

    if out is None and seed is None:
        for path in sorted(pathlib.Path(root).glob(f"**/{runs.STUDY_JSON}")):
            try:
                config = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if isinstance(config, dict) and config.get("seed_drawn") and same(config):
                return dict(config, path=path.parent)
        seed = random.SystemRandom().randrange(10**6)
        drawn = True
    else:
        drawn = seed is None
    if out is None:
        k = "" if iteration is None else f"-k{iteration}"
        out = (pathlib.Path(root) / base.config["arch"]
               / f"iterate-{method.replace('_', '-')}{k}-r{rate * 100:.4g}-s{seed}")
    out = pathlib.Path(out)
    path = out / runs.STUDY_JSON
    if path.exists():
        try:
            config = json.loads(path.read_text())
        except ValueError:
            raise LotteryError(f"{path} is not valid JSON; delete the study "
                               "directory to start over") from None
        if not same(config) or (seed is not None and config.get("seed") != seed):
            raise LotteryError(
                f"{out} holds a different iterative study ({config.get('method')} "
                f"from {config.get('parent')}, k={config.get('iteration')}, rate "
                f"{config.get('rate')}, seed {config.get('seed')}); choose another "
                "--out, or delete it to start over"
            )
        return dict(config, path=out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise LotteryError(f"{out} exists and is not a study directory; choose another --out")
    if seed is None:
        seed = random.SystemRandom().randrange(10**6)
    config = dict(request, seed=seed, seed_drawn=drawn)
    out.mkdir(parents=True, exist_ok=True)
    runs.write_atomic(path, json.dumps(config, indent=2) + "\n")
    return dict(config, path=out)


# What each derived mode restores (DESIGN decision 6, resolved detail 11):
# (masks, state restored, first step, constant LR).
_MODES = {
    "rewind": ("magnitude", "k", "k", False),
    "rewind_lr": ("magnitude", "final", "k", False),
    "finetune": ("magnitude", "final", "parent_end", True),
    "lowlr_rewind": ("magnitude", "k", "k", True),
    "random": ("random", "k", "k", False),
    "reinit": ("magnitude", "init", "zero", False),
}


def _derived(
    mode, parent, iteration, density, *, lr=None, out=None, seed=None,
    data_dir=None, save_every=DEFAULT_SAVE_EVERY, verbose=1,
    root=runs.DEFAULT_ROOT, round_index=None, jit_compile="auto",
    mixed_precision=None, steps_per_execution=1, strategy=None,
    **recipe_flags,
):
    masks_from, state_from, first_step, constant_lr = _MODES[mode]
    seed = _check_seed(seed)
    _check_save_every(save_every)
    parent = _open_parent(parent, root)
    _check_loss_scaling(parent, mixed_precision)
    try:
        density = pruning.check_density(density)
    except ValueError as e:
        raise LotteryError(str(e)) from None
    recipe = recipe_lib.Recipe.from_dict(parent.config["recipe"])
    _check_inherited(recipe, recipe_flags, parent)
    steps = recipe.steps
    checkpoints = parent.checkpoints
    if mode != "reinit":
        if isinstance(iteration, bool) or not isinstance(iteration, int):
            raise LotteryError(f"--iter must be an integer, got {iteration!r}")
        if not 0 <= iteration < steps:
            raise LotteryError(
                f"--iter {iteration} must lie in [0, {steps}) for a recipe of "
                f"{steps} steps"
            )
    if mode != "finetune" and mode != "reinit" and iteration not in checkpoints:
        saved = ", ".join(str(k) for k in checkpoints if isinstance(k, int))
        raise LotteryError(
            f"--iter {iteration} is not a checkpoint of {parent.path}; "
            f"saved iterations: {saved or 'none'}"
        )
    if "final" not in checkpoints:
        raise LotteryError(f"{parent.path} has no final checkpoint")
    if constant_lr:
        if lr is None:  # the schedule's last value: 0.001 at batch 128
            lr = recipe.lr_values[-1]
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:
            raise LotteryError(f"--lr must be a positive number, got {lr!r}")
        lr = float(lr)
    parent_end = parent.config["end_step"]
    start = {"k": iteration, "parent_end": parent_end, "zero": 0}[first_step]
    end = steps if mode == "reinit" else start + steps - iteration
    dataset = parent.config["dataset"]
    request = _request(
        mode, parent.config["arch"], dataset, recipe, seed,
        parent=str(parent.path), iteration=iteration, target_density=density,
        lr=lr,
    )
    execution = Execution(jit_compile, mixed_precision, steps_per_execution, strategy)
    request["precision"] = execution.precision
    model_json = (parent.model_config_path().read_text()
                  if parent.model_config_path().exists() else None)
    run, out, seed = _resolve(
        out, root, request, model_json,
        lambda s: runs.default_out(
            parent.config["arch"], mode, s, iteration, density, root=root
        ),
    )
    if run is not None and run.status == runs.FINISHED:
        return _nothing_to_do(run, verbose)
    data_dir = data_dir if data_dir is not None else parent.config.get("data_dir")
    data = _load_data(dataset, data_dir)
    with execution.building():
        if state_from == "init":
            # Never the parent's own initialization (that would be rewinding to 0).
            keras.utils.set_random_seed((seed * 1_000_003 + parent.config["seed"] + 1) % 2**31)
        else:
            keras.utils.set_random_seed(seed)
        model = execution.prepare(_rebuild(parent, data))
        schedule = recipe_lib.ConstantSchedule(lr) if constant_lr else recipe.schedule()
        _compile(model, schedule, execution)
        position = _resume(run, model, verbose) if run is not None else None
        if position is None:
            # Masks from the parent's final state: its magnitudes, or random
            # among its survivors; they nest in the parent's masks either way.
            source = _rebuild(parent, data) if state_from == "init" else model
            if source is not model:
                _compile(source, schedule, execution)
            load_state(source, checkpoints["final"], parent_end)
            if masks_from == "random":
                masks = pruning.random_masks(pruning.get_masks(source), density, seed=seed)
            else:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)
                    masks = pruning.prune(source, density)
            if state_from == "k":
                load_state(model, checkpoints[iteration], iteration)
            model.optimizer.iterations.assign(start)
            pruning.set_masks(model, masks)
        if run is None:
            config = _config(
                mode, parent.config["arch"], dataset, data_dir, recipe, seed,
                request, start=start, end=end, density=pruning.density(model),
                execution=execution, round_index=round_index,
                val_split=parent.config.get("val_split", 0),
            )
            run = runs.Run.create(out, config)
            if model_json is not None:
                runs.write_atomic(run.model_config_path(), model_json)
        # The start state, then the parent's listed iterations above it.
        iters = [start] + [i for i in recipe.checkpoint_iters if start < i <= end]
        _fit(run, model, data, recipe, iters, verbose, position, save_every)
    return run


def _fit(run, model, data, recipe, checkpoint_iters, verbose, position,
         save_every):
    """Trains from `position` (the run's start_step when None) to its
    end_step, checkpointing and evaluating at the exact steps and saving a
    resume state every `save_every` steps; marks the run finished (or
    failed, keeping every file written so far)."""
    start, end = run.config["start_step"], run.config["end_step"]
    position = start if position is None else position
    seed = run.config["seed"]
    # Rows after the state we resume from are recomputed, identically.
    run.truncate_metrics(position)
    checkpoint = IterationCheckpoint(
        run.path / runs.CHECKPOINT_DIR, checkpoint_iters, save_final=False
    )
    checkpoint.set_model(model)  # a run resumed at its end fits nothing
    checkpoint.written = [i for i in run.checkpoints if isinstance(i, int)]
    evals = recipe.eval_steps(start, end)
    saves = set(range((position // save_every + 1) * save_every, end, save_every))
    stops = sorted(
        {i for i in checkpoint_iters if position < i <= end}
        | {i for i in evals if i > position} | saves
    )
    eval_data, val_data = _evaluation_sets(
        data, run.config.get("val_split", 0), recipe.batch_size
    )
    writer = _summary_writer(run)
    progress = _Progress(start, end) if verbose == 1 else None
    callbacks = [_NanGuard(stops), checkpoint] + ([progress] if progress else [])
    began = time.time()
    try:
        # A kill between writing a checkpoint and its evaluation row: redo
        # the evaluation (deterministic) instead of leaving a gap.
        if position in evals and position not in {m["step"] for m in run.metrics}:
            _log_evaluation(run, model, (eval_data, val_data), position, began,
                            writer, verbose, progress)
        for stop in stops:
            batches = data_lib.TrainBatches(
                data.x_train, data.y_train, recipe.batch_size, seed=seed,
                start_step=position, num_steps=stop - position,
                augment=data.augment, normalize=data.normalize,
            )
            # shuffle=False: Keras would otherwise permute a PyDataset's
            # batches within each segment, breaking data order = f(seed, step).
            model.fit(
                batches, steps_per_epoch=stop - position,
                callbacks=callbacks, verbose=0, shuffle=False,
            )
            position = stop
            if stop in evals:
                _log_evaluation(run, model, (eval_data, val_data), stop, began,
                                writer, verbose, progress)
            if stop in saves and stop not in checkpoint_iters:
                save_state(model, run.path / runs.RESUME_DIR / runs.resume_name(stop))
            if stop in saves or stop in checkpoint_iters:
                for step, path in run.resume_states.items():
                    if step < stop:
                        path.unlink()
        checkpoint.save("final")
        shutil.rmtree(run.path / runs.RESUME_DIR, ignore_errors=True)
    except BaseException as e:
        try:
            run.set_status(runs.FAILED, error=f"{type(e).__name__}: {e}",
                           failed_at_step=_last_step(callbacks, position))
        except Exception:  # a full disk must not hide the first error
            pass
        raise
    run.set_status(runs.FINISHED, error=None)


def _log_evaluation(run, model, eval_sets, step, began, writer, verbose, progress):
    row = _evaluate(model, *eval_sets, step, time.time() - began)
    run.append_metrics(row)
    _write_summaries(writer, row)
    if verbose:
        if progress:
            progress.bar.update(step - progress.start, finalize=False)
            print()
        print(
            f"step {step}: top-1 {row['top1']:.4f}  top-5 "
            f"{row['top5']:.4f}  loss {row['loss']:.4f}  "
            f"lr {row['lr']:g}  density {row['density']:.4f}"
        )


def _last_step(callbacks, position):
    return max([position] + [c.step for c in callbacks if isinstance(c, StepCounter)])


class _NanGuard(StepCounter):
    """Stops training at the first non-finite loss, and at a save point
    whose weights are not finite, before anything of that step is written
    (it runs first among the callbacks). A NaN can reach the weights one
    step before the loss shows it (a ReLU maps NaN to 0), hence both."""

    def __init__(self, save_points=()):
        super().__init__()
        self.save_points = set(save_points)

    def on_train_batch_end(self, batch, logs=None):
        super().on_train_batch_end(batch, logs)
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self._fail(f"the training loss became {float(loss)}")
        if self.step in self.save_points and not all(
            np.isfinite(keras.ops.convert_to_numpy(v)).all() for v in self.model.weights
        ):
            self._fail("the weights became non-finite (nan or inf)")

    def _fail(self, what):
        raise LotteryError(
            f"{what} at step {self.step}; the run is marked failed and keeps "
            "its checkpoints up to the last good step; lower the learning "
            "rate or check the data"
        )


def _resume(run, model, verbose):
    """Loads the latest saved state of an unfinished run into `model`.

    Returns its step, or None when the run saved nothing yet (it then starts
    over, which gives the same result: initialization and data order are
    functions of the seed).
    """
    run.check()
    run.remove_temporary_files()
    start, end = run.config["start_step"], run.config["end_step"]
    states = {i: p for i, p in run.checkpoints.items()
              if isinstance(i, int) and start <= i <= end}
    states.update({i: p for i, p in run.resume_states.items() if start <= i <= end})
    if "final" in run.checkpoints:
        states[end] = run.checkpoints["final"]
    if not states:
        run.set_status(runs.RUNNING)
        return None
    step = max(states)
    load_state(model, states[step], step)
    run.set_status(runs.RUNNING)
    if verbose:
        print(f"resuming {run.path} from step {step} ({states[step].name})")
    return step


def _nothing_to_do(run, verbose):
    if verbose:
        print(f"{run.path} is already finished; nothing to do")
    return run


class _Progress(StepCounter):
    """One Keras progress bar over the whole run's steps (segments are an
    implementation detail, so no per-segment "Epoch 1/1" bars)."""

    def __init__(self, start, end):
        super().__init__()
        self.start = start
        self.bar = keras.utils.Progbar(
            end - start, stateful_metrics=["loss", "top1", "top5"],
            unit_name="step",
        )

    def on_train_batch_end(self, batch, logs=None):
        super().on_train_batch_end(batch, logs)
        values = [(k, float(v)) for k, v in (logs or {}).items()
                  if k in ("loss", "top1", "top5")]
        self.bar.update(self.step - self.start, values=values)


def _evaluation_sets(data, val_split, batch_size):
    """(test batches, validation batches or None): the paper held out a
    seeded part of the test set for choosing, and reported the rest."""
    if not val_split:
        return data_lib.EvalBatches(data.x_test, data.y_test, batch_size,
                                    normalize=data.normalize), None
    order = np.random.default_rng(VAL_SEED).permutation(len(data.x_test))
    val, test = np.sort(order[:val_split]), np.sort(order[val_split:])
    return (
        data_lib.EvalBatches(data.x_test[test], data.y_test[test], batch_size,
                             normalize=data.normalize),
        data_lib.EvalBatches(data.x_test[val], data.y_test[val], batch_size,
                             normalize=data.normalize),
    )


def _evaluate(model, eval_data, val_data, step, elapsed):
    result = model.evaluate(eval_data, verbose=0, return_dict=True)
    val_top1 = None
    if val_data is not None:
        val_top1 = float(model.evaluate(val_data, verbose=0, return_dict=True)["top1"])
    lr = model.optimizer.learning_rate  # the schedule object
    last_lr = lr(step - 1) if callable(lr) else lr
    return {
        "step": step,
        "top1": float(result["top1"]),
        "top5": float(result["top5"]),
        "loss": float(result["loss"]),
        # float32 noise (0.10000000149) would make tables unreadable.
        "lr": float(f"{float(keras.ops.convert_to_numpy(last_lr)):.7g}"),
        "density": pruning.density(model),
        "val_top1": val_top1,
        "elapsed": round(elapsed, 3),
    }


def _summary_writer(run):
    try:
        import tensorflow as tf
    except ImportError:  # JAX-only install: metrics.csv still has it all
        return None
    return tf.summary.create_file_writer(str(run.path / runs.LOGS_DIR / "eval"))


def _write_summaries(writer, row):
    if writer is None:
        return
    import tensorflow as tf

    with writer.as_default():
        # "accuracy" is the tag the original's eval events used.
        tf.summary.scalar("accuracy", row["top1"], step=row["step"])
        tf.summary.scalar("accuracy_top_5", row["top5"], step=row["step"])
        tf.summary.scalar("loss", row["loss"], step=row["step"])
        tf.summary.scalar("learning_rate", row["lr"], step=row["step"])
        tf.summary.scalar("density", row["density"], step=row["step"])
    writer.flush()


def _check_loss_scaling(parent, mixed_precision):
    # fp16 states hold the loss scale too, so they load only into fp16
    # models and vice versa; bf16 and float32 states are interchangeable.
    parent_precision = (parent.config.get("execution") or {}).get("precision")
    if (parent_precision == "fp16") == (mixed_precision == "fp16"):
        return
    if parent_precision == "fp16":
        raise LotteryError(
            f"{parent.path} trained with --mixed-precision fp16, whose "
            "checkpoints hold the loss scale; derive from it with "
            "--mixed-precision fp16 too"
        )
    raise LotteryError(
        f"--mixed-precision fp16 needs an fp16 parent (its checkpoints hold "
        f"the loss scale), but {parent.path} trained in "
        f"{parent_precision or 'float32'}; retrain the parent with "
        "--mixed-precision fp16, or derive in bf16 or float32"
    )


def _compile(model, schedule, execution=None):
    execution = execution or Execution()
    optimizer = MomentumSGD(schedule, momentum=recipe_lib.MOMENTUM)
    if execution.precision == "fp16" or _computes_in_float16(model):
        # Keras's own wrapper would not count skipped steps.
        optimizer = LossScaleOptimizer(optimizer)
    model.compile(
        **execution.compile_kwargs(),
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[
            keras.metrics.SparseCategoricalAccuracy(name="top1"),
            # Cast: TF's in_top_k takes float32 only (logits are bfloat16
            # under a mixed policy).
            keras.metrics.MeanMetricWrapper(_top5, name="top5"),
        ],
    )
    model.optimizer.build(model.trainable_variables)


def _computes_in_float16(model):
    # Layer by layer: a model of the user's own built under mixed_float16
    # and rebuilt from model.json has float16 layers in a float32 container
    # (Keras restores the layers' policies, not the Sequential's).
    layers = [model, *pruning.iter_layers(model)]
    return any(layer.dtype_policy.compute_dtype == "float16" for layer in layers)


def _top5(y_true, y_pred):
    return keras.metrics.sparse_top_k_categorical_accuracy(
        y_true, keras.ops.cast(y_pred, "float32"), k=5
    )


def _arch(arch):
    """(name, model_json or None, model or None) for an arch name or a Keras
    model; unknown names fail here, before any data is read."""
    if isinstance(arch, str):
        if arch not in models.available():
            raise LotteryError(
                f"unknown architecture {arch!r}; available: "
                f"{', '.join(models.available())}"
            )
        return arch, None, None
    if isinstance(arch, keras.Model):
        try:
            pruning.masked_layers(arch)
        except ValueError:
            arch = masked(arch)
        return arch.name, arch.to_json(), arch
    raise LotteryError(
        f"arch must be an architecture name or a keras.Model, got {type(arch).__name__}"
    )


def _build(name, data):
    try:
        return models.build(
            name, num_classes=data.num_classes, input_shape=data.image_shape
        )
    except ValueError as e:
        raise LotteryError(str(e)) from None


def _rebuild(parent, data):
    """The parent's architecture, freshly built (weights come from files).

    A stored model config is read with Keras's safe mode: a config that
    would run code (a Lambda layer's pickled function) is refused.
    """
    path = parent.model_config_path()
    if path.exists():
        try:
            return keras.models.model_from_json(path.read_text())
        except Exception as e:
            raise LotteryError(
                f"{path} cannot be loaded safely ({type(e).__name__}: "
                f"{str(e).splitlines()[0] if str(e) else ''}); models that "
                "need code from the run directory are refused"
            ) from None
    return _build(parent.config["arch"], data)


def _open_parent(parent, root):
    if parent is None:
        parent = runs.find_base_run(root)
    run = parent if isinstance(parent, runs.Run) else runs.Run.open(parent)
    run.check()
    if run.status != runs.FINISHED:
        raise LotteryError(
            f"parent run {run.path} is not finished (status: {run.status}); "
            "finish it first or choose another --from"
        )
    return run


def _check_inherited(recipe, flags, parent):
    """Derived runs inherit the parent's recipe; a contradicting flag is an
    error rather than a silent override."""
    given = {k: v for k, v in flags.items() if v is not None}
    unknown = sorted(set(given) - {"steps", "epochs", "batch_size",
                                   "checkpoint_iters", "eval_every", "dataset"})
    if unknown:
        raise TypeError(f"unexpected arguments {unknown}")
    for name, value in given.items():
        if name == "epochs":
            images = data_lib.TRAIN_SIZES.get(parent.config["dataset"], recipe_lib.TRAIN_IMAGES)
            value = round(value * images / recipe.batch_size)
            name = "steps"
        if name == "dataset":
            theirs = parent.config["dataset"]
        else:
            theirs = getattr(recipe, name)
        if name == "checkpoint_iters":
            value = tuple(value)
        if value != theirs:
            flag = "--" + name.replace("_", "-")
            raise LotteryError(
                f"{flag} {value} contradicts the parent's {theirs}; derived "
                "runs inherit the parent's recipe, so drop the flag"
            )


def _request(mode, arch, dataset, recipe, seed, *, parent=None,
             iteration=None, target_density=None, lr=None):
    """What a command asks for: two runs with equal requests are the same
    run (`seed` None: any drawn seed)."""
    return {
        "mode": mode,
        "arch": arch,
        "dataset": dataset,
        "recipe": recipe.to_dict(),
        "seed": seed,
        "parent": parent,
        "iteration": iteration,
        "target_density": target_density,
        "lr": lr,
    }


def _differences(run, request, model_json):
    """The fields in which an existing run differs from a request."""
    found = []
    for key, wanted in request.items():
        have = run.config.get(key)
        if key == "seed" and wanted is None:
            continue
        if key == "parent" and wanted is not None and have is not None:
            same = pathlib.Path(have).resolve() == pathlib.Path(wanted).resolve()
        else:
            same = have == wanted
        if not same:
            found.append(f"{key} {have!r} != {wanted!r}")
    theirs = run.model_config_path()
    if (model_json is not None or theirs.exists()) and (
        not theirs.exists() or theirs.read_text() != model_json
    ):
        found.append("model config")
    return found


def _resolve(out, root, request, model_json, default_out):
    """Finds the run a command already started, so re-running it resumes.

    Returns (run or None, out, seed). With `out` or a seed, the run is the
    one at that directory; it must have been made by the same request (a
    different run there is refused, never overwritten). With neither, it is
    the run under `root` made by the same request with a drawn seed; a new
    seed is drawn when there is none.
    """
    seed = request["seed"]
    if out is None and seed is None:
        same = []
        for path in runs.find_runs(root):
            try:
                run = runs.Run.open(path)
            except LotteryError:
                continue
            if run.config.get("seed_drawn") and not _differences(
                run, request, model_json
            ):
                same.append(run)
        unfinished = [r for r in same if r.status != runs.FINISHED]
        if len(unfinished) > 1:
            raise LotteryError(
                f"{len(unfinished)} unfinished runs match this command ("
                f"{', '.join(str(r.path) for r in unfinished)}); name the one "
                "to resume with --out"
            )
        if unfinished or same:
            run = (unfinished or same)[0]
            return run, run.path, run.config["seed"]
        seed = random.SystemRandom().randrange(10**6)
        out = default_out(seed)
    elif out is None:
        out = default_out(seed)
    out = pathlib.Path(out)
    if (out / runs.RUN_JSON).exists():
        run = runs.Run.open(out).check()
        differ = _differences(run, request, model_json)
        if differ:
            raise LotteryError(
                f"{out} holds a different {run.status} run ({'; '.join(differ)}); "
                "to resume it re-run the command that started it (see its "
                "run.json), to replace it delete the directory, or choose "
                "another --out"
            )
        return run, out, run.config["seed"]
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise LotteryError(
            f"{out} exists and is not a run directory or an empty one; "
            "choose another --out"
        )
    if seed is None:
        seed = random.SystemRandom().randrange(10**6)
    return None, out, seed


def _check_save_every(save_every):
    if isinstance(save_every, bool) or not isinstance(save_every, int) or save_every <= 0:
        raise LotteryError(
            f"--save-every must be a positive number of steps, got {save_every!r}"
        )


def _make_recipe(**kwargs):
    try:
        return recipe_lib.make(**kwargs)
    except ValueError as e:
        raise LotteryError(str(e)) from None


def _load_data(dataset, data_dir):
    return data_lib.load(dataset, data_dir, seed=DATA_SEED)


def _check_seed(seed):
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise LotteryError(f"--seed must be a non-negative integer, got {seed!r}")
    return seed


def _config(mode, arch, dataset, data_dir, recipe, seed, request, *, start,
            end, density, execution, round_index=None, val_split=None):
    # A train run's request holds its val_split; derived runs inherit theirs.
    extra = {} if val_split is None else {"val_split": val_split}
    return dict(
        request,
        **extra,
        round=round_index,
        execution=execution.to_dict(),
        mode=mode,
        arch=arch,
        dataset=dataset,
        data_dir=None if data_dir is None else str(data_dir),
        seed=seed,
        seed_drawn=request["seed"] is None,
        density=density,
        start_step=start,
        end_step=end,
        versions=runs.versions(),
    )
