"""The paper's procedures: train, rewind, rewind_lr, finetune, the
controls, `branch` and `iterate`.

A call's arguments become one typed request (`keras_lottery.spec.requests`),
checked once; `fresh.train`, `derive.derive` and `chains.iterate` resolve it
into the run it means, and `lifecycle` trains it. Calling again resumes an
interrupted run or returns a finished one. Each derived method's procedure
is made from its row of the method table (`keras_lottery.spec.methods`),
which says what it restores and which arguments it takes (`calls`).

Modules: `lifecycle` (the life of every run), `fresh` (a run from
scratch), `derive` (a method applied to a parent), `parents` (what a
derived run inherits), `chains` (iterative pruning), `calls` (arguments
into requests), `demo`.
"""

from keras_lottery.procedures import calls
from keras_lottery.procedures import chains
from keras_lottery.procedures import derive as derive_lib
from keras_lottery.procedures import fresh
from keras_lottery.spec import methods
from keras_lottery.spec.requests import DEFAULT_SAVE_EVERY
from keras_lottery.spec.requests import DeriveRequest
from keras_lottery.spec.requests import IterateRequest
from keras_lottery.spec.requests import TrainRequest


def execute(request, *, verbose=1, callbacks=None):
    """Carries out any request (`keras_lottery.spec.requests`): a
    `TrainRequest`, a `DeriveRequest` or an `IterateRequest`; returns the
    `Run` (a list of them for an `IterateRequest`)."""
    run = {TrainRequest: fresh.train, DeriveRequest: derive_lib.derive,
           IterateRequest: chains.iterate}[type(request)]
    return run(request, verbose=verbose, callbacks=callbacks)


@calls.bind(TrainRequest, fresh.train)
def train(arch="resnet20", *, out=None, dataset="cifar10", data_dir=None,
          recipe=None, optimizer=None, steps=None, epochs=None, batch_size=None,
          checkpoint_iters=None, eval_every=None, seed=None,
          save_every=DEFAULT_SAVE_EVERY, val_split=None, jit_compile="auto",
          mixed_precision=None, steps_per_execution=1, strategy=None,
          callbacks=None, verbose=1, root=None):
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
        recipe: a preset name (`keras_lottery.spec.recipe.PRESETS`; default
            "renda2020", the paper's), a `.toml` file of recipe fields, or a
            `Recipe` (`keras_lottery.spec.recipe.make(...)`).
        optimizer: the recipe's optimizer instead: any Keras optimizer
            (`keras.optimizers.AdamW(keras.optimizers.schedules.CosineDecay(
            1e-3, 2000), weight_decay=0.05)`), its learning rate a number or
            any `LearningRateSchedule` (a class of your own registered with
            `keras.saving.register_keras_serializable`), or its config
            `{class_name, config}`; a built-in name ("momentum", "sgd",
            "nesterov", "adam") picks one of the recipe's. Stored in run.json
            (its full config), inherited by derived runs, which restore its
            slots at k (whatever they are) and replay its schedule. Refused in
            one line when a rewind could not rebuild it from its config.
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
            the run executes, see `keras_lottery.spec.execution.Execution`.
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


# Python names of the derived methods' procedures (the random control is
# `random_prune`, so as not to shadow the standard module).
NAMES = {"random": "random_prune"}
PROCEDURES = {name: calls.derived(method, NAMES.get(name, name), derive_lib.derive)
              for name, method in methods.METHODS.items() if method.derived}
rewind = PROCEDURES["rewind"]
rewind_lr = PROCEDURES["rewind_lr"]
finetune = PROCEDURES["finetune"]
lowlr_rewind = PROCEDURES["lowlr_rewind"]
random_prune = PROCEDURES["random"]
reinit = PROCEDURES["reinit"]
branch = PROCEDURES["branch"]


@calls.bind(IterateRequest, chains.iterate)
def iterate(parent=None, *, method="rewind", iteration=None, rounds, rate=0.8,
            scope=None, exclude=None, pruner=None, min_per_layer=None, layer_rates=None,
            lr=None, out=None,
            seed=None, dataset=None, data_dir=None,
            save_every=DEFAULT_SAVE_EVERY, callbacks=None, verbose=1,
            root=None, jit_compile="auto", mixed_precision=None,
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
        scope, exclude, pruner, min_per_layer: as `rewind` (default: the
            base's scope and exclusions, magnitude pruning).
        layer_rates: with `scope="layerwise"`, {layer: rate} for layers
            pruned at a rate of their own (the lottery-ticket paper prunes
            LeNet's output layer at half the hidden layers' rate:
            `{"fc_3": 0.9}` beside `rate=0.8`).
        lr: the constant LR of finetune and lowlr_rewind rounds.
        out: the study directory; default
            `<root>/<arch>/iterate-<method>-k<k>-r<rate%>-s<seed>`.
        seed: seed of every round; drawn and recorded when None.
        dataset, data_dir, save_every, callbacks, verbose, root: as `rewind`
            (callbacks see every round).
        jit_compile, mixed_precision, steps_per_execution, strategy: as
            `rewind`.

    Returns:
        The list of finished rounds' `Run`s.
    """
