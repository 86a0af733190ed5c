"""The `lottery` command line: a thin layer over keras_lottery's procedures."""

import click

from keras_lottery import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lottery")
def main():
    """Lottery-ticket pruning experiments in Keras 3.

    Reproduces "Comparing Rewinding and Fine-tuning in Neural Network
    Pruning" (Renda, Frankle, Carbin, ICLR 2020) on CIFAR-10.
    """


if __name__ == "__main__":
    main()
