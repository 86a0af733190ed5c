"""What every `lottery` command shares: options, and errors as one line.

A library error names the Python argument at fault (`seed=-1: ...`); here
it is shown with the argument's `--flag` and the value as typed
(`--seed -1: ...`). Densities are percent on the command line and fractions
everywhere else; they are converted here, once.
"""

import functools
import os
import pathlib

import click

# TensorFlow's C++ start-up chatter buries the progress bar; keep errors.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _percent_text(fraction):
    return f"{fraction * 100:g}"


def _comma_list(values):
    return ",".join(map(str, values)) if isinstance(values, (list, tuple)) else values


# Library argument -> (its flag, how to show a value as the user typed it).
FLAGS = {
    "arch": ("--arch", None),
    "batch_size": ("--batch-size", None),
    "checkpoint_iters": ("--checkpoint-iters", _comma_list),
    "counts": ("--runs", _comma_list),
    "data_dir": ("--data-dir", None),
    "dataset": ("--dataset", None),
    "density": ("--density", _percent_text),
    "epochs": ("--epochs", None),
    "eval_every": ("--eval-every", None),
    "exclude": ("--exclude", _comma_list),
    "images_per_second": ("--images-per-second", None),
    "iteration": ("--iter", None),
    "jit_compile": ("--jit-compile", None),
    "lr": ("--lr", None),
    "method": ("--method", None),
    "mixed_precision": ("--mixed-precision", None),
    "name": ("--dataset", None),  # data.download's
    "out": ("--out", None),
    "parent": ("--from", None),
    "rate": ("--rate", None),
    "recipe": ("--recipe", None),
    "rounds": ("--rounds", None),
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
    """Turns library errors, full disks and Ctrl-C into one line each."""

    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        from keras_lottery.errors import LotteryError

        try:
            return f(*args, **kwargs)
        except LotteryError as e:
            raise click.ClickException(message(e)) from None
        except OSError as e:  # a full disk, a permission: the run keeps its files
            where = f" ({e.filename})" if e.filename else ""
            raise click.ClickException(
                f"{e.strerror or e}{where}; files written before are intact; "
                "fix this and re-run the same command to resume"
            ) from None
        except KeyboardInterrupt:
            click.echo("\nInterrupted; re-run the same command to resume.", err=True)
            raise SystemExit(130) from None

    return wrapper


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
    """--density in percent, as the fraction the library takes."""
    if value is None:
        return None
    if not 0 < value <= 100:
        raise click.BadParameter(
            f"{value:g} is not a percent in (0, 100]; 80 keeps 80 % of the weights"
        )
    return value / 100


def apply(f, options):
    for option in reversed(options):
        f = option(f)
    return f


PATH = click.Path(path_type=pathlib.Path)


def recipe_options(f):
    """Options shared by every training command (derived runs must agree
    with the parent's values, or leave them out)."""
    return apply(f, [
        click.option("--dataset", default=None, help="Training data "
                     "[default: cifar10]: cifar10, cifar100, mnist, "
                     "fashion_mnist, digits (small, bundled), synthetic, or "
                     "npz:PATH (your own x_train, y_train, x_test, y_test)."),
        click.option("--data-dir", type=PATH, help="Read the dataset's "
                     "official files from here instead of downloading."),
        click.option("--steps", type=int, help="T, steps of a base run "
                     "[default: 71108]; the whole recipe scales with it."),
        click.option("--epochs", type=float, help="Set T from epochs of "
                     "the training set (50,000 CIFAR-10 images) instead of "
                     "--steps."),
        click.option("--batch-size", type=int, help="[default: 128]; the "
                     "base LR scales as 0.1 x B / 128."),
        click.option("--checkpoint-iters", callback=checkpoint_iters,
                     help="Comma-separated iterations to checkpoint at "
                     "[default: the paper's, scaled to T]."),
        click.option("--eval-every", type=int, help="Steps between "
                     "evaluations [default: 10000, scaled to T]."),
        click.option("--seed", type=int, help="Seed for initialization and "
                     "data order [default: drawn and recorded in run.json]."),
        click.option("--out", type=PATH, help="Run directory [default: "
                     "runs/<arch>/<mode>-...]. Re-running a command resumes "
                     "its run there."),
        click.option("--save-every", type=click.IntRange(min=1), default=1000,
                     show_default=True, help="Also save the full state every "
                     "N steps, so a killed run resumes from there."),
        click.option("-q", "--quiet", is_flag=True, help="One line per "
                     "evaluation instead of progress bars."),
    ])


def execution_options(f):
    """How a run executes (speed; mixed precision also changes rounding)."""
    return apply(f, [
        click.option("--jit-compile", type=click.Choice(["auto", "on", "off"]),
                     default="auto", show_default=True, help="XLA: auto "
                     "leaves it off on CPU (forced XLA is ~2x slower there)."),
        click.option("--mixed-precision", type=click.Choice(["bf16", "fp16"]),
                     help="Mixed precision (fp16 needs a GPU); masks stay "
                     "exact and pruned weights exactly zero."),
        click.option("--steps-per-execution", type=click.IntRange(min=1),
                     default=1, show_default=True, help="Training steps per "
                     "compiled call; checkpoints stay exact."),
        click.option("--strategy", type=click.Choice(["mirrored"]),
                     help="Train on every visible GPU with MirroredStrategy "
                     "(global batch split across replicas, synchronized "
                     "batch norm)."),
    ])


def verbosity(quiet):
    return 2 if quiet else 1
