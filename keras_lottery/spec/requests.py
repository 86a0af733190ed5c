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
import pathlib

from keras_lottery import checks
from keras_lottery.errors import LotteryError
from keras_lottery.spec import methods
from keras_lottery.spec.execution import Execution

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
    seed: int = None
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
class TrainRequest(Request):
    """A run from scratch (`keras_lottery.train`'s arguments).

    Attributes:
        arch: an architecture name, a Keras model, a `.keras` file or
            "package.module:function".
        dataset: a dataset name, "npz:PATH" or a `keras_lottery.data.Dataset`.
        recipe: a preset name, a `.toml` file or a `Recipe`; None: renda2020.
        steps, epochs, batch_size, checkpoint_iters, eval_every: override
            the recipe's.
        val_split: test images held out for validation; None: the paper's
            on CIFAR, else none.
    """

    arch: object = "resnet20"
    dataset: object = "cifar10"
    recipe: object = None
    steps: int = None
    epochs: float = None
    batch_size: int = None
    checkpoint_iters: tuple = None
    eval_every: int = None
    val_split: int = None

    def __post_init__(self):
        super().__post_init__()
        _check_dataset(self.dataset)
        _check_recipe(self)


@dataclasses.dataclass(frozen=True, kw_only=True)
class DeriveRequest(Request):
    """A run derived from `parent` by `method`.

    Attributes:
        method: the method's name (`keras_lottery.spec.methods`).
        parent: the parent run (a path or a `Run`); None: the single
            finished train run under `root`.
        iteration: k.
        density: the target density, a fraction in (0, 1].
        scope, exclude: how the pruner ranks and which layers it leaves;
            None: the parent's.
        layer_densities: with layerwise scope, {layer: density}.
        lr: the constant LR of finetune and lowlr_rewind.
        pruner: the registered pruner's name, or "module:function"; None:
            the method's (`magnitude`, the random control's `random`).
        min_per_layer: the weights magnitude pruning keeps at least of
            every kernel; None: the parent's (0 for a train run).
        round: the round of an `iterate` study.
        dataset, steps, epochs, batch_size, checkpoint_iters, eval_every:
            inherited from the parent; given, they must agree with it.
    """

    method: str
    parent: object = None
    iteration: int = None
    density: float = None
    scope: str = None
    exclude: tuple = None
    layer_densities: tuple = ()
    lr: float = None
    pruner: str = None
    min_per_layer: int = None
    round: int = None
    dataset: object = None
    steps: int = None
    epochs: float = None
    batch_size: int = None
    checkpoint_iters: tuple = None
    eval_every: int = None

    def __post_init__(self):
        super().__post_init__()
        method = methods.get(self.method, derived=True)
        object.__setattr__(self, "method", method.name)
        _check_pruning(self)
        checks.optional_count(self.iteration, "iteration")
        if self.density is not None:
            checks.fraction(self.density, "density", "expected a fraction in (0, 1] "
                            "of the prunable weights kept (0.8 keeps 80 %)")
        if self.lr is not None:
            checks.number(self.lr, "lr", above=0, message="expected a positive learning rate")
        checks.optional_count(self.round, "round", 1)
        object.__setattr__(self, "layer_densities", _pairs(self.layer_densities))
        _check_dataset(self.dataset)
        _check_recipe(self)

    @property
    def how(self):
        return methods.get(self.method)

    def inherited(self):
        """{name: value} of the recipe and dataset arguments given."""
        return {name: getattr(self, name) for name in INHERITED
                if getattr(self, name) is not None}


@dataclasses.dataclass(frozen=True, kw_only=True)
class IterateRequest(Request):
    """Rounds of a pruning method, each from the last (`keras_lottery.iterate`).

    Attributes:
        method: a derived method that prunes.
        parent: the base run; None: the single finished train run.
        iteration: k of every round (None for reinit).
        rounds: the number of rounds, >= 1.
        rate: the fraction of the remaining weights each round keeps.
        scope, exclude, pruner, min_per_layer, lr: as `DeriveRequest`.
        layer_rates: with layerwise scope, {layer: rate}.
        dataset: the parent's data given again (arrays in memory).
    """

    method: str = "rewind"
    parent: object = None
    iteration: int = None
    rounds: int
    rate: float = 0.8
    scope: str = None
    exclude: tuple = None
    layer_rates: tuple = ()
    lr: float = None
    pruner: str = None
    min_per_layer: int = None
    dataset: object = None

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "method", methods.get(self.method, pruning=True).name)
        _check_pruning(self)
        checks.count(self.rounds, "rounds", 1, "expected a positive integer")
        checks.optional_count(self.iteration, "iteration")
        checks.number(self.rate, "rate", above=0, below=1, message="expected a "
                      "fraction in (0, 1) (0.8 keeps 80 % per round)")
        object.__setattr__(self, "layer_rates", _pairs(self.layer_rates))
        _check_dataset(self.dataset)

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


def _check_pruning(request):
    if request.scope is not None:
        checks.choice(request.scope, "scope", SCOPES)
    if request.exclude is not None:
        object.__setattr__(request, "exclude", checks.names(request.exclude, "exclude"))
    checks.optional_count(request.min_per_layer, "min_per_layer")
    if request.pruner is not None and not isinstance(request.pruner, str):
        raise LotteryError("expected a registered pruner's name or "
                           "package.module:function", param="pruner",
                           value=request.pruner)


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
