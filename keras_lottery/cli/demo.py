"""`lottery demo`: the whole study in miniature, offline."""

import click

from keras_lottery.cli import options


@click.command()
@click.option("--quick", is_flag=True, help="The CI-sized version (about a "
              "minute on 2 CPU cores): fewer steps, densities and seeds.")
@click.option("--out", type=options.PATH, default="lottery-demo", show_default=True,
              help="Where the demo's runs, table and plot go (a folder of its "
              "own, apart from ./runs).")
@click.option("-v", "--verbose", is_flag=True, help="Also one line per "
              "evaluation.")
@options.friendly_errors
def demo(quick, out, verbose):
    """The whole study offline in a few minutes: LeNet-300-100 on the
    bundled 8x8 handwritten digits, trained with checkpoints, then weight
    rewinding, LR rewinding, fine-tuning and random pruning at several
    densities; ends with the results table and a plot (OUT/accuracy.png).
    Every number is trained on the spot. Re-running skips finished runs.
    """
    from keras_lottery.procedures import demo as demo_lib

    finished, table = demo_lib.run(out, quick=quick, verbose=2 if verbose else 1,
                                   echo=click.echo)
    click.echo(table)
    figure = out / "accuracy.png"
    demo_lib.plot(finished, figure)
    click.echo(f"wrote {figure}")
    click.echo(f"next: lottery results {out}   lottery plot {out} --curves -o curves.png")
