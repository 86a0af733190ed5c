"""`lottery stability` and `lottery masks`: analyses of runs."""

import click

from keras_lottery.cli import options

FORMAT = click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]),
                      default="table", show_default=True, help="How to print the table.")


@click.command()
@click.option("--from", "parent", type=options.PATH,
              help="The run, or a study (a folder of runs or a .toml study "
              "file: every finished run in it that saved --iter) [default: the "
              "single finished train run under ./runs].")
@click.option("--iter", "iterations", type=int, multiple=True, required=True,
              help="k: the iteration the copies start from, a checkpoint the "
              "run saved; repeat it for several (one curve each).")
@click.option("--density", callback=options.density,
              help="Percent of all prunable weights each copy keeps: the "
              "magnitude mask of the run's final weights, exactly as lottery "
              "rewind (each copy is a rewind run) [default: no pruning; the "
              "copies are branch runs with the run's masks at k].")
@click.option("--copies", type=int, default=2, show_default=True,
              help="Copies trained from k; every pair is evaluated.")
@click.option("--points", type=int, default=11, show_default=True,
              help="Points on the path between two copies, both ends included.")
@click.option("--reset-bn", is_flag=True, help="Re-estimate batch-norm "
              "statistics at each point on 16 fixed training batches instead "
              "of interpolating them with the weights.")
@click.option("--seed", type=int, help="Copy i trains with seed S + i "
              "[default: drawn and recorded in stability.json].")
@click.option("--out", type=options.PATH, help="The analysis folder (with "
              "several --iter, the folder holding one per k) [default: beside "
              "the run, stability-<run>-k<k>[-d<percent>]-s<seed>].")
@click.option("-o", "--output", type=options.PATH, help="Also write a figure "
              "of error against alpha with one curve per k (and run) here.")
@click.option("--dataset", help="npz:PATH: where the run's npz file is now.")
@click.option("--data-dir", type=options.PATH,
              help="Where the run's dataset files are now.")
@click.option("--save-every", type=click.IntRange(min=1), default=1000,
              show_default=True, help="Resume-state interval of the copies.")
@click.option("-q", "--quiet", is_flag=True, help="One line per evaluation "
              "while copies train, instead of progress bars.")
@FORMAT
@options.friendly_errors
def stability(parent, iterations, density, copies, points, reset_bn, seed, out,
              output, dataset, data_dir, save_every, quiet, fmt):
    """Instability analysis (linear mode connectivity; Frankle et al. 2020).

    From the run's state at iteration k, train --copies copies to the end
    of the schedule with different seeds (data order and augmentation),
    then evaluate the test error at --points points of the straight line
    between each pair's final weights. The error barrier is the largest
    error on the path minus the mean of its ends' errors: near 0 when the
    network is stable at k. Each copy is a run directory in the analysis
    folder, with stability.json and a figure; re-running resumes the copies
    or prints the finished analysis.
    """
    from keras_lottery.results import tables as report
    from keras_lottery.analysis import figures
    from keras_lottery.analysis import instability

    if output is not None:
        figures.check_path(output)
    found = instability.stability(
        parent, iteration=list(iterations), density=density, copies=copies,
        points=points, reset_bn=reset_bn, seed=seed, out=out, dataset=dataset,
        data_dir=data_dir, save_every=save_every, verbose=options.verbosity(quiet))
    found = found if isinstance(found, list) else [found]
    rows = [row for result in found for row in result.rows()]
    click.echo(report.render(rows, instability.COLUMNS, fmt))
    if fmt == "table":
        for result in found:
            click.echo(f"wrote {result.path / 'stability.json'} and {result.figure}")
    if output is not None:
        figures.stability_curves(found, path=output)
        if fmt == "table":
            click.echo(f"wrote {output}")


@click.command()
@click.argument("runs", nargs=-1, type=options.PATH)
@click.option("--iter", "iteration", type=int, help="Compare the masks of "
              "this checkpoint iteration, which every run saved [default: the "
              "final ones].")
@click.option("--per-layer", is_flag=True, help="A row per layer and pair, "
              "not only each pair's total.")
@click.option("-o", "--output", type=options.PATH, help="Write a heatmap of "
              "the total overlap of every pair here (png, pdf, svg).")
@FORMAT
@options.friendly_errors
def masks(runs, iteration, per_layer, output, fmt):
    """Overlap of the masks of RUNS (run directories, folders of runs or
    .toml study files; two runs or more, of one architecture); of one run,
    its masks layer by layer.

    For every pair A, B: the Jaccard index |A and B| / |A or B| of their
    surviving weights (1: the same mask, 0: disjoint), and the fraction of
    B's survivors that A keeps, per layer and in total. --format json
    prints everything, layers included. One run: each kernel's weights and
    filters kept, and the network's multiply-accumulates (FLOPs). A run
    whose masks keep no weight of a kernel (layer collapse) is named in a
    warning.
    """
    import json

    from keras_lottery.results import tables as report
    from keras_lottery.analysis import figures
    from keras_lottery.analysis import overlap

    if len(runs) == 1 and not _is_folder_of_runs(runs[0]):
        return _one_run(runs[0], iteration)
    if output is not None:
        figures.check_path(output)
    result = overlap.mask_overlap(list(runs), iteration="final" if iteration is None else iteration)
    if fmt == "json":
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        click.echo(report.render(result.rows(per_layer), overlap.COLUMNS, fmt))
    for path, keys in result.collapsed().items():
        shown = ", ".join(keys[:4]) + (", ..." if len(keys) > 4 else "")
        click.echo(f"Warning: {path}: {len(keys)} kernel(s) with no weight ({shown}); "
                   "their layers output only their bias", err=True)
    if output is not None:
        figures.overlap_heatmap(result, path=output)
        if fmt == "table":
            click.echo(f"wrote {output}")


def _is_folder_of_runs(path):
    from keras_lottery.runs import sources

    return sources.is_study(path)


def _one_run(path, iteration):
    import keras_lottery as kl

    run = kl.Run.open(path).check()
    model = run.load_model("final" if iteration is None else iteration)
    click.echo(str(kl.sparsity_report(model)))


@click.command()
@click.argument("run", type=options.PATH)
@click.option("-o", "--output", type=options.PATH, required=True,
              help="The .keras file to write the thinned model to.")
@click.option("--iter", "iteration", type=int, help="The checkpoint to thin "
              "[default: the final one].")
@click.option("--multiple", type=click.IntRange(min=1), default=1, show_default=True,
              help="Keep a multiple of this many channels per layer (8 suits CPU "
              "and GPU convolutions better than any count; on a CPU, use 8 for a "
              "network you will train).")
@options.friendly_errors
def thin(run, output, iteration, multiple):
    """Write RUN's network with its pruned filters physically removed: a
    plain Keras model (no masks) with the same outputs in inference, fewer
    parameters and FLOPs."""
    import keras_lottery as kl

    if not str(output).endswith(".keras"):
        raise click.BadParameter(f"{output} does not end in .keras", param_hint="--output")
    opened = kl.Run.open(run).check()
    model = opened.load_model("final" if iteration is None else iteration)
    thinned = kl.thin(model, multiple=multiple)
    before, after = kl.sparsity_report(model), thinned.count_params()
    thinned.save(output)
    click.echo(f"wrote {output}: {after:,} parameters (masked: "
               f"{before.total.remaining:,} of {before.total.total:,} kernel weights kept)")
    unblocked = _unblocked(model, thinned)
    if unblocked:
        click.echo(f"note: {len(unblocked)} convolutions ({', '.join(unblocked[:3])}"
                   f"{', ...' if len(unblocked) > 3 else ''}) lost their multiple of "
                   f"{BLOCK} filters; on a CPU that makes training slower, not faster: "
                   f"to train it, thin with --multiple {BLOCK}")


# Channels CPU convolution and batch-norm kernels are blocked by.
BLOCK = 8


def _unblocked(model, thinned):
    """Names of the convolutions whose filters were a multiple of `BLOCK`
    before thinning and are not after."""
    before = {layer.name: layer for layer in model.layers}
    return [layer.name for layer in thinned.layers
            if isinstance(getattr(layer, "filters", None), int) and layer.name in before
            and before[layer.name].filters % BLOCK == 0 and layer.filters % BLOCK]
