"""`python -m keras_lottery.cli`: the `lottery` command (how studies start runs)."""

from keras_lottery.cli import entry

entry()
