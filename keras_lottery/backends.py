"""Keras's backend: which one is configured, and what to install if it is missing.

TensorFlow is not a hard requirement of keras_lottery, so that a machine
with `tensorflow` (on Linux the CUDA build) or `tensorflow-cpu` keeps the
one it has: the extra `[cpu]` brings `tensorflow-cpu`, `[and-cuda]`
`tensorflow[and-cuda]`, `[jax]` and `[torch]` Keras's other backends
(chosen with `KERAS_BACKEND`). Without one, Keras fails on its
first import; `missing` turns that failure into one line naming the fix.
This module imports neither Keras nor a backend.
"""

import importlib
import importlib.util
import json
import os
import platform
import sys

# tensorflow-cpu exists for x86-64 Linux and Windows only; elsewhere (macOS,
# ARM Linux) `tensorflow` itself is the CPU build.
_CPU_TF = ("tensorflow-cpu" if sys.platform != "darwin"
           and platform.machine() in ("x86_64", "AMD64") else "tensorflow")
# What to install for each backend Keras can load.
INSTALL = {
    "tensorflow": f"pip install {_CPU_TF} (CPU), or pip install "
                  "'tensorflow[and-cuda]' (NVIDIA GPU)",
    "jax": "pip install jax (CPU), or pip install 'jax[cuda12]' (NVIDIA GPU)",
    "torch": "pip install torch --index-url https://download.pytorch.org/whl/cpu "
             "(CPU), or pip install torch (NVIDIA GPU on Linux)",
}


def configured():
    """The backend Keras loads, looked up as Keras does: `KERAS_BACKEND`,
    else `"backend"` in `$KERAS_HOME/keras.json` (default `~/.keras`), else
    `"tensorflow"`."""
    name = os.environ.get("KERAS_BACKEND")
    if name:
        return name
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    try:
        with open(os.path.join(home, "keras.json")) as f:
            return json.load(f).get("backend") or "tensorflow"
    except (OSError, ValueError, AttributeError):
        return "tensorflow"


def described():
    """The configured backend in words, for `lottery --version`, found
    without importing it: "Keras backend: jax" (", not installed")."""
    name = configured()
    installed = name not in INSTALL or importlib.util.find_spec(name) is not None
    return f"Keras backend: {name}" + ("" if installed else ", not installed")


def missing():
    """One line saying what to install if the configured backend cannot be
    imported, else None.

    Called after an `ImportError`, to tell a missing backend from any
    other import problem.
    """
    name = configured()
    if name not in INSTALL:
        return None
    try:
        importlib.import_module(name)
    except ImportError as e:
        other = "" if name == "jax" else ", or use JAX: pip install jax and set KERAS_BACKEND=jax"
        return (f"Keras's backend {name!r} cannot be imported ({e}); "
                f"install it: {INSTALL[name]}{other}")
    return None
