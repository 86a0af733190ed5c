"""What every `lottery` command shares: options, and errors as one line.

A library error names the Python argument at fault (`seed=-1: ...`); here
it is shown with the argument's `--flag` and the value as typed
(`--seed -1: ...`). Densities are percent on the command line and fractions
everywhere else; they are converted here, once.
"""

import errno
import functools
import os
import pathlib
import re
import sys
import warnings

import click

from keras_lottery import checks
from keras_lottery.cli import chatter
from keras_lottery.errors import LotteryError

# TensorFlow's C++ start-up chatter buries the progress bar; keep errors.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _comma_list(values):
    return ",".join(map(str, values)) if isinstance(values, (list, tuple)) else values


def _pairs(values):
    """{layer: rate} as --layer-rate takes it: fc_3=0.9 (repeated)."""
    pairs = values.items() if isinstance(values, dict) else values
    try:
        return ",".join(f"{k}={v:g}" for k, v in pairs)
    except (TypeError, ValueError):
        return repr(values)


def _paths(values):
    return ", ".join(map(str, values)) or "(none)"


# Errors of a place that cannot be written at all (rather than a full disk).
CANNOT_WRITE = (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EISDIR)

# Library argument -> (its flag, how to show a value as the user typed it).
FLAGS = {
    "arch": ("--arch", None),
    "batch_size": ("--batch-size", None),
    "checkpoint_iters": ("--checkpoint-iters", _comma_list),
    "counts": ("--runs", _comma_list),
    "copies": ("--copies", None),
    "data_dir": ("--data-dir", None),
    "dataset": ("--dataset", None),
    "density": ("--density", checks.percent_text),
    "epochs": ("--epochs", None),
    "eval_every": ("--eval-every", None),
    "exclude": ("--exclude", _comma_list),
    "images_per_second": ("--images-per-second", None),
    "iteration": ("--iter", None),
    "jit_compile": ("--jit-compile", None),
    "layer_densities": ("--layer-rate", _pairs),
    "layer_rates": ("--layer-rate", _pairs),
    "lr": ("--lr", None),
    "method": ("--method", None),
    "mixed_precision": ("--mixed-precision", None),
    "name": ("--dataset", None),  # data.download's
    "out": ("--out", None),
    "output": ("--output", None),
    "parent": ("--from", None),
    "points": ("--points", None),
    "filters": ("--filters", lambda value: value if isinstance(value, str) else _pairs(value)),
    "config": ("--filters", lambda value: value if isinstance(value, str) else _pairs(value)),
    "level": ("--level", None),
    "pruning_method": ("--pruning-method", None),
    "pruner": ("--pruner", None),
    "min_per_layer": ("--min-per-layer", None),
    "rate": ("--rate", None),
    "recipe": ("--recipe", None),
    "reset_bn": ("--reset-bn", None),
    "rounds": ("--rounds", None),
    "runs": ("RUNS", _paths),  # the analysis commands' arguments
    "save_every": ("--save-every", None),
    "scope": ("--scope", None),
    "seed": ("--seed", None),
    "steps": ("--steps", None),
    "steps_per_execution": ("--steps-per-execution", None),
    "strategy": ("--strategy", None),
    "val_split": ("--val-split", None),
    "workers": ("--workers", None),
}


def message(error):
    """A `LotteryError` as the command line shows it."""
    def argument(name):
        return FLAGS.get(name, (name,))[0]

    if error.param not in FLAGS:
        return error.render(density=checks.percent_text, argument=argument)
    flag, show = FLAGS[error.param]
    value = error.value if show is None or error.value is None else show(error.value)
    return error.render(flag, value, density=checks.percent_text, argument=argument)


def friendly_errors(f):
    """Turns library errors, full disks, a missing Keras backend and Ctrl-C
    into one line each."""

    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        try:
            with chatter.filtered(), warnings.catch_warnings():
                warnings.showwarning = _show_warning
                return f(*args, **kwargs)
        except LotteryError as e:
            raise click.ClickException(message(e)) from None
        except OSError as e:
            if e.errno == errno.EPIPE:  # `| head`: the reader has all it wants
                _quiet_exit()
            where = f" ({e.filename})" if e.filename else ""
            if e.errno in CANNOT_WRITE:
                raise click.ClickException(
                    f"{e.strerror or e}{where}; choose a folder you can write "
                    "to (--out), or fix its permissions"
                ) from None
            # A full disk mid-run: every file written before is whole.
            raise click.ClickException(
                f"{e.strerror or e}{where}; files written before are intact; "
                "fix this and re-run the same command to resume"
            ) from None
        except ImportError:  # TensorFlow (or JAX) not installed
            from keras_lottery import backends

            problem = backends.missing()
            if problem is None:
                raise
            raise click.ClickException(problem) from None
        except KeyboardInterrupt:
            click.echo("\nInterrupted; re-run the same command to resume.", err=True)
            raise SystemExit(130) from None

    return wrapper


def _quiet_exit():
    """Leaves quietly when the reader of the output has gone: nothing more
    is written (not even at exit, when Python flushes stdout again)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    raise SystemExit(0)


def _show_warning(message, category, filename, lineno, file=None, line=None):
    click.echo(f"Warning: {message}", err=True)


def checkpoint_iters(ctx, param, value):
    if value is None:
        return None
    try:
        return [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a comma-separated list of integers, e.g. 0,100,500"
        ) from None


def density(ctx, param, value):
    """--density in percent, as the fraction the library takes (a value up
    to 1 needs its `%` sign: `checks.percent`)."""
    if value is None:
        return None
    try:
        return checks.percent(value, "density")
    except LotteryError as e:
        raise click.BadParameter(f"{value.strip()} {e.message}") from None


def method(value):
    """A method name, with - or _ ("rewind-lr", "rewind_lr")."""
    from keras_lottery.spec import methods

    try:
        return methods.get(value, pruning=True).name
    except LotteryError as e:
        raise click.BadParameter(e.message) from None


def layer_rates(ctx, param, values):
    """--layer-rate LAYER=RATE (repeatable) as {layer: rate}."""
    rates = {}
    for value in values:
        name, _, rate = value.partition("=")
        try:
            rates[name.strip()] = float(rate)
        except ValueError:
            raise click.BadParameter(
                f"{value!r} is not LAYER=RATE, e.g. fc_3=0.9") from None
    return rates or None


def apply(f, options):
    for option in reversed(options):
        f = option(f)
    return f


PATH = click.Path(path_type=pathlib.Path)


def apply_options(table):
    """A decorator adding the options of `table` ({flags: keyword arguments})."""
    return lambda f: apply(f, _options(table))


def _options(table):
    """click options from {flags: keyword arguments}, with their `HELP`."""
    return [click.option(*flags.split(), help=HELP[flags.split()[-1]], **kwargs)
            for flags, kwargs in table.items()]


def _help_table(text):
    """{--flag: help} from "--flag: help" paragraphs (one table of prose)."""
    entries = re.split(r"\n(?=--)", text.strip())
    return {e.split(":", 1)[0]: " ".join(e.split(":", 1)[1].split()) for e in entries}


HELP = _help_table("""
--dataset: Training data [default: cifar10]: cifar10, cifar100, mnist,
    fashion_mnist, digits (small, bundled), synthetic, or npz:PATH (your own
    x_train, y_train, x_test, y_test).
--data-dir: Read the dataset's official files from here instead of downloading.
--steps: T, steps of a base run [default: the recipe's, 71108]; the whole
    recipe scales with it.
--epochs: Set T from epochs of the training set (50,000 CIFAR-10 images)
    instead of --steps.
--batch-size: [default: the recipe's, 128]; in renda2020 the LR scales as 0.1 x
    B / 128.
--checkpoint-iters: Comma-separated iterations to checkpoint at [default: the
    paper's, scaled to T].
--eval-every: Steps between evaluations [default: 10000, scaled to T].
--seed: Seed for initialization and data order [default: drawn and recorded in
    run.json].
--out: Run directory [default: runs/<arch>/<mode>-...]. Re-running a command
    resumes its run there.
--save-every: Also save the full state every N steps, so a killed run resumes
    from there.
--quiet: One line per evaluation instead of a progress bar.
--jit-compile: XLA: auto leaves it off on CPU (forced XLA is ~2x slower there).
--mixed-precision: Mixed precision (fp16 needs a GPU); masks stay exact and
    pruned weights exactly zero.
--steps-per-execution: Training steps per compiled call; checkpoints stay
    exact.
--strategy: Train on every visible GPU with MirroredStrategy (global batch
    split across replicas, synchronized batch norm).
--scope: Rank all layers together (global, the paper's) or each layer alone
    [default: the parent's, else global].
--exclude: A layer to leave unpruned and out of the density (repeatable), e.g.
    the output layer [default: the parent's].
--pruner: The pruning criterion: magnitude [default], random, zscore, a
    pruner registered with keras_lottery.register_pruner, or
    package.module:function (importable from the current folder).
--min-per-layer: Keep at least this many weights of every kernel (magnitude,
    global scope), so that no layer collapses [default: the parent's, else 0].
--filters: Filter pruning instead of --density (with --level): the paper's
    configuration, resnet56-A, resnet56-B, resnet110-A, resnet110-B,
    resnet34-A, resnet34-B or vgg16-A, or LAYER=FRACTION,... of your own.
--level: Filter pruning's level i: a listed layer loses 1 - (1 - f)^i of its
    filters (the paper's points are levels 1 to 5).
--pruning-method: The original code's name for what to prune, e.g.
    prune_all_to_global_80, zprune_all_to_global_80, prune_global_20,
    prune_resnet56_A_3.
--from: Parent run directory [default: the single finished train run under
    ./runs].
--inherited-dataset: Only for data of your own that moved: npz:PATH of the
    parent's data [default: the parent's].
--inherited-data-dir: Where the parent's dataset files are now [default: where
    they were].
--inherited: Must agree with the parent's, whose recipe a derived run inherits
    [default: the parent's].
""")

# What a training run is: its data and recipe (a derived run inherits them,
# see `inherited_options`).
RECIPE_OPTIONS = {
    "--dataset": {"default": None},
    "--data-dir": {"type": PATH},
    "--steps": {"type": int},
    "--epochs": {"type": float},
    "--batch-size": {"type": int},
    "--checkpoint-iters": {"callback": checkpoint_iters},
    "--eval-every": {"type": int},
}
# Every run's own: its seed, folder and resume states, its output.
RUN_OPTIONS = {
    "--seed": {"type": int},
    "--out": {"type": PATH},
    "--save-every": {"type": click.IntRange(min=1), "default": 1000, "show_default": True},
    "-q --quiet": {"is_flag": True},
}
# How a run executes (speed; mixed precision also changes rounding).
EXECUTION_OPTIONS = {
    "--jit-compile": {"type": click.Choice(["auto", "on", "off"]), "default": "auto",
                      "show_default": True},
    "--mixed-precision": {"type": click.Choice(["bf16", "fp16"])},
    "--steps-per-execution": {"type": click.IntRange(min=1), "default": 1,
                              "show_default": True},
    "--strategy": {"type": click.Choice(["mirrored"])},
}
# How a pruning command ranks weights, and which layers it leaves.
PRUNING_OPTIONS = {
    "--scope": {"type": click.Choice(["global", "layerwise"])},
    "--exclude": {"multiple": True, "callback": lambda ctx, param, value: list(value) or None},
}


def recipe_options(f):
    return apply(f, _options(RECIPE_OPTIONS) + _options(RUN_OPTIONS))


def inherited_options():
    """A derived command's data and recipe options: inherited from the
    parent, so given only where something moved or to check agreement."""
    found = [click.option("--dataset", default=None, help=HELP["--inherited-dataset"]),
             click.option("--data-dir", type=PATH, help=HELP["--inherited-data-dir"])]
    for flags, kwargs in RECIPE_OPTIONS.items():
        if flags not in ("--dataset", "--data-dir"):
            found.append(click.option(flags, help=HELP["--inherited"], **kwargs))
    return found


def run_options():
    return _options(RUN_OPTIONS)


def execution_option_list():
    return _options(EXECUTION_OPTIONS)


def pruning_options(method):
    """What a pruning command asks: how much (a density, or filter pruning's
    configuration and level, or the original's name for it), by which
    criterion, which layers it leaves."""
    found = [click.option("--density", callback=density, help="Percent of all "
                          "prunable weights to keep, absolute (80 keeps 80 %; write "
                          "0.5% for half a percent)."),
             *_options({"--filters": {"callback": filters}, "--level": {"type": int}})]
    if method.chooses_pruner:
        found += _options(PRUNER_OPTION)
    found += _options({"--pruning-method": {}}) + _options(PRUNING_OPTIONS)
    return found


def filters(ctx, param, value):
    """--filters: a configuration's name, or LAYER=FRACTION,... as a dict."""
    if value is None or "=" not in value:
        return value
    found = {}
    for item in value.split(","):
        name, _, fraction = item.partition("=")
        try:
            found[name.strip()] = float(fraction)
        except ValueError:
            raise click.BadParameter(f"{value!r} is not a configuration's name or "
                                     "LAYER=FRACTION,..., e.g. conv_2=0.5") from None
    return found


def execution_options(f):
    return apply(f, _options(EXECUTION_OPTIONS))


PRUNER_OPTION = {"--pruner": {}, "--min-per-layer": {"type": int}}


def pruner_option(f):
    return apply(f, _options(PRUNER_OPTION))


def verbosity(quiet):
    return 2 if quiet else 1
