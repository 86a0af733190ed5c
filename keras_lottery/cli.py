"""The `lottery` command line: a thin layer over keras_lottery's procedures.

Every problem the user can fix is printed as one `Error: ...` line with exit
status 1 (2 for malformed options), never a traceback.
"""

import functools
import os
import pathlib

import click

from keras_lottery import __version__

# TensorFlow's C++ start-up chatter buries the progress bar; keep errors.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _checkpoint_iters(ctx, param, value):
    if value is None:
        return None
    try:
        return [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a comma-separated list of integers, e.g. 0,100,500"
        ) from None


def _percent(ctx, param, value):
    if value is not None and not 0 < value <= 100:
        raise click.BadParameter(
            f"{value:g} is not a percent in (0, 100]; 80 keeps 80 % of the weights"
        )
    return value


def recipe_options(f):
    """Options shared by every training command (derived runs must agree
    with the parent's values, or leave them out)."""
    options = [
        click.option("--dataset", type=click.Choice(["cifar10", "digits", "synthetic"]),
                     default=None, help="Training data [default: cifar10]; "
                     "digits is a small real set bundled with the package."),
        click.option("--data-dir", type=click.Path(path_type=pathlib.Path),
                     help="Read the official CIFAR-10 files (binary or python "
                     "version) from here instead of downloading."),
        click.option("--steps", type=int, help="T, steps of a base run "
                     "[default: 71108]; the whole recipe scales with it."),
        click.option("--epochs", type=float, help="Set T from epochs of "
                     "50,000 images instead of --steps."),
        click.option("--batch-size", type=int, help="[default: 128]; the "
                     "base LR scales as 0.1 x B / 128."),
        click.option("--checkpoint-iters", callback=_checkpoint_iters,
                     help="Comma-separated iterations to checkpoint at "
                     "[default: the paper's, scaled to T]."),
        click.option("--eval-every", type=int, help="Steps between "
                     "evaluations [default: 10000, scaled to T]."),
        click.option("--seed", type=int, help="Seed for initialization and "
                     "data order [default: drawn and recorded in run.json]."),
        click.option("--out", type=click.Path(path_type=pathlib.Path),
                     help="Run directory [default: runs/<arch>/<mode>-...]. "
                     "Re-running a command resumes its run there."),
        click.option("--save-every", type=click.IntRange(min=1), default=1000,
                     show_default=True, help="Also save the full state every "
                     "N steps, so a killed run resumes from there."),
        click.option("-q", "--quiet", is_flag=True, help="One line per "
                     "evaluation instead of progress bars."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def derived_options(f):
    options = [
        click.option("--from", "parent", type=click.Path(path_type=pathlib.Path),
                     help="Parent run directory [default: the single finished "
                     "train run under ./runs]."),
        click.option("--iter", "iteration", type=int, required=True,
                     help="k: the rewind iteration (a checkpoint the parent "
                     "saved); for finetune, sets the length T - k."),
        click.option("--density", type=float, required=True, callback=_percent,
                     help="Percent of all prunable weights to keep, absolute "
                     "(80 keeps 80 %)."),
    ]
    for option in reversed(options):
        f = option(f)
    return recipe_options(f)


def _friendly_errors(f):
    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        from keras_lottery.errors import LotteryError

        try:
            return f(*args, **kwargs)
        except LotteryError as e:
            raise click.ClickException(str(e)) from None
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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lottery")
def main():
    """Lottery-ticket pruning experiments in Keras 3.

    Reproduces "Comparing Rewinding and Fine-tuning in Neural Network
    Pruning" (Renda, Frankle, Carbin, ICLR 2020) on CIFAR-10:

    \b
      lottery train --arch resnet20
      lottery rewind --iter 4701 --density 80
      lottery rewind-lr --iter 4701 --density 80
      lottery finetune --iter 4701 --density 80
      lottery results
    """


@main.command()
@click.option("--arch", default="resnet20", show_default=True,
              help="Architecture: resnet20, resnet56, resnet110, vgg16, "
              "vgg16_nofc, or the tiny resnet8.")
@recipe_options
@_friendly_errors
def train(arch, dataset, data_dir, steps, epochs, batch_size,
          checkpoint_iters, eval_every, seed, out, save_every, quiet):
    """Train a network from scratch with the paper's recipe."""
    from keras_lottery import procedures

    run = procedures.train(
        arch, out=out, dataset=dataset or "cifar10", data_dir=data_dir,
        steps=steps, epochs=epochs, batch_size=128 if batch_size is None else batch_size,
        checkpoint_iters=checkpoint_iters, eval_every=eval_every, seed=seed,
        save_every=save_every, verbose=2 if quiet else 1,
    )
    click.echo(f"finished: {run.path}")


def _derived_command(name, procedure, doc, extra=()):
    @derived_options
    @_friendly_errors
    def command(parent, iteration, density, dataset, data_dir, steps, epochs,
                batch_size, checkpoint_iters, eval_every, seed, out,
                save_every, quiet, **more):
        from keras_lottery import procedures

        run = getattr(procedures, procedure)(
            parent, iteration=iteration, density=density / 100, out=out,
            seed=seed, data_dir=data_dir, save_every=save_every,
            verbose=2 if quiet else 1,
            steps=steps, epochs=epochs, batch_size=batch_size,
            checkpoint_iters=checkpoint_iters, eval_every=eval_every,
            dataset=dataset, **more,
        )
        click.echo(f"finished: {run.path}")

    command.__doc__ = doc
    for option in extra:
        command = option(command)
    return main.command(name)(command)


_derived_command(
    "rewind", "rewind",
    """Weight rewinding: prune the parent's final weights, then retrain from
    its iteration k (weights, BN statistics, momentum and LR from k) for
    T - k steps.""",
)
_derived_command(
    "rewind-lr", "rewind_lr",
    """LR rewinding: prune the parent's final weights and retrain them with
    the LR schedule replayed from iteration k, for T - k steps.""",
)
_derived_command(
    "finetune", "finetune",
    """Fine-tuning: prune the parent's final weights and train on at a
    constant LR for T - k steps (ending at 2T - k).""",
    extra=[click.option("--lr", type=float, default=0.001, show_default=True,
                        help="The constant learning rate.")],
)


@main.command()
@click.argument("run_dirs", nargs=-1, type=click.Path(path_type=pathlib.Path))
@click.option("--curve", is_flag=True, help="Print the (step, top-1) rows of "
              "every evaluation instead of one row per run.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]),
              default="table", show_default=True)
@_friendly_errors
def results(run_dirs, curve, fmt):
    """Summarize runs (default: every run under ./runs)."""
    from keras_lottery import report
    from keras_lottery import runs

    if not run_dirs:
        run_dirs = runs.find_runs(runs.DEFAULT_ROOT)
        if not run_dirs:
            raise click.ClickException(
                f"no runs under ./{runs.DEFAULT_ROOT}; name run directories "
                "as arguments"
            )
    opened = [runs.Run.open(p) for p in run_dirs]
    if curve:
        rows = [row for run in opened for row in report.curve(run)]
        click.echo(report.render(rows, report.CURVE_COLUMNS, fmt))
    else:
        rows = [report.summary(run) for run in opened]
        click.echo(report.render(rows, report.SUMMARY_COLUMNS, fmt))


if __name__ == "__main__":
    main()
