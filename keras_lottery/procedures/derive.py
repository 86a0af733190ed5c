"""A derived run: a method (`keras_lottery.spec.methods`) applied to a parent.

`derive(request)` resolves a `DeriveRequest` into the run it means and
hands it to the shared lifecycle; `start_state` is what the method's table
row says a new run starts from: masks (a pruner on the parent's final
state, or the parent's own at k), weights, batch-norm statistics and
momentum (the parent's at k, its final state, or a fresh initialization),
and the iteration counter.
"""

import warnings

from keras_lottery.errors import LotteryError
from keras_lottery.procedures import lifecycle
from keras_lottery.procedures import parents
from keras_lottery.runs import resolver
from keras_lottery.sparse import pruners
from keras_lottery.sparse import pruning
from keras_lottery.spec.methods import Masks
from keras_lottery.spec.methods import Weights
from keras_lottery.training import compile as compile_lib
from keras_lottery.training import timing
from keras_lottery.training.state import load_state


def derive(request, *, verbose=1, callbacks=None):
    """Trains (or resumes, or finds finished) the run `request` (a
    `DeriveRequest`) asks for; returns its `Run`."""
    clock = timing.Stopwatch("data")
    parent = parents.open_parent(request.parent, request.root)
    parents.check_precision(parent, request.execution.precision)
    request.execution.check_devices()
    spec = parents.child_spec(parent, request)
    root = lifecycle.child_root(parent, request.root)
    found = resolver.resolve(spec, out=request.out, root=root)
    if lifecycle.finished(found, verbose):
        return found.run
    method = spec.method
    data_dir = request.data_dir or parent.record.data_dir
    data = parents.load_data(parent, request.dataset, data_dir, lifecycle.DATA_SEED)
    start, end = method.bounds(steps=spec.recipe.steps, iteration=spec.iteration,
                               parent_end=parent.end_step)
    model_json = parents.model_json(parent)
    job = lifecycle.Job(
        found, data, data_dir, request.execution,
        build=lambda: parents.rebuild(parent, model_json, data), bounds=(start, end),
        init_seed=method.init_seed(found.spec.seed, parent.spec.seed),
        model_json=model_json, save_every=request.save_every,
        root=root if request.out is None else None, clock=clock,
        prepare=lambda model: start_state(model, parent, found.spec, data,
                                          request.execution, start))
    return lifecycle.run(job, verbose=verbose, callbacks=callbacks)


def start_state(model, parent, spec, data, execution, start):
    """Sets a new derived run's start state into its compiled `model`:
    masks from the method's source (nesting in the parent's), then
    weights from its source, then the iteration counter."""
    method = spec.method
    if method.masks is Masks.PARENT:
        load_state(model, parent.checkpoints[spec.iteration], spec.iteration)
        model.optimizer.iterations.assign(start)
        return
    fresh = method.weights is Weights.INIT
    source = parents.rebuild(parent, parents.model_json(parent), data) if fresh else model
    if fresh:
        compile_lib.compile_model(source, spec.recipe, execution, lr=spec.lr)
    load_state(source, parent.checkpoints["final"], parent.end_step)
    check_exclude(source, spec.exclude)
    check_layer_densities(source, spec.layer_densities)
    masks = pruners.new_masks(
        source, spec.target_density, pruner=spec.pruner, exclude=spec.exclude,
        seed=spec.seed, scope=spec.scope, layer_densities=dict(spec.layer_densities),
        min_per_layer=spec.min_per_layer, **_options(spec))
    warn_collapse(source, masks, spec)
    kept = sum(int(m.sum()) for m in masks.values())
    if kept == 0:
        total = sum(m.size for m in masks.values())
        raise LotteryError(
            f"keeps no weight (round(density x {total:,}) = 0); ask for at "
            "least {least}", param="density", value=spec.target_density,
            densities={"least": float(f"{1 / total:.2g}")},
        )
    # The final state is loaded already (it is the prune point); a fresh
    # initialization is the model as built.
    if method.weights is Weights.AT_K:
        load_state(model, parent.checkpoints[spec.iteration], spec.iteration)
    model.optimizer.iterations.assign(start)
    pruning.set_masks(model, masks)


def _options(spec):
    """The pruner's own options: those given, and filter pruning's
    configuration and level."""
    options = dict(spec.pruner_options)
    if spec.filters is not None:
        filters = spec.filters
        options.update(config=dict(filters) if isinstance(filters, tuple) else filters,
                       level=spec.level)
    return options
def warn_collapse(model, masks, spec):
    """Warns in one line about the kernels the new `masks` leave with no
    weight that had some in `model` (the prune point; see
    `pruners.collapse_warning`)."""
    excluded = pruning.excluded_keys(model, spec.exclude)
    before = pruning.get_masks(model)
    ranked = {key: masks.get(key, mask) for key, mask in before.items()
              if key not in excluded}
    message = pruners.collapse_warning(ranked, before, spec.target_density)
    if message:
        warnings.warn(message, stacklevel=2)


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
