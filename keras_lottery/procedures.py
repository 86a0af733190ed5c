"""The paper's procedures — train, rewind, rewind_lr, finetune — the
controls, `branch` and `iterate`, each a short composition of shared parts
(`keras_lottery.methods` has the table of what each restores). A call is a
request (`RunSpec`); the resolver finds the run it already made, so calling
again resumes an interrupted run or returns a finished one. Each writes a
run directory (`keras_lottery.runs`) through `training.fit`.
"""

import keras

from keras_lottery import arch as arch_lib
from keras_lottery import data as data_lib
from keras_lottery import methods
from keras_lottery import stages
from keras_lottery import parents
from keras_lottery import recipe as recipe_lib
from keras_lottery import resolver
from keras_lottery import runs
from keras_lottery import training
from keras_lottery.errors import LotteryError
from keras_lottery.execution import Execution
from keras_lottery.spec import IterateSpec
from keras_lottery.spec import RunSpec
from keras_lottery.spec import resolve_parent

DEFAULT_SAVE_EVERY = 1000
# The paper held out 2,000 of CIFAR's 10,000 test images for choosing.
PAPER_VAL_SPLIT = 2000
PAPER_DATASETS = ("cifar10", "cifar100")
CIFAR_TEST_IMAGES = 10000


def train(arch="resnet20", *, out=None, dataset="cifar10", data_dir=None,
          recipe=None, steps=None, epochs=None, batch_size=None,
          checkpoint_iters=None, eval_every=None, seed=None,
          save_every=DEFAULT_SAVE_EVERY, val_split=None, jit_compile="auto",
          mixed_precision=None, steps_per_execution=1, strategy=None,
          callbacks=None, verbose=1, root=runs.DEFAULT_ROOT):
    """Trains a network from scratch with the paper's recipe.

    Re-running the same call resumes an interrupted run from its latest
    saved state and returns a finished one unchanged.

    Example:

    >>> run = keras_lottery.train("resnet20", dataset="synthetic", steps=200)
    >>> run.metrics[-1]["top1"]

    Args:
        arch: an architecture name (`keras_lottery.models.available()`), a
            Keras model (Sequential/Functional; plain Conv2D/Dense and the
            other kernel layers are converted with `masked`), a saved
            `.keras` file (loaded in safe mode), or "package.module:function"
            building one (given `input_shape` and `num_classes` if it takes
            them). A model is rebuilt from its config under `seed` (so seeds
            choose its initialization) and stored in the run as model.json.
        out: run directory; default `<root>/<arch>/train-s<seed>`.
        dataset: a name of `keras_lottery.data.DATASETS` ("cifar10",
            "cifar100", "mnist", "fashion_mnist", "digits" (bundled,
            offline), "synthetic"), "npz:PATH", or your own arrays
            (`keras_lottery.data.arrays(...)`).
        data_dir: read the dataset from its official files here instead of
            Keras's cached download.
        recipe: a preset name (`keras_lottery.recipe.PRESETS`; default
            "renda2020", the paper's), a `.toml` file of recipe fields, or a
            `Recipe` (`keras_lottery.recipe.make(...)`).
        steps, epochs, batch_size, checkpoint_iters, eval_every: override the
            recipe's (step quantities scale with `steps`/`epochs`).
        seed: seeds initialization and data order; drawn (and recorded in
            run.json) when None.
        save_every: also save the full state every this many steps (besides
            the checkpoint iterations), so a killed run resumes from there.
        val_split: hold out this many test images (a fixed seeded choice) as
            a validation set, reported as `val_top1`, and report test metrics
            on the rest; derived runs inherit it. Default: the paper's 2000 on
            CIFAR-10 and CIFAR-100 (so children can select by validation), 0
            (none) on other data.
        jit_compile, mixed_precision, steps_per_execution, strategy: how
            the run executes, see `keras_lottery.execution.Execution`.
        callbacks: Keras callbacks of your own (W&B, MLflow, EarlyStopping,
            ...), run inside the training segments: they see batches
            numbered by global step and an "epoch" per evaluation, whose
            logs are its metrics (see `training.GlobalSteps`).
        verbose: 1: a progress bar in a terminal, one line per evaluation
            elsewhere (a log file); 2: one line per evaluation; 0: silence.
        root: where default run directories go.

    Returns:
        The finished `Run`.

    Raises:
        LotteryError: for bad input (one line naming the fix), before
            anything is written; or when training fails (NaN loss), after
            marking the run failed.
    """
    execution = Execution(jit_compile, mixed_precision, steps_per_execution, strategy)
    arch_lib.check_name(arch)  # before any data is read
    data = stages.load_data(dataset, data_dir)
    network = arch_lib.resolve(arch, data)
    if network.model_json is not None and (execution.precision or execution.strategy):
        raise LotteryError(
            "mixed precision and strategies apply to named architectures; "
            "build your own model under the dtype policy and strategy scope "
            "you want instead", param="mixed_precision", value=mixed_precision,
        )
    recipe = recipe_lib.make(
        "renda2020" if recipe is None else recipe, steps=steps, epochs=epochs,
        batch_size=batch_size, checkpoint_iters=checkpoint_iters,
        eval_every=eval_every, train_images=len(data.x_train),
    )
    if val_split is None:  # the paper's protocol, on CIFAR's real test set
        paper = data.name in PAPER_DATASETS and len(data.x_test) == CIFAR_TEST_IMAGES
        val_split = PAPER_VAL_SPLIT if paper else 0
    if recipe.batch_size > len(data.x_train):
        raise LotteryError(
            f"is larger than the training set ({len(data.x_train)} examples); "
            "use a smaller batch", param="batch_size", value=recipe.batch_size,
        )
    if (isinstance(val_split, bool) or not isinstance(val_split, int)
            or not 0 <= val_split < len(data.x_test)):
        raise LotteryError(
            f"expected an integer in [0, {len(data.x_test)}) (the test set has "
            f"{len(data.x_test)} images)", param="val_split", value=val_split,
        )
    request = RunSpec("train", network.name, data_lib.spec_name(data), recipe,
                      seed=seed, val_split=val_split, precision=execution.precision,
                      model=network.fingerprint,
                      data_fingerprint=data_lib.own_fingerprint(data))
    found = resolver.resolve(request, out=out, root=root)
    if stages.finished(found, verbose):
        return found.run
    with stages.locked(found.path), execution.building():
        keras.utils.set_random_seed(found.spec.seed)
        model = execution.prepare(arch_lib.build(
            network.name, network.model_json, data, recipe.weight_decay))
        arch_lib.check_fits(model, data)
        training.compile_model(model, recipe, execution)
        run, position = training.open_run(
            found, model, facts=stages.facts(data, data_dir, execution),
            model_json=network.model_json, verbose=verbose, bounds=(0, recipe.steps))
        training.fit(run, model, data, training.plan_for(found.spec, run, save_every),
                     position=position, verbose=verbose, callbacks=callbacks)
    return run


def rewind(parent=None, *, iteration, density, scope=None, exclude=None, out=None, seed=None,
           data_dir=None, save_every=DEFAULT_SAVE_EVERY, callbacks=None, verbose=1,
           root=runs.DEFAULT_ROOT, jit_compile="auto", mixed_precision=None,
           steps_per_execution=1, strategy=None, dataset=None, steps=None, epochs=None,
           batch_size=None, checkpoint_iters=None, eval_every=None):
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
        density: the target density, the fraction in (0, 1] of prunable
            weights kept (absolute, not relative to the parent's).
        scope: "global" (one ranking over all layers, the paper's) or
            "layerwise" (each layer to the density); default: the parent's.
        exclude: names of layers left unpruned and not counted in the
            density (e.g. the output layer, as open_lth does); default: the
            parent's.
        out, seed, save_every, callbacks, verbose, root: as `train`; the
            seed is the run's own (not inherited).
        data_dir: where the parent's dataset files are now (default: where
            they were).
        jit_compile, mixed_precision, steps_per_execution, strategy: as
            `train`.
        dataset, steps, epochs, batch_size, checkpoint_iters, eval_every:
            derived runs inherit the parent's dataset and recipe; any given
            must agree with it.

    Returns:
        The finished `Run`.
    """
    return stages.derive(methods.REWIND, parent, locals())


def rewind_lr(parent=None, *, iteration, density, scope=None, exclude=None, out=None, seed=None,
              data_dir=None, save_every=DEFAULT_SAVE_EVERY, callbacks=None, verbose=1,
              root=runs.DEFAULT_ROOT, jit_compile="auto", mixed_precision=None,
              steps_per_execution=1, strategy=None, dataset=None, steps=None, epochs=None,
              batch_size=None, checkpoint_iters=None, eval_every=None):
    """Learning-rate rewinding: prune the final state, replay the LR from k.

    Weights, batch-norm statistics and momentum come from the parent's final
    state; the iteration counter is set to k, so the LR schedule replays
    from k; the run trains T − k steps. Arguments as `rewind`.
    """
    return stages.derive(methods.REWIND_LR, parent, locals())


def finetune(parent=None, *, iteration, density, scope=None, exclude=None, lr=None, out=None, seed=None,
             data_dir=None, save_every=DEFAULT_SAVE_EVERY, callbacks=None, verbose=1,
             root=runs.DEFAULT_ROOT, jit_compile="auto", mixed_precision=None,
             steps_per_execution=1, strategy=None, dataset=None, steps=None, epochs=None,
             batch_size=None, checkpoint_iters=None, eval_every=None):
    """Fine-tuning: prune the final state, train on at a constant LR.

    Starts from the parent's final state at the parent's last iteration and
    trains T − k steps at `lr` (default: the schedule's last value, 0.001
    at batch 128, scaled with the batch size as the whole schedule is),
    ending at 2T − k for a trained parent. `iteration` k sets only the
    length, to match a rewinding run from k. Other arguments as `rewind`.
    """
    return stages.derive(methods.FINETUNE, parent, locals())


def lowlr_rewind(parent=None, *, iteration, density, scope=None, exclude=None, lr=None, out=None,
                 seed=None, data_dir=None, save_every=DEFAULT_SAVE_EVERY,
                 callbacks=None, verbose=1, root=runs.DEFAULT_ROOT, jit_compile="auto",
                 mixed_precision=None, steps_per_execution=1, strategy=None,
                 dataset=None, steps=None, epochs=None, batch_size=None,
                 checkpoint_iters=None, eval_every=None):
    """Low-LR weight rewinding (control): rewind to k, train at a constant LR.

    As `rewind` (masks from the parent's final magnitudes; weights, batch-norm
    statistics, momentum and iteration from k; T − k steps), but at the
    constant `lr` (default: the schedule's last value, 0.001 at batch 128)
    instead of the schedule: it separates what the rewound weights
    contribute from what the rewound learning rate does. Arguments as
    `rewind`.
    """
    return stages.derive(methods.LOWLR_REWIND, parent, locals())


def random_prune(parent=None, *, iteration, density, scope=None, exclude=None, out=None, seed=None,
                 data_dir=None, save_every=DEFAULT_SAVE_EVERY, callbacks=None, verbose=1,
                 root=runs.DEFAULT_ROOT, jit_compile="auto",
                 mixed_precision=None, steps_per_execution=1, strategy=None,
                 dataset=None, steps=None, epochs=None, batch_size=None,
                 checkpoint_iters=None, eval_every=None):
    """Random pruning (control): a random mask, then weight rewinding from k.

    The mask keeps exactly round(density × N) weights chosen uniformly at
    random (seeded by the run's seed) among the parent's unpruned ones, so
    iterative rounds nest; training is then exactly `rewind`'s. Arguments
    as `rewind`.
    """
    return stages.derive(methods.RANDOM, parent, locals())


def reinit(parent=None, *, density, scope=None, exclude=None, iteration=None, out=None, seed=None,
           data_dir=None, save_every=DEFAULT_SAVE_EVERY, callbacks=None, verbose=1,
           root=runs.DEFAULT_ROOT, jit_compile="auto", mixed_precision=None,
           steps_per_execution=1, strategy=None, dataset=None, steps=None, epochs=None,
           batch_size=None, checkpoint_iters=None, eval_every=None):
    """Random reinitialization (control): the pruned mask, fresh weights.

    Masks come from the parent's final magnitudes, as in `rewind`; the
    weights are freshly initialized (from a seed derived from the run's and
    the parent's seeds, so never the parent's own initialization) and
    trained with the full schedule, T steps from step 0. It takes no
    `iteration`. Other arguments as `rewind`.
    """
    return stages.derive(methods.REINIT, parent, locals())


def branch(parent=None, *, iteration, out=None, seed=None, data_dir=None,
           save_every=DEFAULT_SAVE_EVERY, callbacks=None, verbose=1, root=runs.DEFAULT_ROOT,
           jit_compile="auto", mixed_precision=None, steps_per_execution=1,
           strategy=None, dataset=None, steps=None, epochs=None,
           batch_size=None, checkpoint_iters=None, eval_every=None):
    """Branching: a copy of the parent's state at iteration k, trained on.

    Masks, weights, batch-norm statistics, momentum and the iteration
    counter all come from the parent's checkpoint at `iteration`; nothing
    is pruned (it takes no density); the LR schedule continues from k and
    the run trains T − k steps, ending at T, with its own `seed` for the
    data order and augmentation. With the parent's seed it retraces the
    parent exactly; with another it is a copy trained with other SGD noise,
    as instability analysis needs (`keras_lottery.stability`). Arguments
    as `rewind`, without `density`.
    """
    return stages.derive(methods.BRANCH, parent,
                         dict(locals(), density=None, scope=None, exclude=None))


PROCEDURES = {
    "rewind": rewind,
    "rewind_lr": rewind_lr,
    "finetune": finetune,
    "lowlr_rewind": lowlr_rewind,
    "random": random_prune,
    "reinit": reinit,
    "branch": branch,
}


def iterate(parent=None, *, method="rewind", iteration=None, rounds, rate=0.8,
            scope=None, exclude=None, layer_rates=None, lr=None, out=None,
            seed=None, dataset=None, data_dir=None,
            save_every=DEFAULT_SAVE_EVERY, callbacks=None, verbose=1,
            root=runs.DEFAULT_ROOT, jit_compile="auto", mixed_precision=None,
            steps_per_execution=1, strategy=None):
    """Iterative pruning: `rounds` rounds of `method`, each from the last.

    Round i prunes to the absolute density base × rate^i (0.8, 0.64, 0.512,
    … from a dense base) and is a run directory `<out>/round-<i>` whose
    parent is round i − 1 (round 0 is `parent`), so masks nest. Re-running
    the call skips finished rounds, resumes an interrupted one, and can add
    rounds (a larger `rounds`).

    Example:

    >>> rounds = keras_lottery.iterate("runs/resnet20/train-s0",
    ...     method="rewind", iteration=4701, rounds=10)
    >>> [r.spec.target_density for r in rounds][:3]
    [0.8, 0.64, 0.512]

    Args:
        parent: the base run (default: the single finished train run).
        method: a derived method ("rewind", "rewind_lr", "finetune",
            "lowlr_rewind", "random", "reinit"; "rewind-lr" also works).
        iteration: k of every round (not for "reinit").
        rounds: number of rounds, >= 1.
        rate: kept fraction per round, in (0, 1).
        scope, exclude: as `rewind` (default: the base's).
        layer_rates: with `scope="layerwise"`, {layer: rate} for layers
            pruned at a rate of their own (the lottery-ticket paper prunes
            LeNet's output layer at half the hidden layers' rate:
            `{"fc_3": 0.9}` beside `rate=0.8`).
        lr: the constant LR of finetune and lowlr_rewind rounds.
        out: the study directory; default
            `<root>/<arch>/iterate-<method>-k<k>-r<rate%>-s<seed>`.
        seed: seed of every round; drawn and recorded when None.
        dataset, data_dir, save_every, callbacks, verbose, root, jit_compile,
            mixed_precision, steps_per_execution, strategy: as `rewind`
            (callbacks see every round).

    Returns:
        The list of finished rounds' `Run`s.
    """
    method = methods.get(method, pruning=True)
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise LotteryError("expected a positive integer", param="rounds", value=rounds)
    base = parents.open_parent(parent, root)
    parents.check_precision(base, mixed_precision)
    inherited = base.spec
    request = IterateSpec(
        method.name, resolve_parent(base.path), iteration, rate, seed,
        scope=scope or inherited.scope,
        exclude=inherited.exclude if exclude is None else tuple(exclude),
        layer_rates=layer_rates or ())
    study = resolver.resolve_study(request, arch=base.spec.arch, out=out, root=root)
    args = dict(iteration=iteration, lr=lr, seed=study.spec.seed, data_dir=data_dir,
                save_every=save_every, callbacks=callbacks, verbose=verbose, root=root,
                jit_compile=jit_compile, mixed_precision=mixed_precision,
                steps_per_execution=steps_per_execution, strategy=strategy,
                dataset=dataset, steps=None, epochs=None, batch_size=None,
                checkpoint_iters=None, eval_every=None, scope=study.spec.scope,
                exclude=study.spec.exclude)
    # Round 1's request, checked before the study's folder is made.
    parents.child_spec(method, base, dict(args, density=study.spec.density(base.density, 1)),
                       mixed_precision)
    made = stages.missing_folders(study.path)
    if not (study.path / runs.STUDY_JSON).exists():
        study.path.mkdir(parents=True, exist_ok=True)
        runs.write_json(study.path / runs.STUDY_JSON,
                        dict(study.spec.to_config(study.path), seed_drawn=study.seed_drawn))
    try:
        return _rounds(method, base, study, rounds, args)
    except BaseException:  # round 1 refused its input: no study was made
        stages.remove_unused(made, keep=(runs.STUDY_JSON,))
        raise


def _rounds(method, base, study, rounds, args):
    """Runs (or finds) the rounds 1..`rounds` of `study`."""
    spec = study.spec
    base_layers = dict(base.spec.layer_densities)
    base_layers = {name: base_layers.get(name, base.spec.target_density or 1.0)
                   for name, _ in spec.layer_rates}
    done, previous = [], base
    for index in range(1, rounds + 1):
        density = spec.density(base.density, index)
        if args["verbose"]:
            print(f"round {index}/{rounds}: {method.name} to density {density:g}")
        previous = stages.derive(method, previous, dict(
            args, density=density, layer_densities=spec.layer_densities(base_layers, index),
            out=study.path / f"round-{index}", round_index=index))
        done.append(previous)
    return done
