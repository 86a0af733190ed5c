"""Swapping batch-norm kinds in a model, for the benchmark's comparisons.

The fused batch norm this benchmark proposed is now the library's
(`keras_lottery.sparse.layers.FusedBatchNormalization`, tested against Keras's layer
in `tests/sparse/test_layers.py`); throughput.py uses these helpers to measure a
network with it (`masked_fusedbn`) and without it (`masked_kerasbn`).
"""

import keras

from keras_lottery.sparse.layers import FusedBatchNormalization
from keras_lottery.sparse.pruning import iter_layers


def uses_fused_batch_norm(model):
    return any(
        isinstance(layer, keras.layers.BatchNormalization)
        and type(layer) is not keras.layers.BatchNormalization
        for layer in iter_layers(model)
    )


def with_fused_batch_norm(model):
    """A copy of a Functional/Sequential model whose plain
    BatchNormalization layers are fused ones, weights copied."""
    return _swap_batch_norm(
        model, lambda layer: type(layer) is keras.layers.BatchNormalization,
        FusedBatchNormalization)


def with_keras_batch_norm(model):
    """A copy whose batch-norm layers are all Keras's own (unfused)."""
    return _swap_batch_norm(
        model,
        lambda layer: isinstance(layer, keras.layers.BatchNormalization)
        and type(layer) is not keras.layers.BatchNormalization,
        keras.layers.BatchNormalization)


def _swap_batch_norm(model, select, cls):
    def clone(layer):
        target = cls if select(layer) else type(layer)
        return target.from_config(layer.get_config())

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy
