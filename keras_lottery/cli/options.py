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
import warnings

import click

from keras_lottery.cli import chatter

# TensorFlow's C++ start-up chatter buries the progress bar; keep errors.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _percent_text(fraction):
    return f"{fraction * 100:g}"


def _comma_list(values):
    return ",".join(map(str, values)) if isinstance(values, (list, tuple)) else values


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
    "density": ("--density", _percent_text),
    "epochs": ("--epochs", None),
    "eval_every": ("--eval-every", None),
    "exclude": ("--exclude", _comma_list),
    "images_per_second": ("--images-per-second", None),
    "iteration": ("--iter", None),
    "jit_compile": ("--jit-compile", None),
    "layer_densities": ("--layer-rate", None),
    "layer_rates": ("--layer-rate", None),
    "lr": ("--lr", None),
    "method": ("--method", None),
    "mixed_precision": ("--mixed-precision", None),
    "name": ("--dataset", None),  # data.download's
    "out": ("--out", None),
    "output": ("--output", None),
    "parent": ("--from", None),
    "points": ("--points", None),
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
    if error.param not in FLAGS:
        return str(error)
    flag, show = FLAGS[error.param]
    value = error.value if show is None or error.value is None else show(error.value)
    return error.render(flag, value)


def friendly_errors(f):
    """Turns library errors, full disks, a missing Keras backend and Ctrl-C
    into one line each."""

    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        from keras_lottery.errors import LotteryError

        try:
            with chatter.filtered(), warnings.catch_warnings():
                warnings.showwarning = _show_warning
                return f(*args, **kwargs)
        except LotteryError as e:
            raise click.ClickException(message(e)) from None
        except OSError as e:
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
    """--density in percent, as the fraction the library takes.

    A value up to 1 is far more often a fraction typed by mistake than a
    sub-percent density, so it is refused unless written with a `%`.
    """
    if value is None:
        return None
    text = value.strip()
    deliberate = text.endswith("%")
    try:
        percent = float(text[:-1] if deliberate else text)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a number; give the percent of weights to keep, e.g. 80"
        ) from None
    if not 0 < percent <= 100:
        raise click.BadParameter(
            f"{percent:g} is not a percent in (0, 100]; 80 keeps 80 % of the weights"
        )
    if percent <= 1 and not deliberate:
        raise click.BadParameter(
            f"{text} is {percent:g} %; for {percent * 100:g} % write "
            f"{percent * 100:g}, for under 1 % write {text}%"
        )
    return percent / 100


def method(value):
    """A method name, with - or _ ("rewind-lr", "rewind_lr")."""
    from keras_lottery.spec import methods
    from keras_lottery.errors import LotteryError

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
--pruner: The pruning criterion: magnitude [default], random, a pruner
    registered with keras_lottery.register_pruner, or package.module:function
    (importable from the current folder).
--min-per-layer: Keep at least this many weights of every kernel (magnitude,
    global scope), so that no layer collapses [default: the parent's, else 0].
""")

# Options shared by every training command (derived runs must agree with
# the parent's values, or leave them out).
RECIPE_OPTIONS = {
    "--dataset": {"default": None},
    "--data-dir": {"type": PATH},
    "--steps": {"type": int},
    "--epochs": {"type": float},
    "--batch-size": {"type": int},
    "--checkpoint-iters": {"callback": checkpoint_iters},
    "--eval-every": {"type": int},
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
    return apply(f, _options(RECIPE_OPTIONS))


def execution_options(f):
    return apply(f, _options(EXECUTION_OPTIONS))


PRUNER_OPTION = {"--pruner": {}, "--min-per-layer": {"type": int}}


def pruning_options(f):
    return apply(f, _options(PRUNING_OPTIONS))


def pruner_option(f):
    return apply(f, _options(PRUNER_OPTION))


def verbosity(quiet):
    return 2 if quiet else 1
