"""Saved `.keras` files that hold keras_lottery's layers load in any process.

Keras finds a class a file names in its registry, which the class enters
when its module is imported (`keras.saving.register_keras_serializable`).
`import keras_lottery` imports no Keras (its names load on first use), so
it registers its Keras objects (masked layers, `FusedBatchNormalization`,
`MomentumSGD`, the LR schedules, the `top5` metric) as soon as Keras is
imported: at once if it already is, else right after `import keras`
finishes. Then `keras.models.load_model("masked.keras")` works after
`import keras_lottery`, whichever comes first; `load_model` also rebuilds
the masked layers inside layers of your own. This module imports nothing at
import time.
"""

import importlib
import importlib.util
import sys
import zipfile

# The modules whose import registers the Keras objects a saved model names.
REGISTERING = (
    "keras_lottery.sparse.layers",
    "keras_lottery.training.schedules",
    "keras_lottery.training.optimizer",
    "keras_lottery.training.compile",
)


def register():
    """Registers keras_lottery's Keras objects (imports `REGISTERING`)."""
    for name in REGISTERING:
        importlib.import_module(name)


def register_when_keras_loads():
    """Registers keras_lottery's Keras objects now if Keras is imported,
    else right after Keras is (once)."""
    if "keras" in sys.modules:
        _register_quietly()
    elif not any(isinstance(f, _AfterKeras) for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterKeras())


def _register_quietly():
    # A convenience: `import keras` must not fail because of it. A module
    # of ours that is itself importing Keras (so half-initialized) fails
    # here and registers when its import completes; `load_model` registers
    # again and reports any real error.
    for name in REGISTERING:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001
            pass


class _AfterKeras:
    """An import hook that finds nothing itself: when `keras` is imported it
    lets the other finders find it, and registers once Keras has loaded."""

    def find_spec(self, name, path=None, target=None):
        if name != "keras":
            return None
        sys.meta_path.remove(self)  # once, and out of the search below
        spec = importlib.util.find_spec(name)
        loader = getattr(spec, "loader", None)
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        load = loader.exec_module

        def exec_module(module):
            try:
                load(module)
            finally:
                del loader.exec_module  # the loader's own method again
            _register_quietly()

        loader.exec_module = exec_module
        return spec


def load_model(path, *, custom_objects=None, compile=True, safe_mode=True):
    """Loads a `.keras` file saved from a model with masked layers.

    `keras.saving.load_model` with keras_lottery's Keras objects registered
    (which `import keras_lottery` also does). For a file with masked layers,
    the kernel layers that layers of your own make (a `TransformerBlock`'s
    attention and `Dense` layers) are masked again as `masked()` masked
    them, which Keras alone cannot know. The masks load with the weights: a
    pruned model comes back pruned.

    Example:

    >>> keras_lottery.masked(model).save("masked.keras")
    >>> model = keras_lottery.load_model("masked.keras")

    Args:
        path: a `.keras` file.
        custom_objects, compile, safe_mode: as `keras.saving.load_model`.
    """
    register()
    import keras

    from keras_lottery.sparse import conversion
    from keras_lottery.sparse import held

    def load(objects):
        return keras.saving.load_model(path, custom_objects=objects,
                                       compile=compile, safe_mode=safe_mode)

    if not _names_masked_layers(path):
        return load(custom_objects)
    with held.converting_held(conversion.TO_MASKED, custom_objects) as objects:
        return load(objects)


def _names_masked_layers(path):
    """Whether the `.keras` file at `path` names a keras_lottery layer."""
    try:
        with zipfile.ZipFile(path) as archive:
            return '"keras_lottery>Masked' in archive.read("config.json").decode()
    except (OSError, KeyError, zipfile.BadZipFile):
        return False  # Keras says what is wrong with it
