"""Parent runs: opening the parent of a derived run, and what its children
inherit from it (recipe, dataset, precision, model)."""

from keras_lottery.models import network as arch_lib
from keras_lottery import data as data_lib
from keras_lottery.runs import resolver
from keras_lottery.runs import layout
from keras_lottery.spec import record
from keras_lottery.runs.run import Run
from keras_lottery.errors import LotteryError
from keras_lottery.spec.methods import Iteration
from keras_lottery.spec.runspec import RunSpec
from keras_lottery.spec.runspec import resolve_parent
from keras_lottery.training import keras_optimizers

NPZ = "npz:"


def open_parent(parent, root=None):
    """The finished parent run a derived call names (default: the single
    finished train run under `root`, "runs" by default)."""
    if parent is None:
        parent = resolver.base_run(layout.DEFAULT_ROOT if root is None else root)
    run = parent if isinstance(parent, Run) else Run.open(parent)
    run.check()
    if run.status != record.FINISHED:
        raise LotteryError(
            f"the run is not finished (status: {run.status}); finish it first "
            "or choose another", param="parent", value=str(run.path),
        )
    return run


def model_json(parent):
    path = parent.model_config_path()
    return path.read_text() if path.exists() else None


def rebuild(parent, model_json, data):
    if model_json is not None:
        return arch_lib.from_json(model_json, str(parent.model_config_path()))
    return arch_lib.build(parent.spec.arch, None, data, parent.spec.recipe.weight_decay)


def check_precision(parent, precision):
    # fp16 states hold the loss scale too, so they load only into fp16
    # models and vice versa; bf16 and float32 states are interchangeable.
    theirs = parent.spec.precision
    if (theirs == "fp16") == (precision == "fp16"):
        return
    if theirs == "fp16":
        raise LotteryError(
            f"{parent.path} trained in fp16, whose checkpoints hold the loss "
            "scale; derive from it in fp16 too", param="mixed_precision",
            value=precision,
        )
    raise LotteryError(
        f"fp16 needs an fp16 parent (its checkpoints hold the loss scale), but "
        f"{parent.path} trained in {theirs or 'float32'}; retrain the parent "
        "in fp16, or derive in bf16 or float32", param="mixed_precision",
        value=precision,
    )


def check_inherited(inherited, request):
    """Derived runs inherit the parent's recipe; a contradicting argument is
    an error rather than a silent override."""
    recipe = inherited.recipe
    given = request.dataset
    if (isinstance(given, str) and given != inherited.dataset
            and not given.startswith(NPZ)):
        raise LotteryError(
            f"contradicts the parent's {inherited.dataset}; derived runs "
            "inherit the parent's dataset, so drop it", param="dataset",
            value=given,
        )
    for name, value in request.inherited().items():
        if name == "dataset":
            continue
        if name == "epochs":
            images = data_lib.train_size(inherited.dataset)
            ours, theirs = round(value * images / recipe.batch_size), recipe.steps
        else:
            ours = tuple(value) if name == "checkpoint_iters" else value
            theirs = getattr(recipe, name)
        if ours != theirs:
            raise LotteryError(
                f"contradicts the parent's {theirs}; derived runs inherit the "
                "parent's recipe, so drop it", param=name, value=value,
            )


def density_limit(parent):
    """The density a run pruned from `parent` must stay below: the parent's
    requested one (1 for a dense run)."""
    target = parent.spec.target_density
    return target if target is not None else 1.0


def can_prune_to(parent, density):
    """Whether `density` (a fraction) lies below `parent`'s own."""
    return density < density_limit(parent) - 1e-12


def child_spec(parent, request):
    """The `RunSpec` a `DeriveRequest` from `parent` means: what it
    inherits, checked against what the request asks."""
    method, inherited = request.how, parent.spec
    check_inherited(inherited, request)
    check_pruner(method, request.pruner)
    lr = request.lr
    if method.constant_lr and lr is None:  # the schedule's last value
        lr = keras_optimizers.final_lr(inherited.recipe)
    spec = RunSpec(
        method.name, inherited.arch, inherited.dataset, inherited.recipe,
        seed=request.seed, parent=resolve_parent(parent.path),
        iteration=request.iteration, target_density=request.density, lr=lr,
        round=request.round, scope=request.scope or inherited.scope,
        exclude=_exclude(inherited, request),
        layer_densities=request.layer_densities, pruner=request.pruner,
        pruner_options=request.pruner_options, filters=request.filters,
        level=request.level, min_per_layer=_min_per_layer(method, request, inherited),
        val_split=inherited.val_split, precision=request.execution.precision,
        model=inherited.model, data_fingerprint=inherited.data_fingerprint,
    )
    theirs = density_limit(parent)
    if spec.target_density is not None and not can_prune_to(parent, spec.target_density):
        raise LotteryError(
            f"is at or above the density of {parent.path} ({{theirs}}); density "
            "is absolute (the share of all prunable weights kept, not of the "
            "parent's), so ask for less than {theirs}", param="density",
            value=spec.target_density, densities={"theirs": theirs},
        )
    checkpoints = parent.checkpoints
    if method.iteration is Iteration.CHECKPOINT and spec.iteration not in checkpoints:
        saved = ", ".join(str(k) for k in checkpoints if isinstance(k, int))
        raise LotteryError(
            f"is not a checkpoint of {parent.path}; saved iterations: "
            f"{saved or 'none'}", param="iteration", value=spec.iteration,
        )
    if "final" not in checkpoints:
        raise LotteryError(f"{parent.path} has no final checkpoint")
    return spec


def _exclude(inherited, request):
    """The layers a child leaves: as given, else its parent's (filter
    pruning, which touches only the layers it lists, leaves none)."""
    if request.exclude is not None:
        return request.exclude
    return () if request.filters is not None else inherited.exclude
def _min_per_layer(method, request, inherited):
    """The request's, else the parent's for a method with a pruner of the
    user's choosing (magnitude's option), else 0."""
    if request.min_per_layer is not None:
        return request.min_per_layer
    return inherited.min_per_layer if method.chooses_pruner else 0


def check_pruner(method, pruner):
    """A method with a pruner of its own (the random control) takes no other."""
    if pruner is not None and not method.chooses_pruner and pruner != method.pruner:
        raise LotteryError(
            f"{method.name} prunes with its own pruner ({method.pruner}); give "
            "pruners to rewind, rewind_lr, finetune, lowlr_rewind or reinit",
            param="pruner", value=pruner)


def load_data(parent, dataset, data_dir, seed):
    """The data a child of `parent` trains on: the parent's, read again
    (from `data_dir` when given), or `dataset` (your arrays, or an npz file
    that moved) when its fingerprint is the parent's."""
    inherited = parent.spec
    if isinstance(dataset, data_lib.Dataset):
        data = dataset
    elif inherited.data_fingerprint is not None and not (
            isinstance(dataset, str) or inherited.dataset.startswith(NPZ)):
        raise LotteryError(
            f"{parent.path} trained on arrays in memory ({inherited.dataset}); "
            "pass them again as dataset=keras_lottery.data.arrays(...)",
            param="dataset", value=None,
        )
    else:
        name = dataset if isinstance(dataset, str) else inherited.dataset
        data = data_lib.load(name, data_dir, seed=seed)
    recorded = parent.config.get("data_sha256") or inherited.data_fingerprint
    if recorded is not None and data.fingerprint != recorded:
        raise LotteryError(
            f"differs from the data {parent.path} trained on (sha256 "
            f"{data.fingerprint[:12]}… != {recorded[:12]}…); derive with the "
            "parent's data", param="dataset", value=data_lib.spec_name(data),
        )
    return data

