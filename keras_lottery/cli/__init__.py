"""The `lottery` command line: a thin layer over keras_lottery's procedures.

Every problem the user can fix is printed as one `Error: ...` line with exit
status 1 (2 for malformed options), never a traceback. The commands live in
`keras_lottery.cli`; nothing here or there imports TensorFlow until a
command runs.
"""

import click

from keras_lottery import backends

from keras_lottery.cli import analysis
from keras_lottery.cli import data
from keras_lottery.cli import demo
from keras_lottery.cli import results
from keras_lottery.cli import study
from keras_lottery.cli import train
from keras_lottery.cli import worker
from keras_lottery.version import __version__


class Commands(click.Group):
    """The command group; a method's command takes either spelling
    (`lottery rewind_lr` is `lottery rewind-lr`)."""

    def get_command(self, ctx, cmd_name):
        return super().get_command(ctx, cmd_name.replace("_", "-"))


@click.group(cls=Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lottery",
                      message=f"%(prog)s, version %(version)s ({backends.described()})")
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
        lottery stability --from runs/resnet20/train-s1 --iter 4701 --density 80
        lottery study run examples/renda2020-resnet20.toml

    Try it offline in a few minutes first: lottery demo
    """


def entry():
    """The `lottery` program (and `python -m keras_lottery.cli`): marks when
    the process started, which the first run it trains records as its
    start-up (`keras_lottery.training.timing`), then runs `main`."""
    from keras_lottery.training import timing

    timing.set_origin(timing.process_started())
    main()


for command in (train.train, *train.DERIVED, train.iterate, train.run_request, results.results,
                results.plot, analysis.stability, analysis.masks, analysis.thin, demo.demo,
                data.data, study.study, worker.worker):
    main.add_command(command)


if __name__ == "__main__":
    main()
