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

import pathlib
import random
import time
import warnings

import keras

from keras_lottery import data as data_lib
from keras_lottery import models
from keras_lottery import pruning
from keras_lottery import recipe as recipe_lib
from keras_lottery import runs
from keras_lottery.callbacks import IterationCheckpoint
from keras_lottery.callbacks import StepCounter
from keras_lottery.conversion import masked
from keras_lottery.errors import LotteryError
from keras_lottery.optimizer import MomentumSGD


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
    verbose=1,
    root=runs.DEFAULT_ROOT,
):
    """Trains a network from scratch with the paper's recipe.

    Example:

    >>> run = keras_lottery.train("resnet20", dataset="synthetic", steps=200)
    >>> run.metrics[-1]["top1"]

    Args:
        arch: an architecture name (`keras_lottery.models.available()`) or a
            Keras model (Sequential/Functional; plain Conv2D/Dense layers
            are converted with `masked`). Its config is stored in the run.
        out: run directory; default `<root>/<arch>/train-s<seed>`.
        dataset: "cifar10" or "synthetic".
        data_dir: read CIFAR-10 from these official files instead of
            Keras's cached download.
        steps, epochs, batch_size, checkpoint_iters, eval_every: the recipe,
            see `keras_lottery.recipe.make`; defaults are the paper's.
        seed: seeds initialization and data order; drawn (and recorded in
            run.json) when None.
        verbose: Keras progress bar (1), one line per evaluation (2), or
            silence (0).
        root: where default run directories go.

    Returns:
        The finished `Run`.
    """
    seed = _seed(seed)
    data = _load_data(dataset, data_dir, seed)
    recipe = _make_recipe(
        steps=steps, epochs=epochs, batch_size=batch_size,
        checkpoint_iters=checkpoint_iters, eval_every=eval_every,
        train_images=len(data.x_train),
    )
    keras.utils.set_random_seed(seed)
    model, arch_name, model_json = _model(arch, data)
    out = out or runs.default_out(arch_name, "train", seed, root=root)
    _check_out(out)
    _compile(model, recipe.schedule())
    config = _config(
        "train", arch_name, dataset, data_dir, recipe, seed,
        start=0, end=recipe.steps, density=pruning.density(model),
    )
    run = runs.Run.create(out, config)
    if model_json is not None:
        runs.write_atomic(run.model_config_path(), model_json)
    _fit(run, model, data, recipe, recipe.checkpoint_iters, verbose)
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


def finetune(parent=None, *, iteration, density, lr=recipe_lib.FINETUNE_LR, **kwargs):
    """Fine-tuning: prune the final state, train on at a constant LR.

    Starts from the parent's final state at the parent's last iteration and
    trains T − k steps at `lr` (the schedule's last value, 0.001, by
    default), ending at 2T − k for a trained parent. `iteration` k sets only
    the length, to match a rewinding run from k. Other arguments as `rewind`.
    """
    return _derived("finetune", parent, iteration, density, lr=lr, **kwargs)


def _derived(
    mode, parent, iteration, density, *, lr=None, out=None, seed=None,
    data_dir=None, verbose=1, root=runs.DEFAULT_ROOT, **recipe_flags,
):
    parent = _open_parent(parent, root)
    try:
        density = pruning.check_density(density)
    except ValueError as e:
        raise LotteryError(str(e)) from None
    recipe = recipe_lib.Recipe.from_dict(parent.config["recipe"])
    _check_inherited(recipe, recipe_flags, parent)
    steps = recipe.steps
    checkpoints = parent.checkpoints
    if isinstance(iteration, bool) or not isinstance(iteration, int):
        raise LotteryError(f"--iter must be an integer, got {iteration!r}")
    if not 0 <= iteration < steps:
        raise LotteryError(
            f"--iter {iteration} must lie in [0, {steps}) for a recipe of "
            f"{steps} steps"
        )
    if mode != "finetune" and iteration not in checkpoints:
        saved = ", ".join(str(k) for k in checkpoints if isinstance(k, int))
        raise LotteryError(
            f"--iter {iteration} is not a checkpoint of {parent.path}; "
            f"saved iterations: {saved or 'none'}"
        )
    if "final" not in checkpoints:
        raise LotteryError(f"{parent.path} has no final checkpoint")
    parent_end = parent.config["end_step"]
    start = parent_end if mode == "finetune" else iteration
    end = start + steps - iteration
    seed = _seed(seed)
    out = out or runs.default_out(
        parent.config["arch"], mode, seed, iteration, density, root=root
    )
    _check_out(out)
    dataset = parent.config["dataset"]
    data_dir = data_dir if data_dir is not None else parent.config.get("data_dir")
    data = _load_data(dataset, data_dir, seed)
    keras.utils.set_random_seed(seed)
    model = _rebuild(parent, data)
    schedule = recipe_lib.ConstantSchedule(lr) if mode == "finetune" else recipe.schedule()
    _compile(model, schedule)

    # Magnitudes (and the masks they nest in) from the parent's final state.
    _load_state(model, checkpoints["final"], parent_end)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        masks = pruning.prune(model, density)
    if mode == "rewind":
        _load_state(model, checkpoints[iteration], iteration)
    model.optimizer.iterations.assign(start)
    pruning.set_masks(model, masks)

    config = _config(
        mode, parent.config["arch"], dataset, data_dir, recipe, seed,
        start=start, end=end, density=pruning.density(model),
        parent=str(parent.path), iteration=iteration, lr=lr,
    )
    run = runs.Run.create(out, config)
    if parent.model_config_path().exists():
        runs.write_atomic(
            run.model_config_path(), parent.model_config_path().read_text()
        )
    # The start state, then the parent's listed iterations above it.
    iters = [start] + [i for i in recipe.checkpoint_iters if start < i <= end]
    _fit(run, model, data, recipe, iters, verbose)
    return run


def _fit(run, model, data, recipe, checkpoint_iters, verbose):
    """Trains from the run's start_step to end_step, checkpointing and
    evaluating at the exact steps; marks the run finished (or failed)."""
    start, end = run.config["start_step"], run.config["end_step"]
    seed = run.config["seed"]
    checkpoint = IterationCheckpoint(
        run.path / runs.CHECKPOINT_DIR, checkpoint_iters, save_final=False
    )
    evals = recipe.eval_steps(start, end)
    stops = sorted({i for i in checkpoint_iters if start < i <= end} | set(evals))
    eval_data = data_lib.EvalBatches(data.x_test, data.y_test, recipe.batch_size)
    writer = _summary_writer(run)
    progress = _Progress(start, end) if verbose == 1 else None
    began = time.time()
    try:
        position = start
        for index, stop in enumerate(stops):
            batches = data_lib.TrainBatches(
                data.x_train, data.y_train, recipe.batch_size, seed=seed,
                start_step=position, num_steps=stop - position,
            )
            model.fit(
                batches, steps_per_epoch=stop - position,
                callbacks=[checkpoint] + ([progress] if progress else []),
                verbose=0,
            )
            position = stop
            if stop in evals:
                row = _evaluate(model, eval_data, stop, time.time() - began)
                run.append_metrics(row)
                _write_summaries(writer, row)
                if verbose:
                    if progress:
                        progress.bar.update(stop - start, finalize=False)
                        print()
                    print(
                        f"step {stop}: top-1 {row['top1']:.4f}  top-5 "
                        f"{row['top5']:.4f}  loss {row['loss']:.4f}  "
                        f"lr {row['lr']:g}  density {row['density']:.4f}"
                    )
        checkpoint.save("final")
    except BaseException as e:
        run.set_status(runs.FAILED, error=f"{type(e).__name__}: {e}")
        raise
    run.set_status(runs.FINISHED)


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


def _evaluate(model, eval_data, step, elapsed):
    result = model.evaluate(eval_data, verbose=0, return_dict=True)
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


def _compile(model, schedule):
    model.compile(
        optimizer=MomentumSGD(schedule, momentum=recipe_lib.MOMENTUM),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[
            keras.metrics.SparseCategoricalAccuracy(name="top1"),
            keras.metrics.SparseTopKCategoricalAccuracy(k=5, name="top5"),
        ],
    )
    model.optimizer.build(model.trainable_variables)


def _load_state(model, path, iteration):
    """Loads a full checkpoint; fails loudly if optimizer state is skipped."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model.load_weights(path)
        except Exception as e:  # h5py/Keras errors for corrupt files vary
            raise LotteryError(
                f"checkpoint {path} cannot be loaded ({type(e).__name__}: "
                f"{str(e).splitlines()[0] if str(e) else ''}); it may be "
                "truncated or from another architecture"
            ) from None
    for w in caught:
        if "optimizer" in str(w.message).lower() or "skipping" in str(w.message).lower():
            raise LotteryError(
                f"checkpoint {path}: optimizer state was not restored "
                f"({str(w.message).splitlines()[0]})"
            )
    found = int(model.optimizer.iterations)
    if found != iteration:
        raise LotteryError(
            f"checkpoint {path} holds iteration {found}, expected {iteration}"
        )


def _model(arch, data):
    """(model, name, model_json or None) for an arch name or a Keras model."""
    if isinstance(arch, str):
        try:
            model = models.build(
                arch, num_classes=data.num_classes, input_shape=data.image_shape
            )
        except ValueError as e:
            raise LotteryError(str(e)) from None
        return model, arch, None
    if isinstance(arch, keras.Model):
        try:
            pruning.masked_layers(arch)
        except ValueError:
            arch = masked(arch)
        return arch, arch.name, arch.to_json()
    raise LotteryError(
        f"arch must be an architecture name or a keras.Model, got {type(arch).__name__}"
    )


def _rebuild(parent, data):
    """The parent's architecture, freshly built (weights come from files)."""
    path = parent.model_config_path()
    if path.exists():
        return keras.models.model_from_json(path.read_text())
    model, _, _ = _model(parent.config["arch"], data)
    return model


def _open_parent(parent, root):
    if parent is None:
        parent = runs.find_base_run(root)
    run = parent if isinstance(parent, runs.Run) else runs.Run.open(parent)
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
            value = round(value * recipe_lib.TRAIN_IMAGES / recipe.batch_size)
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


def _check_out(out):
    out = pathlib.Path(out)
    if (out / runs.RUN_JSON).exists():
        status = runs.Run.open(out).status
        raise LotteryError(
            f"{out} already holds a {status} run; choose another --out or "
            "delete that directory to start over"
        )
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise LotteryError(
            f"{out} exists and is not an empty directory; choose another --out"
        )


def _make_recipe(**kwargs):
    try:
        return recipe_lib.make(**kwargs)
    except ValueError as e:
        raise LotteryError(str(e)) from None


def _load_data(dataset, data_dir, seed):
    try:
        return data_lib.load(dataset, data_dir, seed=seed)
    except data_lib.DataError as e:
        raise LotteryError(str(e)) from None


def _seed(seed):
    if seed is None:
        return random.SystemRandom().randrange(10**6)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise LotteryError(f"--seed must be a non-negative integer, got {seed!r}")
    return seed


def _config(mode, arch, dataset, data_dir, recipe, seed, *, start, end,
            density, parent=None, iteration=None, lr=None):
    return {
        "mode": mode,
        "arch": arch,
        "dataset": dataset,
        "data_dir": None if data_dir is None else str(data_dir),
        "recipe": recipe.to_dict(),
        "seed": seed,
        "parent": parent,
        "iteration": iteration,
        "density": density,
        "lr": lr,
        "start_step": start,
        "end_step": end,
        "versions": runs.versions(),
    }
