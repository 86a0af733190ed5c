"""`lottery data download`: datasets staged before dispatch."""

import click

from keras_lottery.cli import options


@click.group()
def data():
    """Datasets: fetch and verify them into a folder (compute nodes are
    often offline; every run then reads them with --data-dir)."""


@data.command()
@click.option("--dataset", required=True, help="cifar10, cifar100, mnist or "
              "fashion_mnist (digits and synthetic need no download).")
@click.option("--data-dir", type=options.PATH, default="data", show_default=True,
              help="The folder to put the official files in.")
@options.friendly_errors
def download(dataset, data_dir):
    """Fetch a dataset's official files into a folder and verify them
    (checksums, then a full read)."""
    from keras_lottery import data as data_lib

    folder = data_lib.download(dataset, data_dir)
    click.echo(f"{dataset}: verified in {folder}; train with --dataset {dataset} "
               f"--data-dir {data_dir}")
