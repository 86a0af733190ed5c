"""Requests: what a call of a procedure asks, one typed value checked once.

A procedure's keyword arguments, the `lottery` command's flags and a study
file's node all become one of these frozen requests, checked here before
anything loads TensorFlow; the procedures then resolve it into the
`RunSpec` of the run it means (what a derived run inherits from its parent
is decided there, not here). `None` means "the default": the recipe's, the
parent's, a drawn seed.

- `TrainRequest`: a run from scratch (`keras_lottery.train`);
- `DeriveRequest`: a run derived from a parent by a method (`rewind`,
  `rewind_lr`, `finetune`, the controls, `branch`), or one round of an
  `iterate` study;
- `IterateRequest`: rounds of a pruning method, each from the last.

`to_dict`/`from_dict` give a request as JSON (a study's plan stores its
nodes' requests so); a model, dataset or recipe object given from Python
has no JSON form and is refused there.
"""

import dataclasses
import os
import pathlib

from keras_lottery import checks
from keras_lottery.errors import LotteryError
from keras_lottery.spec import methods
from keras_lottery.sparse import filter_configs
from keras_lottery.spec import pruning_methods
from keras_lottery.spec.execution import Execution
from keras_lottery.spec.optimizer_config import OptimizerConfig

DEFAULT_SAVE_EVERY = 1000
# The paper held out 2,000 of CIFAR's 10,000 test images for choosing: the
# default validation split of a train run on CIFAR's real test set.
PAPER_VAL_SPLIT = 2000
PAPER_DATASETS = ("cifar10", "cifar100")
CIFAR_TEST_IMAGES = 10000
SCOPES = ("global", "layerwise")
# The keyword arguments of the procedures that make up an `Execution`.
EXECUTION_ARGUMENTS = {"jit_compile": "jit_compile", "mixed_precision": "precision",
                       "steps_per_execution": "steps_per_execution",
                       "strategy": "strategy"}
# What a derived run inherits: given, it must agree with the parent's.
INHERITED = ("dataset", "steps", "epochs", "batch_size", "checkpoint_iters",
             "eval_every")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Request:
    """What every request has.

    Attributes:
        out: the run (or study) directory; None: the default under `root`.
        seed: the run's seed; None: draw one (and record it).
        root: where default directories go; None: "runs" for a train run,
            the parent's root for a derived one.
        data_dir: where the dataset's files are.
        save_every: steps between the resume states of a running run.
        execution: how the run executes (`Execution`).
    """

    out: object = None
    seed: int | None = None
    root: object = None
    data_dir: object = None
    save_every: int = DEFAULT_SAVE_EVERY
    execution: Execution = Execution()

    def __post_init__(self):
        checks.optional_count(self.seed, "seed")
        checks.count(self.save_every, "save_every", 1, "expected a positive number of steps")
        for field in ("out", "root", "data_dir"):
            value = getattr(self, field)
            if value is not None and not isinstance(value, (str, pathlib.PurePath)):
                raise LotteryError("expected a folder's path", param=field, value=value)
        if not isinstance(self.execution, Execution):
            raise LotteryError("expected a keras_lottery execution setting",
                               param="execution", value=self.execution)

    @classmethod
    def from_arguments(cls, arguments, **fields):
        """A request from a procedure's keyword arguments (`jit_compile`,
        `mixed_precision`, ... become its `execution`)."""
        arguments = dict(arguments, **fields)
        execution = {EXECUTION_ARGUMENTS[k]: arguments.pop(k)
                     for k in EXECUTION_ARGUMENTS if k in arguments}
        return cls(**arguments, execution=Execution(**execution))

    def replace(self, **changes):
        """A copy with some fields changed (checked again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self):
        """The request as JSON values (paths as text)."""
        found = {"request": type(self).__name__}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, pathlib.PurePath):
                value = str(value)
            elif isinstance(value, Execution):
                value = value.to_dict()
            elif isinstance(value, tuple):
                value = [list(v) if isinstance(v, tuple) else v for v in value]
            elif not isinstance(value, (str, int, float, bool, list, dict, type(None))):
                raise LotteryError(f"a {type(value).__name__} has no JSON form; give "
                                   "a name or a path", param=field.name, value=value)
            found[field.name] = value
        return found

    @staticmethod
    def from_dict(config):
        """The request `to_dict` gave."""
        config = dict(config)
        kind = REQUESTS[config.pop("request")]
        config["execution"] = Execution(**config.get("execution") or {})
        for field in ("exclude", "checkpoint_iters", "layer_densities", "layer_rates"):
            if isinstance(config.get(field), list):
                config[field] = tuple(tuple(v) if isinstance(v, list) else v
                                      for v in config[field])
        return kind(**config)


@dataclasses.dataclass(frozen=True, kw_only=True)
class _RecipeGiven(Request):
    """Recipe quantities a request gives (None: the recipe's, or the
    parent's for a derived run, which must agree)."""

    steps: int | None = None
    epochs: float | None = None
    batch_size: int | None = None
    checkpoint_iters: tuple | None = None
    eval_every: int | None = None

    def __post_init__(self):
        super().__post_init__()
        _check_recipe(self)


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainRequest(_RecipeGiven):
    """A run from scratch (`keras_lottery.train`'s arguments).

    Attributes:
        arch: an architecture name, a Keras model, a `.keras` file or
            "package.module:function".
        dataset: a dataset name, "npz:PATH" or a `keras_lottery.data.Dataset`.
        recipe: a preset name, a `.toml` file or a `Recipe`; None: renda2020.
        optimizer: the recipe's optimizer instead: a built-in name, a Keras
            optimizer (held as its config) or its config.
        steps, epochs, batch_size, checkpoint_iters, eval_every: override
            the recipe's.
        val_split: test images held out for validation; None: the paper's
            on CIFAR, else none.
    """

    arch: object = "resnet20"
    dataset: object = "cifar10"
    recipe: object = None
    optimizer: object = None
    val_split: int | None = None

    def __post_init__(self):
        super().__post_init__()
        _check_dataset(self.dataset)
        if self.optimizer is not None and not isinstance(self.optimizer, str):
            # Held as its config (JSON), so a study's plan can store it.
            object.__setattr__(self, "optimizer", OptimizerConfig.of(self.optimizer).to_dict())


@dataclasses.dataclass(frozen=True, kw_only=True)
class _FromParent(Request):
    """What a request derived from a parent run has.

    Attributes:
        method: the method's name (`keras_lottery.spec.methods`).
        iteration: k.
        parent: the parent run (a path or a `Run`); None: the single
            finished train run under `root`.
        scope, exclude: how the pruner ranks and which layers it leaves;
            None: the parent's.
        lr: the constant LR of finetune and lowlr_rewind.
        pruner: the registered pruner's name, or "module:function"; None:
            the method's (`magnitude`, the random control's `random`).
        dataset: the parent's data given again (arrays in memory, an npz
            file that moved).
        min_per_layer: the weights magnitude pruning keeps at least of
            every kernel; None: the parent's (0 for a train run).
    """

    method: str
    iteration: int | None = None
    parent: object = None
    scope: str | None = None
    exclude: tuple | None = None
    lr: float | None = None
    pruner: str | None = None
    dataset: object = None
    min_per_layer: int | None = None

    def __post_init__(self):
        super().__post_init__()
        if not (self.parent is None or isinstance(self.parent, (str, os.PathLike))
                or hasattr(self.parent, "checkpoints")):  # a Run
            raise LotteryError("expected a run directory's path or a Run",
                               param="parent", value=self.parent)
        if self.scope is not None:
            checks.choice(self.scope, "scope", SCOPES)
        if self.exclude is not None:
            object.__setattr__(self, "exclude", checks.names(self.exclude, "exclude"))
        if self.pruner is not None and not isinstance(self.pruner, str):
            raise LotteryError("expected a registered pruner's name or "
                               "package.module:function", param="pruner",
                               value=self.pruner)
        checks.optional_count(self.iteration, "iteration")
        checks.optional_count(self.min_per_layer, "min_per_layer")
        if self.lr is not None:
            checks.number(self.lr, "lr", above=0, message="expected a positive learning rate")
        _check_dataset(self.dataset)

    @property
    def how(self):
        """The `Method` of the request."""
        return methods.get(self.method)


@dataclasses.dataclass(frozen=True, kw_only=True)
class DeriveRequest(_FromParent, _RecipeGiven):
    """A run derived from `parent` by `method` (the procedures `rewind`,
    `rewind_lr`, ..., `branch`; one round of `iterate`).

    Attributes:
        density: the target density, a fraction in (0, 1].
        filters, level: filter pruning instead of a density: a
            configuration (`resnet56-A`, ... or {layer: fraction}) and its
            level i.
        pruner_options: {option: value} given to the pruner.
        pruning_method: the original code's name of it all
            (`prune_all_to_global_80`, `prune_resnet56_A_3`, ...; see
            `keras_lottery.sparse.original`), read into the fields above.
        layer_densities: with layerwise scope, {layer: density}.
        round: the round of an `iterate` chain.
        dataset, steps, epochs, batch_size, checkpoint_iters, eval_every:
            inherited from the parent; given, they must agree with it.
        (and those of every request derived from a parent, `_FromParent`)
    """

    density: float | None = None
    filters: object = None
    level: int | None = None
    pruner_options: object = ()
    pruning_method: str | None = None
    layer_densities: tuple = ()
    round: int | None = None

    def __post_init__(self):
        object.__setattr__(self, "method", methods.get(self.method, derived=True).name)
        super().__post_init__()
        if self.pruning_method is not None:
            self._read_pruning_method()
        if self.density is not None:
            checks.fraction(self.density, "density", "expected a fraction in (0, 1] "
                            "of the prunable weights kept (0.8 keeps 80 %)")
        checks.optional_count(self.level, "level", 1, "expected a level, an integer >= 1")
        if self.filters is not None:
            self._check_filters()
        object.__setattr__(self, "pruner_options", _pairs(self.pruner_options))
        if (self.how.prunes and self.density is None and self.filters is None
                and not self.pruner_options):
            raise LotteryError("give a density (the fraction of prunable weights "
                               "kept), or filters and level", param="density", value=None)
        checks.optional_count(self.round, "round", 1)
        object.__setattr__(self, "layer_densities", _pairs(self.layer_densities))

    def _check_filters(self):
        given = dict(self.filters) if isinstance(self.filters, (list, tuple)) else self.filters
        try:
            filter_configs.fractions(given)
        except LotteryError as e:
            raise LotteryError(e.message, param="filters", value=e.value) from None
        if isinstance(given, dict):
            object.__setattr__(self, "filters", _pairs(given))
        if self.level is None:
            raise LotteryError("needs a level (1 to 5 are the paper's)", param="filters",
                               value=self.filters)

    def _read_pruning_method(self):
        """The original's name, read into density, filters, level, pruner
        and its options; a field given as well must agree."""
        for name, value in pruning_methods.parse(self.pruning_method).items():
            given = getattr(self, name)
            if value is None:
                continue
            if given not in (None, (), {}) and given != value:
                raise LotteryError(f"says {name} {value!r}, but {name}={given!r} is "
                                   "given too; give one of them", param="pruning_method",
                                   value=self.pruning_method)
            object.__setattr__(self, name, value)

    def inherited(self):
        """{name: value} of the recipe and dataset arguments given."""
        return {name: getattr(self, name) for name in INHERITED
                if getattr(self, name) is not None}


@dataclasses.dataclass(frozen=True, kw_only=True)
class IterateRequest(_FromParent):
    """Rounds of a pruning method, each from the last (`keras_lottery.iterate`).

    Attributes:
        method: a derived method that prunes (default "rewind").
        rounds: the number of rounds, >= 1.
        rate: the fraction of the remaining weights each round keeps.
        layer_rates: with layerwise scope, {layer: rate}.
        (and those of every request derived from a parent, `_FromParent`)
    """

    method: str = "rewind"
    rounds: int
    rate: float = 0.8
    layer_rates: tuple = ()

    def __post_init__(self):
        object.__setattr__(self, "method", methods.get(self.method, pruning=True).name)
        super().__post_init__()
        checks.count(self.rounds, "rounds", 1, "expected a positive integer")
        checks.number(self.rate, "rate", above=0, below=1, message="expected a "
                      "fraction in (0, 1) (0.8 keeps 80 % per round)")
        object.__setattr__(self, "layer_rates", _pairs(self.layer_rates))

    def round_request(self, index, *, parent, density, layer_densities, out, seed,
                      scope, exclude):
        """The `DeriveRequest` of round `index` (1, 2, ...) from `parent`
        (round index - 1), with the chain's seed, scope and exclusions."""
        return DeriveRequest(
            method=self.method, parent=parent, iteration=self.iteration,
            density=density, scope=scope, exclude=exclude,
            layer_densities=layer_densities, lr=self.lr, pruner=self.pruner,
            min_per_layer=self.min_per_layer, round=index, dataset=self.dataset,
            out=out, seed=seed, root=self.root, data_dir=self.data_dir,
            save_every=self.save_every,
            execution=self.execution)


def _check_dataset(dataset):
    """A name, "npz:PATH" or a `keras_lottery.data.Dataset` (None: the
    default); arrays are refused in one line naming `data.arrays`."""
    if dataset is None or isinstance(dataset, str) or hasattr(dataset, "x_train"):
        return
    raise LotteryError(
        "expected a dataset name, npz:PATH or a keras_lottery.data.Dataset; for "
        "arrays pass keras_lottery.data.arrays(x_train, y_train, x_test, y_test)",
        param="dataset", value=checks.summary(dataset))


def _check_recipe(request):
    """The recipe fields a request gives, checked as `recipe.make` will."""
    for name in ("steps", "batch_size", "eval_every"):
        checks.optional_count(getattr(request, name), name, 1, "expected a positive integer")
    if request.epochs is not None:
        if request.steps is not None:
            raise LotteryError("give steps or epochs, not both", param="epochs",
                               value=request.epochs)
        checks.number(request.epochs, "epochs", above=0, message="expected a positive number")
    if request.checkpoint_iters is not None:
        if isinstance(request.checkpoint_iters, (str, bytes)):
            raise LotteryError("expected a list of steps", param="checkpoint_iters",
                               value=request.checkpoint_iters)
        object.__setattr__(request, "checkpoint_iters", tuple(request.checkpoint_iters))


def _pairs(value):
    """((name, value), ...) from a dict or pairs (None: none)."""
    if isinstance(value, dict):
        return tuple(sorted(value.items()))
    return tuple(value or ())


REQUESTS = {kind.__name__: kind for kind in (TrainRequest, DeriveRequest, IterateRequest)}
