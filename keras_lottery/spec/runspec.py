"""What a run is: `RunSpec`, one typed value, run.json's only schema.

Two requests make the same run exactly when their specs are equal, so
resuming a run and finding an `iterate` study are `==` on specs. The
constructor validates every field once; an error names the argument and the
value received (`seed=-1: expected an integer >= 0`).
"""

import dataclasses
import os
import pathlib

from keras_lottery import checks
from keras_lottery.spec import methods
from keras_lottery.errors import LotteryError
from keras_lottery.spec.recipe import Recipe

SCHEMA = 1
SCOPES = ("global", "layerwise")
# Filter pruning's pruner for a method's own ("magnitude": the paper's L1
# criterion; the random control's: as many random filters).
STRUCTURED = {"magnitude": "l1-filters", "random": "random-filters"}
PRECISIONS = (None, "bf16", "fp16")


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """Every field of what a run is.

    Attributes:
        mode: the method's name (`keras_lottery.spec.methods`), e.g. "rewind".
        arch: the architecture's name, or the name given to a model of the
            user's own (its config fingerprint is `model`).
        dataset: the dataset's name (`keras_lottery.data`).
        recipe: the training recipe (`keras_lottery.spec.recipe.Recipe`);
            derived runs carry their parent's.
        seed: seeds initialization, data order and random masks; None in a
            request means "draw one" (and any drawn seed matches it).
        parent: the parent run's directory, resolved to an absolute path.
        iteration: k, the rewind point (or the length T − k of a
            fine-tuning run); None for train and reinit.
        target_density: the fraction in (0, 1] of prunable weights a pruning
            run asks to keep (absolute); `density=` in the procedures. The
            realized fraction is the run's `density`. None for train and
            for methods that prune nothing (branch).
        lr: the constant learning rate of finetune and lowlr_rewind.
        scope: "global" (one ranking over all layers) or "layerwise".
        exclude: names of masked layers left unpruned and uncounted.
        layer_densities: with layerwise scope, ((layer, density), ...) for
            layers pruned to a density of their own (an `iterate` study's
            per-layer rates), sorted by name.
        pruner: the pruner that chose the masks (`keras_lottery.sparse.
            pruners`: "magnitude", "random", one registered, or
            "package.module:function"); None for methods that prune nothing.
        pruner_options: ((name, value), ...) given to the pruner, sorted.
        filters: filter pruning's configuration (`resnet56-A`, ...; or
            ((layer, fraction), ...)): the run removes whole filters (the
            pruner `l1-filters`, the random control's `random-filters`)
            instead of pruning to a target density.
        level: filter pruning's level i (a listed layer loses 1 − (1 − f)^i
            of its filters).
        min_per_layer: the weights the pruner keeps at least of every
            kernel (0: none; run.json omits it then, as runs written before
            it existed).
        round: the round of an `iterate` study (1, 2, ...), else None.
        val_split: test images held out as a validation set.
        precision: None (float32), "bf16" or "fp16".
        model: sha256 of a user model's config, None for named archs.
        data_fingerprint: sha256 of data of your own (arrays, npz), None
            for the named datasets.
    """

    mode: str
    arch: str
    dataset: str
    recipe: Recipe
    seed: int | None = None
    parent: str | None = None
    iteration: int | None = None
    target_density: float | None = None
    lr: float | None = None
    scope: str = "global"
    exclude: tuple = ()
    layer_densities: tuple = ()
    pruner: str | None = None
    pruner_options: tuple = ()
    filters: object = None
    level: int | None = None
    min_per_layer: int = 0
    round: int | None = None
    val_split: int = 0
    precision: str | None = None
    model: str | None = None
    data_fingerprint: str | None = None

    def __post_init__(self):
        method = methods.get(self.mode, param="mode")
        for field in ("arch", "dataset"):
            if not isinstance(getattr(self, field), str) or not getattr(self, field):
                bad(field, getattr(self, field), "expected a non-empty name")
        if not isinstance(self.recipe, Recipe):
            bad("recipe", self.recipe, "expected a keras_lottery.spec.recipe.Recipe")
        checks.optional_count(self.seed, "seed")
        checks.count(self.val_split, "val_split")
        checks.count(self.min_per_layer, "min_per_layer")
        checks.optional_count(self.round, "round", 1)
        checks.choice(self.scope, "scope", SCOPES)
        object.__setattr__(self, "exclude", checks.names(self.exclude, "exclude"))
        object.__setattr__(self, "layer_densities", layer_pairs(
            self.layer_densities, self.scope))
        if self.precision not in PRECISIONS:
            bad("mixed_precision", self.precision, "expected bf16, fp16 or None")
        if method.derived:
            self._check_derived(method)
        else:
            for field in ("parent", "iteration", "target_density", "lr", "pruner",
                          "filters", "level"):
                if getattr(self, field) is not None:
                    bad(field, getattr(self, field), "a train run has none")
            if self.min_per_layer:
                bad("min_per_layer", self.min_per_layer, "a train run prunes nothing")

    def _check_derived(self, method):
        if not isinstance(self.parent, str) or not os.path.isabs(self.parent):
            bad("parent", self.parent, "expected the parent run's absolute path")
        steps = self.recipe.steps
        if not method.iteration.taken:
            if self.iteration is not None:
                bad("iteration", self.iteration,
                     f"{method.name} trains from step 0, so it takes no iteration")
        elif checks.count(self.iteration, "iteration") >= steps:
            bad("iteration", self.iteration,
                 f"must lie in [0, {steps}) for a recipe of {steps} steps")
        self._check_pruning(method)
        if method.constant_lr:
            object.__setattr__(self, "lr", checks.number(
                self.lr, "lr", above=0, message="expected a positive learning rate"))
        elif self.lr is not None:
            bad("lr", self.lr, f"{method.name} follows the recipe's schedule; "
                 "only finetune and lowlr-rewind take a constant lr")

    def _check_pruning(self, method):
        object.__setattr__(self, "pruner_options", _options(self.pruner_options))
        if not method.prunes:
            for field in ("target_density", "pruner", "filters", "level", "min_per_layer"):
                if getattr(self, field):
                    bad(field.replace("target_", ""), getattr(self, field),
                         f"{method.name} keeps the parent's masks, so it takes no "
                         f"{field.replace('target_', '')}")
            return
        if self.filters is not None:
            self._check_filters(method)
            return
        if self.level is not None:
            bad("level", self.level, "a level goes with filters (a filter "
                 "pruning configuration)")
        if self.target_density is not None or not self.pruner_options:
            object.__setattr__(self, "target_density", checks.fraction(
                self.target_density, "density", "expected a fraction in (0, 1] of "
                "the prunable weights kept (0.8 keeps 80 %)"))
        pruner = method.pruner if self.pruner is None else self.pruner
        if not isinstance(pruner, str) or not pruner:
            bad("pruner", pruner, "expected a pruner's name")
        object.__setattr__(self, "pruner", pruner)

    def _check_filters(self, method):
        """Filter pruning: a configuration and a level instead of a density."""
        filters = self.filters
        if isinstance(filters, dict) or (isinstance(filters, (list, tuple))
                                         and not isinstance(filters, str)):
            filters = layer_pairs(filters, "layerwise", "filters", "fraction")
        elif not isinstance(filters, str) or not filters:
            bad("filters", filters, "expected a configuration's name or "
                 "{layer: fraction of its filters}")
        object.__setattr__(self, "filters", filters)
        checks.count(self.level, "level", 1, "expected a level, an integer >= 1")
        if self.target_density is not None:
            bad("density", self.target_density, "filter pruning's amount is its "
                 "configuration's and level's; give filters and level, or a density")
        if self.exclude or self.layer_densities:
            bad("exclude", list(self.exclude), "filter pruning prunes the listed "
                 "layers only; leave exclude out")
        pruner = STRUCTURED[method.pruner]
        if self.pruner not in (None, pruner):
            bad("pruner", self.pruner, f"filter pruning is the pruner {pruner} "
                 f"for {method.name}")
        object.__setattr__(self, "pruner", pruner)

    @property
    def method(self):
        """The `keras_lottery.spec.methods.Method` of this run."""
        return methods.get(self.mode, param="mode")

    def replace(self, **changes):
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def comparable(self):
        """What a run shares with the other seeds of its experiment.

        Every field but the seed and the parent (each seed has its own
        base), with `round` reduced to whether the run is iterative, and
        the target density rounded to 6 digits (0.8**2 and 0.64 agree).
        """
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        del fields["seed"], fields["parent"]
        fields["round"] = self.round is not None
        if self.target_density is not None:
            fields["target_density"] = round(self.target_density, 6)
        return tuple(fields.items())

    def differences(self, other):
        """'field mine != theirs' for each field in which `other` differs."""
        found = []
        for field in dataclasses.fields(self):
            mine, theirs = getattr(self, field.name), getattr(other, field.name)
            if mine != theirs:
                if isinstance(mine, Recipe) and isinstance(theirs, Recipe):
                    mine, theirs = _recipe_difference(mine, theirs)
                found.append(f"{field.name} {mine!r} != {theirs!r}")
        return found

    def to_config(self, directory=None):
        """The spec as run.json holds it.

        The parent is stored relative to the run's `directory`, so a moved
        tree of runs still finds it, with its absolute path as a hint.
        """
        config = {"schema": SCHEMA}
        for field in dataclasses.fields(self):
            config[field.name] = getattr(self, field.name)
        config["recipe"] = self.recipe.to_dict()
        config["exclude"] = list(self.exclude)
        config["layer_densities"] = dict(self.layer_densities)
        config["pruner_options"] = dict(self.pruner_options)
        if isinstance(self.filters, tuple):
            config["filters"] = dict(self.filters)
        if not self.min_per_layer:  # as runs written before it existed
            del config["min_per_layer"]
        if self.parent is not None and directory is not None:
            config.update(parent_config(self.parent, directory))
        return config

    @classmethod
    def from_config(cls, config, directory=None):
        """The spec of a run.json dict (other keys are the run's state).

        Raises:
            LotteryError: naming the first invalid field.
        """
        schema = config.get("schema", 0)
        if schema not in (0, SCHEMA):
            raise LotteryError(
                f"written by a newer keras_lottery (schema {schema}); upgrade "
                "keras_lottery to read it"
            )
        try:
            recipe = Recipe.from_dict(config.get("recipe"))
        except (TypeError, ValueError) as e:
            raise LotteryError(
                f"recipe is not valid ({str(e).splitlines()[0]})"
            ) from None
        names = {f.name for f in dataclasses.fields(cls)} - {"recipe", "parent"}
        fields = {k: config[k] for k in names if k in config}
        fields["exclude"] = tuple(config.get("exclude") or ())
        fields["layer_densities"] = config.get("layer_densities") or ()
        fields["pruner_options"] = config.get("pruner_options") or ()
        return cls(recipe=recipe, parent=stored_parent(config, directory),
                   **fields)


def parent_config(parent, directory):
    """run.json's parent fields: relative to the run (so a moved tree of
    runs still finds it), and absolute as a hint."""
    relative = os.path.relpath(parent, os.path.abspath(directory))
    return {"parent": pathlib.Path(relative).as_posix(), "parent_absolute": parent}


def resolve_parent(path):
    """A parent's path as specs hold it: absolute, symlinks resolved."""
    return str(pathlib.Path(path).resolve())


def stored_parent(config, directory):
    parent = config.get("parent")
    if parent is None:
        return None
    if not isinstance(parent, str):
        bad("parent", parent, "expected the parent run's path")
    hint = config.get("parent_absolute")
    if directory is not None and hint is not None:
        relative = pathlib.Path(directory) / parent
        if relative.exists() or not pathlib.Path(hint).exists():
            return resolve_parent(relative)
        return resolve_parent(hint)
    # Before schema 1, parents were stored as typed (relative to the
    # working folder the run was started from).
    return resolve_parent(hint or parent)


def layer_pairs(value, scope, param="layer_densities", what="density"):
    """((layer, fraction), ...) sorted by layer, from pairs or a dict; an
    error names `param` (`layer_rates` for an iterate chain's rates)."""
    pairs = value.items() if isinstance(value, dict) else value
    try:
        pairs = tuple(sorted((str(k), v) for k, v in pairs))
    except (TypeError, ValueError):
        bad(param, value, f"expected {{layer: {what}}}")
    for name, density in pairs:
        if not checks.is_number(density) or not 0 < density <= 1:
            bad(param, dict(pairs), f"the {what} of {name} must be a fraction in (0, 1]")
    if pairs and scope != "layerwise":
        bad(param, dict(pairs), f"per-layer {what}s need the layerwise scope")
    return tuple((name, float(d)) for name, d in pairs)


def _options(value):
    """((name, value), ...) sorted by name, from a dict or pairs."""
    pairs = value.items() if isinstance(value, dict) else value or ()
    try:
        return tuple(sorted((str(k), v) for k, v in pairs))
    except (TypeError, ValueError):
        bad("pruner_options", value, "expected {option: value}")


def _recipe_difference(mine, theirs):
    a, b = mine.to_dict(), theirs.to_dict()
    keys = [k for k in a if a[k] != b.get(k)]
    return ({k: a[k] for k in keys}, {k: b.get(k) for k in keys})


def bad(field, value, message):
    raise LotteryError(message, param=field, value=value)
