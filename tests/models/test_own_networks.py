"""Real Keras models of your own through the runs: nested sub-models that
repeat layer names, softmax heads, attention, collapsed layers."""

import keras
import numpy as np

import keras_lottery as kl

SMALL = dict(dataset="digits", steps=4, batch_size=32, eval_every=4,
             checkpoint_iters=[0, 1, 4], seed=0, verbose=0)


def _tower(name, units):
    inputs = keras.Input((64,))
    x = keras.layers.Dense(units, activation="relu", name="dense")(inputs)
    return keras.Model(inputs, keras.layers.Dense(8, name="out")(x), name=name)


def test_sub_models_that_repeat_layer_names_train_and_rewind(tmp_path):
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Flatten()(inputs)
    both = keras.layers.Concatenate()([_tower("tower_a", 16)(x), _tower("tower_b", 12)(x)])
    model = keras.Model(inputs, keras.layers.Dense(10, name="head")(both))
    run = kl.train(model, out=tmp_path / "train", **SMALL)
    child = kl.rewind(run, iteration=1, density=0.5, seed=1, out=tmp_path / "rewind")
    masks = kl.get_masks(child.load_model())
    assert list(masks) == ["tower_a/dense", "tower_a/out", "tower_b/dense",
                           "tower_b/out", "head"]
    total = 64 * 16 + 16 * 8 + 64 * 12 + 12 * 8 + 16 * 10
    assert sum(int(m.sum()) for m in masks.values()) == total // 2
    assert child.density == 0.5
    # Rewound: the kept weights are those of k = 1, pruned ones zero.
    rewound = child.load_model(1)
    at_k = run.load_model(1)
    for key, (kernel, start) in {k: (v, kl.get_kernels(at_k)[k])
                                 for k, v in kl.get_kernels(rewound).items()}.items():
        np.testing.assert_array_equal(kernel, start * masks[key])
