"""`python -m keras_lottery.cli`: the `lottery` command (how studies start runs)."""

from keras_lottery.cli import entry

if __name__ == "__main__":  # not when a documentation tool imports every module
    entry()
