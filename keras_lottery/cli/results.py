"""`lottery results` and `lottery plot`: tables and figures of runs."""


import click

from keras_lottery import checks
from keras_lottery.cli import options


def open_runs(run_dirs):
    """Runs named (run directories, folders of runs, study files; or all
    under ./runs), skipping damaged ones with a warning each: one damaged
    run must not hide every other result. A single run named is opened
    whole or refused."""
    from keras_lottery.runs import layout
    from keras_lottery.runs import sources

    if not run_dirs:
        if not layout.find_runs(layout.DEFAULT_ROOT):
            raise click.ClickException(
                f"no runs under ./{layout.DEFAULT_ROOT}; name run directories, "
                "folders of runs or study files as arguments")
        run_dirs = [layout.DEFAULT_ROOT]
    if len(run_dirs) == 1 and not sources.is_study(run_dirs[0]):
        return sources.expand(run_dirs, damaged=_refuse)
    return sources.expand(list(run_dirs), damaged=_warn)


def _refuse(path, error):
    raise error


def _warn(path, error):
    click.echo(f"Warning: skipping {path}: {options.message(error)}", err=True)


@click.command()
@click.argument("run_dirs", nargs=-1, type=options.PATH)
@click.option("--group", is_flag=True, help="One row per (arch, method, k, "
              "density) among comparable runs (every setting but the "
              "seed: dataset, recipe, split, precision, scope): median, min "
              "and max over seeds, and n, as the paper's figures.")
@click.option("--select", type=click.Choice(["final", "best_val"]),
              default="final", show_default=True, help="With --group: the "
              "test accuracy at the final evaluation, or at the evaluation "
              "with the best val_top1 (needs --val-split runs).")
@click.option("--curve", is_flag=True, help="Print the (step, top-1) rows of "
              "every evaluation instead of one row per run.")
@click.option("--timing", is_flag=True, help="Where each run's wall time went, "
              "in seconds: start-up, data, build, compile (and tracing), train, "
              "evaluate, checkpoint, their sum (wall) over its attempts; then "
              "the sums over the runs.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]),
              default="table", show_default=True)
@options.friendly_errors
def results(run_dirs, group, select, curve, timing, fmt):
    """Summarize runs: RUN_DIRS (run directories, folders of runs, study
    files) or every run under ./runs."""
    from keras_lottery.results import tables as report

    if select != "final" and not group:
        raise click.UsageError("--select picks each run's result within a --group; "
                               "add --group (one row per run shows both final_top1 "
                               "and best_top1)")
    if sum([group, curve, timing]) > 1:
        raise click.UsageError("--group, --curve and --timing are different tables; "
                               "give one")
    opened = open_runs(run_dirs)
    if timing:
        click.echo(report.render(report.timing(opened), report.TIMING_COLUMNS, fmt))
    elif curve:
        rows = [row for run in opened for row in report.curve(run)]
        click.echo(report.render(rows, report.CURVE_COLUMNS, fmt))
    elif group:
        rows = report.group(opened, select=select)
        click.echo(report.render(rows, report.GROUP_COLUMNS, fmt))
        for row in rows:
            for note in row["notes"]:
                click.echo(f"Warning: the group {row['arch']} {row['method']} "
                           f"k={row['k']} density {checks.percent_shown(row['density'])} mixes runs: "
                           f"{note}", err=True)
    else:
        rows = [report.summary(run) for run in opened]
        click.echo(report.render(rows, report.SUMMARY_COLUMNS, fmt))


@click.command()
@click.argument("run_dirs", nargs=-1, type=options.PATH)
@click.option("-o", "--output", type=options.PATH,
              help="Image file; the extension picks the format (png, pdf, "
              "svg) [default: accuracy.png; layers.png with --layers].")
@click.option("--curves", is_flag=True, help="Top-1 against step, one line "
              "per run, instead of accuracy against density.")
@click.option("--layers", is_flag=True, help="Density per layer as bars "
              "(a group per layer, a bar per run; runs of one architecture), "
              "instead of accuracy against density.")
@click.option("--select", type=click.Choice(["final", "best_val"]),
              default="final", show_default=True)
@options.friendly_errors
def plot(run_dirs, output, curves, layers, select):
    """Plot accuracy against density (log scale, one series per method, as
    the paper's figures) for RUN_DIRS (run directories, folders of runs,
    study files) or every run under ./runs."""
    from keras_lottery.results import figures as plot_lib

    if layers:
        from keras_lottery.analysis import figures

        output = output or "layers.png"
        figures.check_path(output)
        figures.layer_densities(list(run_dirs) or open_runs(run_dirs), path=output)
        click.echo(f"wrote {output}")
        return
    output = output or "accuracy.png"
    opened = open_runs(run_dirs)
    if curves:
        plot_lib.accuracy_vs_step(opened, path=output)
    else:
        plot_lib.accuracy_vs_density(opened, path=output, select=select)
    click.echo(f"wrote {output}")
