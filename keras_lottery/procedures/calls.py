"""How a procedure's keyword arguments become a request.

`train` and `iterate` are written out; every derived method's procedure
(`rewind`, `rewind_lr`, ...) is made here from its row of the method table:
its signature takes the arguments that apply to the method (k, a density,
a pruner, a constant LR, ...) and those every run takes, and its docstring
is the method's own text with the arguments documented once, below.
"""

import functools
import inspect

from keras_lottery.spec.methods import Iteration
from keras_lottery.spec.requests import DEFAULT_SAVE_EVERY
from keras_lottery.spec.requests import DeriveRequest

# Arguments of a call that are not part of its request.
RUNTIME = ("verbose", "callbacks")
_KEYWORD = inspect.Parameter.KEYWORD_ONLY
# Every run's own arguments, in signature order, with their defaults.
COMMON = (("out", None), ("seed", None), ("data_dir", None),
          ("save_every", DEFAULT_SAVE_EVERY), ("callbacks", None), ("verbose", 1),
          ("root", None), ("jit_compile", "auto"), ("mixed_precision", None),
          ("steps_per_execution", 1), ("strategy", None), ("dataset", None),
          ("steps", None), ("epochs", None), ("batch_size", None),
          ("checkpoint_iters", None), ("eval_every", None))
ARGUMENTS = {
    "parent": """a finished run (path or `Run`); default: the single finished
        train run under `root`.""",
    "iteration": {
        Iteration.CHECKPOINT: "k, a checkpoint iteration the parent saved.",
        Iteration.LENGTH: """k: the run trains T − k steps, as a rewinding run from k
        does (any step in [0, T)).""",
        Iteration.NONE: "none: the run trains from step 0 (giving one is an error).",
    },
    "density": """the target density, the fraction in (0, 1] of prunable
        weights kept (absolute, not relative to the parent's).""",
    "filters": """filter pruning instead of a density (`level` with it): the
        paper's configuration ("resnet56-A", "resnet56-B", "resnet110-A",
        "resnet110-B", "resnet34-A", "resnet34-B", "vgg16-A") or {layer:
        fraction of its filters}; whole filters go, by L1 norm (the random
        control: as many, at random), their readers' input channels with them.""",
    "level": """filter pruning's level i: a listed layer loses 1 − (1 − f)^i of
        its filters (the paper's points are levels 1 to 5).""",
    "scope": """"global" (one ranking over all layers, the paper's) or
        "layerwise" (each layer to the density); default: the parent's.""",
    "exclude": """names of layers left unpruned and not counted in the
        density (e.g. the output layer, as open_lth does); default: the
        parent's.""",
    "pruner": """the pruning criterion: "magnitude" (the default, the
        paper's), "random", "zscore", "conv-global", a name given to
        `register_pruner`, or "package.module:function"; recorded in run.json.""",
    "pruner_options": """{option: value} given to the pruner (its own keyword
        arguments); recorded in run.json.""",
    "min_per_layer": """keep at least this many weights of every kernel
        (magnitude pruning, global scope), so that no layer collapses to
        nothing; default: the parent's (0: none).""",
    "pruning_method": """the original code's name for what to prune
        ("prune_all_to_global_80", "zprune_all_to_global_80",
        "prune_global_20", "prune_resnet56_A_3", ...), read into the
        arguments above.""",
    "lr": """the constant learning rate; default: the schedule's last value
        (0.001 at batch 128, scaled with the batch size as the schedule is).""",
    "out, seed, save_every, callbacks, verbose, root": """as `train`; the seed
        is the run's own (not inherited); default folders go under `root`.""",
    "data_dir": """where the parent's dataset files are now (default: where
        they were).""",
    "jit_compile, mixed_precision, steps_per_execution, strategy": "as `train`.",
    "dataset, steps, epochs, batch_size, checkpoint_iters, eval_every": """derived
        runs inherit the parent's dataset and recipe; any given must agree with it
        (give `dataset` again for data of your own held in memory).""",
}


def bind(request_type, execute, **fixed):
    """Makes the decorated signature a procedure: its arguments, bound as
    the signature documents them, become a `request_type` (with `fixed`
    fields), which `execute` carries out."""

    def decorate(function):
        return _calling(function, inspect.signature(function), request_type, execute, fixed)

    return decorate


def _calling(function, signature, request_type, execute, fixed):
    @functools.wraps(function)
    def procedure(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        arguments = dict(bound.arguments)
        runtime = {name: arguments.pop(name) for name in RUNTIME}
        return execute(request_type.from_arguments(arguments, **fixed), **runtime)

    procedure.__signature__ = signature
    return procedure


def derived(method, name, execute):
    """The public procedure `name` of `method` (a `Method`): a function of
    the arguments the method takes, documented, that `execute`s its
    `DeriveRequest`."""
    own = _own_arguments(method)
    parameters = [inspect.Parameter("parent", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                    default=None)]
    parameters += [inspect.Parameter(n, _KEYWORD, default=d) for n, d in own]
    parameters += [inspect.Parameter(n, _KEYWORD, default=d) for n, d in COMMON]
    signature = inspect.Signature(parameters)

    def function(*args, **kwargs):
        """Replaced by the method's text."""

    function.__name__ = function.__qualname__ = name
    function.__module__ = "keras_lottery.procedures"
    function.__doc__ = _docstring(method, [n for n, _ in own])
    return _calling(function, signature, DeriveRequest, execute, dict(method=method.name))


def _own_arguments(method):
    """(name, default) of the arguments `method` takes beyond every run's;
    `inspect.Parameter.empty`: required."""
    required = inspect.Parameter.empty
    found = [("iteration", required if method.iteration.taken else None)]
    if method.prunes:
        found += [("density", None), ("filters", None), ("level", None),
                  ("scope", None), ("exclude", None)]
    if method.chooses_pruner:
        found += [("pruner", None), ("pruner_options", None), ("min_per_layer", None)]
    if method.prunes:
        found.append(("pruning_method", None))
    if method.constant_lr:
        found.append(("lr", None))
    return found


def _docstring(method, own):
    lines = [inspect.cleandoc(method.doc), "", "Args:"]
    for key, text in ARGUMENTS.items():
        names = key.split(", ")
        if names[0] in ("parent", *own) or len(names) > 1 or key == "data_dir":
            text = text[method.iteration] if isinstance(text, dict) else text
            lines.append(f"    {key}: {inspect.cleandoc(text)}".replace("\n", "\n        "))
    lines += ["", "Returns:", "    The finished `Run`."]
    return "\n".join(lines)
