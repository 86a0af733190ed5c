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
                     "the training set (50,000 CIFAR-10 images) instead of "
                     "--steps."),
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


def execution_options(f):
    """How a run executes (speed; mixed precision also changes rounding)."""
    options = [
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
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _execution(kwargs):
    return {
        "jit_compile": kwargs.pop("jit_compile"),
        "mixed_precision": kwargs.pop("mixed_precision"),
        "steps_per_execution": kwargs.pop("steps_per_execution"),
        "strategy": kwargs.pop("strategy"),
    }


def derived_options(f):
    options = [
        click.option("--from", "parent", type=click.Path(path_type=pathlib.Path),
                     help="Parent run directory [default: the single finished "
                     "train run under ./runs]."),
        click.option("--iter", "iteration", type=int,
                     help="k: the rewind iteration (a checkpoint the parent "
                     "saved); for finetune, sets the length T - k. "
                     "Required, except by reinit."),
        click.option("--density", type=float, required=True, callback=_percent,
                     help="Percent of all prunable weights to keep, absolute "
                     "(80 keeps 80 %)."),
    ]
    for option in reversed(options):
        f = option(f)
    return execution_options(recipe_options(f))


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
      lottery iterate --method rewind --iter 4701 --rounds 10
      lottery results --group
      lottery plot -o accuracy.png

    Try it offline in a few minutes first: lottery demo
    """


@main.command()
@click.option("--arch", default="resnet20", show_default=True,
              help="Architecture: resnet20, resnet56, resnet110, vgg16, "
              "vgg16_nofc, the tiny resnet8, or lenet300 (for digits).")
@click.option("--val-split", type=int, default=0, show_default=True,
              help="Hold out this many test images as a validation set "
              "(val_top1) and report test metrics on the rest; the paper "
              "used 2000. Derived runs inherit it.")
@recipe_options
@execution_options
@_friendly_errors
def train(arch, val_split, dataset, data_dir, steps, epochs, batch_size,
          checkpoint_iters, eval_every, seed, out, save_every, quiet,
          **execution):
    """Train a network from scratch with the paper's recipe."""
    from keras_lottery import procedures

    run = procedures.train(
        arch, out=out, dataset=dataset or "cifar10", data_dir=data_dir,
        steps=steps, epochs=epochs, batch_size=128 if batch_size is None else batch_size,
        checkpoint_iters=checkpoint_iters, eval_every=eval_every, seed=seed,
        save_every=save_every, val_split=val_split, verbose=2 if quiet else 1,
        **_execution(execution),
    )
    click.echo(f"finished: {run.path}")


def _derived_command(name, procedure, doc, extra=()):
    @derived_options
    @_friendly_errors
    def command(parent, iteration, density, dataset, data_dir, steps, epochs,
                batch_size, checkpoint_iters, eval_every, seed, out,
                save_every, quiet, **more):
        from keras_lottery import procedures

        if iteration is None and procedure != "reinit":
            raise click.UsageError("Missing option '--iter' (k, e.g. --iter 4701).")
        if iteration is not None:
            more["iteration"] = iteration
        more.update(_execution(more))
        run = getattr(procedures, procedure)(
            parent, density=density / 100, out=out,
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
    extra=[click.option("--lr", type=float, help="The constant learning rate "
                        "[default: the schedule's last value, 0.001 at batch "
                        "128].")],
)
_derived_command(
    "lowlr-rewind", "lowlr_rewind",
    """Control: low-LR weight rewinding. Weights, BN statistics and momentum
    from iteration k with the new mask (as rewind), trained T - k steps at a
    constant LR.""",
    extra=[click.option("--lr", type=float, help="The constant learning rate "
                        "[default: the schedule's last value, 0.001 at batch "
                        "128].")],
)
_derived_command(
    "random", "random_prune",
    """Control: random pruning. A uniformly random mask with exactly the
    requested density (among the parent's survivors), then weight rewinding
    from iteration k.""",
)
_derived_command(
    "reinit", "reinit",
    """Control: random reinitialization. The parent's magnitude mask with
    freshly initialized weights, trained the full T steps from step 0 (no
    --iter).""",
)


@main.command()
@click.option("--from", "parent", type=click.Path(path_type=pathlib.Path),
              help="Base run [default: the single finished train run under "
              "./runs].")
@click.option("--method", default="rewind", show_default=True,
              type=click.Choice(["rewind", "rewind-lr", "finetune",
                                 "lowlr-rewind", "random", "reinit"]),
              help="What each round does.")
@click.option("--iter", "iteration", type=int, help="k of every round "
              "(not for reinit).")
@click.option("--rounds", type=click.IntRange(min=1), required=True,
              help="Number of pruning rounds.")
@click.option("--rate", type=float, default=0.8, show_default=True,
              help="Fraction of the remaining weights each round keeps; "
              "round i has density rate^i (0.8, 0.64, 0.512, ...).")
@click.option("--lr", type=float, help="Constant LR of finetune and "
              "lowlr-rewind rounds [default: the schedule's last value, "
              "0.001 at batch 128].")
@click.option("--data-dir", type=click.Path(path_type=pathlib.Path),
              help="Where the parent's CIFAR-10 files are now.")
@click.option("--seed", type=int, help="Seed of every round [default: drawn "
              "and recorded].")
@click.option("--out", type=click.Path(path_type=pathlib.Path),
              help="Study directory; rounds go to OUT/round-<i> [default: "
              "runs/<arch>/iterate-<method>-k<k>-r<rate>-s<seed>].")
@click.option("--save-every", type=click.IntRange(min=1), default=1000,
              show_default=True, help="Resume-state interval in steps.")
@click.option("-q", "--quiet", is_flag=True, help="One line per evaluation.")
@execution_options
@_friendly_errors
def iterate(parent, method, iteration, rounds, rate, lr, data_dir, seed, out,
            save_every, quiet, **execution):
    """Iterative pruning: R rounds, each pruning the previous round's final
    weights to rate x its density and retraining with --method.

    Re-running the same command skips finished rounds, resumes an
    interrupted one, and adds rounds when --rounds grows.
    """
    from keras_lottery import procedures

    if iteration is None and method != "reinit":
        raise click.UsageError("Missing option '--iter' (k, e.g. --iter 4701).")
    extra = {"lr": lr} if lr is not None else {}
    if lr is not None and method not in ("finetune", "lowlr-rewind"):
        raise click.UsageError("--lr applies to finetune and lowlr-rewind only.")
    done = procedures.iterate(
        parent, method=method, iteration=iteration, rounds=rounds, rate=rate,
        out=out, seed=seed, data_dir=data_dir, save_every=save_every,
        verbose=2 if quiet else 1, **extra, **_execution(execution),
    )
    for run in done:
        click.echo(f"finished: {run.path} (density {run.config['density']:.4g})")


def _open_runs(run_dirs):
    """Runs named (or all under ./runs), skipping unreadable ones with a
    warning: one damaged run.json must not hide every other result."""
    from keras_lottery import runs
    from keras_lottery.errors import LotteryError

    if not run_dirs:
        run_dirs = runs.find_runs(runs.DEFAULT_ROOT)
        if not run_dirs:
            raise click.ClickException(
                f"no runs under ./{runs.DEFAULT_ROOT}; name run directories "
                "as arguments"
            )
    opened = []
    for path in run_dirs:
        path = pathlib.Path(path)
        if path.is_dir() and not (path / runs.RUN_JSON).exists():
            found = runs.find_runs(path)  # a study or a folder of runs
            if found:
                opened += _open_runs(found)
                continue
        try:
            opened.append(runs.Run.open(path).check())
        except LotteryError as e:
            if len(run_dirs) == 1:
                raise
            click.echo(f"Warning: skipping {path}: {e}", err=True)
    return opened


@main.command()
@click.argument("run_dirs", nargs=-1, type=click.Path(path_type=pathlib.Path))
@click.option("--group", is_flag=True, help="One row per (arch, method, k, "
              "density): median, min and max over seeds, and n, as the "
              "paper's figures.")
@click.option("--select", type=click.Choice(["final", "best_val"]),
              default="final", show_default=True, help="With --group: the "
              "test accuracy at the final evaluation, or at the evaluation "
              "with the best val_top1 (needs --val-split runs).")
@click.option("--curve", is_flag=True, help="Print the (step, top-1) rows of "
              "every evaluation instead of one row per run.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]),
              default="table", show_default=True)
@_friendly_errors
def results(run_dirs, group, select, curve, fmt):
    """Summarize runs: RUN_DIRS (run or study directories) or every run
    under ./runs."""
    from keras_lottery import report

    opened = _open_runs(run_dirs)
    if curve:
        rows = [row for run in opened for row in report.curve(run)]
        click.echo(report.render(rows, report.CURVE_COLUMNS, fmt))
    elif group:
        rows = report.group(opened, select=select)
        click.echo(report.render(rows, report.GROUP_COLUMNS, fmt))
    else:
        rows = [report.summary(run) for run in opened]
        click.echo(report.render(rows, report.SUMMARY_COLUMNS, fmt))


@main.command()
@click.argument("run_dirs", nargs=-1, type=click.Path(path_type=pathlib.Path))
@click.option("-o", "--output", type=click.Path(path_type=pathlib.Path),
              default="accuracy.png", show_default=True,
              help="Image file; the extension picks the format (png, pdf, svg).")
@click.option("--curves", is_flag=True, help="Top-1 against step, one line "
              "per run, instead of accuracy against density.")
@click.option("--select", type=click.Choice(["final", "best_val"]),
              default="final", show_default=True)
@_friendly_errors
def plot(run_dirs, output, curves, select):
    """Plot accuracy against density (log scale, one series per method, as
    the paper's figures) for RUN_DIRS or every run under ./runs."""
    from keras_lottery import plot as plot_lib

    opened = _open_runs(run_dirs)
    if curves:
        plot_lib.accuracy_vs_step(opened, path=output)
    else:
        plot_lib.accuracy_vs_density(opened, path=output, select=select)
    click.echo(f"wrote {output}")


@main.command()
@click.option("--quick", is_flag=True, help="The CI-sized version (about a "
              "minute on 2 CPU cores): fewer steps, densities and seeds.")
@click.option("--out", type=click.Path(path_type=pathlib.Path),
              default="runs/demo", show_default=True,
              help="Where the demo's runs, table and plot go.")
@click.option("-v", "--verbose", is_flag=True, help="Also one line per "
              "evaluation.")
@_friendly_errors
def demo(quick, out, verbose):
    """The whole study offline in a few minutes: LeNet-300-100 on the
    bundled 8x8 handwritten digits, trained with checkpoints, then weight
    rewinding, LR rewinding, fine-tuning and random pruning at several
    densities; ends with the results table and a plot (OUT/accuracy.png).
    Every number is trained on the spot. Re-running skips finished runs.
    """
    from keras_lottery import demo as demo_lib

    finished, table = demo_lib.run(out, quick=quick, verbose=2 if verbose else 1,
                                   echo=click.echo)
    click.echo(table)
    figure = out / "accuracy.png"
    demo_lib.plot(finished, figure)
    click.echo(f"wrote {figure}")
    click.echo(f"next: lottery results {out}   lottery plot {out} --curves -o curves.png")


if __name__ == "__main__":
    main()
