"""`Session.clear()` frees what runs left in their process: Keras's state
and the traced gradient functions TensorFlow keeps for every traced
training function, each holding its graph."""

import gc

import keras
import numpy as np
import pytest

from keras_lottery.training import session as session_lib

tf = pytest.importorskip("tensorflow")


def _graphs():
    from tensorflow.python.framework import func_graph

    return sum(isinstance(o, func_graph.FuncGraph) for o in gc.get_objects())


def _train_a_model():
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])
    model.compile("sgd", "mse")
    model.fit(np.ones((8, 8), "float32"), np.ones((8, 4), "float32"), verbose=0)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TensorFlow's registry")
def test_clear_drops_the_gradients_and_graphs_runs_traced():
    session = session_lib.Session()
    keras.backend.clear_session(free_memory=True)
    before = _graphs()
    for _ in range(3):
        _train_a_model()
    keras.backend.clear_session(free_memory=True)
    # Keras's own clearing leaves each run's traced training graph behind.
    assert session.left() >= 3
    assert _graphs() >= before + 3
    session.clear()
    assert session.left() == 0
    assert _graphs() == before


def test_clear_keeps_what_was_registered_before_the_mark():
    registry = session_lib.gradient_registry()
    name = session_lib.CUSTOM_GRADIENT_PREFIX + "kept-by-the-test"
    registry[name] = {"type": None, "location": None}
    try:
        session_lib.Session().clear()
        assert name in registry
    finally:
        registry.pop(name, None)
