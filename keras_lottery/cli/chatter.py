"""Filters TensorFlow's C++ start-up chatter out of the command's stderr.

TensorFlow 2.20+ writes its informational lines (oneDNN, CUDA drivers,
CPU features) before its logging is configured, so `TF_CPP_MIN_LOG_LEVEL`
no longer hides them. While a command runs, file descriptor 2 goes through
a pipe; every line except those is passed on unchanged.
"""

import contextlib
import os
import re
import sys
import threading

CHATTER = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\)"
    r"|I0000 \S+ +\d+ (port|cudart_stub|cpu_feature_guard|cuda_\w+)\.cc"
    r"|E0000 \S+ +\d+ cuda_\w+\.cc.*(Unable to register|cuInit)"
    r"|To enable the following instructions:.*rebuild TensorFlow"
    r"|This TensorFlow binary is optimized to use available CPU instructions)"
)


def _real_stderr():
    try:
        return sys.stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):  # e.g. click's test runner
        return False


@contextlib.contextmanager
def filtered():
    """Passes stderr through the filter while the block runs."""
    if not _real_stderr():
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    read, write = os.pipe()
    os.dup2(write, 2)
    os.close(write)
    pump = threading.Thread(target=_pump, args=(read, saved), daemon=True)
    pump.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)  # closes the pipe's last writer: the pump ends
        pump.join(timeout=5)
        os.close(saved)


def _pump(read, target):
    with os.fdopen(read, "rb") as lines:
        for line in lines:
            if not CHATTER.match(line.decode(errors="replace")):
                os.write(target, line)
