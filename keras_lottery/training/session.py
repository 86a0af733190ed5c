"""What a run leaves in its process, cleared before the next one (a warm
worker runs many runs in turn).

`keras.backend.clear_session` frees Keras's own state, but TensorFlow keeps
one more thing per traced training function: Keras's TensorFlow optimizer
sums the gradients with the replica context's `all_reduce`, a
`tf.custom_gradient` that, once traced, registers its gradient function
under a new name (`CustomGradient-<n>`) in TensorFlow's process-wide
gradient registry and never removes it. That function holds the traced
graph: about 2.5 MB for LeNet-300-100, every run. A `Session` drops the
registrations made since it began, so a worker's memory stays flat.
"""

import sys

import keras

# The names `tf.custom_gradient` registers a traced gradient under.
CUSTOM_GRADIENT_PREFIX = "CustomGradient-"


def gradient_registry():
    """TensorFlow's gradient registry ({name: entry}), or {} where
    TensorFlow is not loaded or keeps it elsewhere (another version)."""
    if "tensorflow" not in sys.modules:
        return {}
    from tensorflow.python.framework import ops

    # TensorFlow's private names, on purpose: nothing public unregisters a
    # gradient. Tested on the version floors (tests/training/test_session.py).
    found = getattr(getattr(ops, "_gradient_registry", None), "_registry", None)
    return found if isinstance(found, dict) else {}


class Session:
    """Marks what the process holds now; `clear()` frees what runs added
    since: Keras's state and the traced gradients TensorFlow registered."""

    def __init__(self):
        self.kept = set(gradient_registry())

    def clear(self):
        """Frees what the runs since the mark left (and collects)."""
        registry = gradient_registry()
        for name in self._added(list(registry)):
            registry.pop(name, None)
        keras.backend.clear_session(free_memory=True)

    def left(self):
        """How many traced gradients the runs since the mark left
        registered."""
        return len(self._added(list(gradient_registry())))

    def _added(self, names):
        return [n for n in names
                if n not in self.kept and n.startswith(CUSTOM_GRADIENT_PREFIX)]
