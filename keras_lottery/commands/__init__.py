"""The `lottery` command's subcommands, grouped by what they act on.

Each module defines click commands that `keras_lottery.cli` registers.
They import the library inside the command functions, so `lottery --help`
loads neither TensorFlow nor Keras.
"""
