"""`.keras` files with masked layers load in a fresh process after
`import keras_lottery`, and with `keras_lottery.load_model`."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import keras_lottery as kl


def _pruned_model(path):
    """A pruned masked CNN saved at `path`; returns its output on `x`."""
    keras.utils.set_random_seed(0)
    model = kl.masked(keras.Sequential([
        keras.Input((6, 6, 2)), keras.layers.Conv2D(4, 3, name="conv"),
        keras.layers.BatchNormalization(), keras.layers.Flatten(),
        keras.layers.Dense(3, name="dense")]))
    kl.prune(model, 0.3)
    model.save(path)
    return model


def _fresh_python(code, cwd):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd,
                          capture_output=True, text=True, env=env, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


def test_import_keras_lottery_alone_loads_no_keras(tmp_path):
    loaded = _fresh_python("""
        import json, sys
        import keras_lottery
        print(json.dumps(sorted({m.split(".")[0] for m in sys.modules}
                                & {"keras", "tensorflow", "jax", "numpy"})))
        """, tmp_path)
    assert loaded == []


LOAD = """
import json
import numpy as np
{imports}
model = {load}("m.keras")
x = np.load("x.npy")
print(json.dumps({{"classes": [type(l).__name__ for l in model.layers],
                   "y": keras.ops.convert_to_numpy(model(x)).tolist(),
                   "density": keras_lottery.density(model)}}))
"""


@pytest.mark.parametrize("imports, load", [
    ("import keras_lottery\nimport keras", "keras.models.load_model"),
    ("import keras\nimport keras_lottery", "keras.models.load_model"),
    ("import keras_lottery\nimport keras", "keras_lottery.load_model"),
])
def test_a_masked_keras_file_loads_in_a_fresh_process(tmp_path, imports, load):
    model = _pruned_model(tmp_path / "m.keras")
    x = np.random.default_rng(0).normal(size=(2, 6, 6, 2)).astype("float32")
    np.save(tmp_path / "x.npy", x)
    found = _fresh_python(LOAD.format(imports=imports, load=load), tmp_path)
    assert found["classes"] == ["MaskedConv2D", "BatchNormalization", "Flatten",
                                "MaskedDense"]
    np.testing.assert_allclose(found["y"], keras.ops.convert_to_numpy(model(x)),
                               rtol=1e-5, atol=1e-6)
    assert found["density"] == pytest.approx(kl.density(model))


def test_load_model_brings_the_masks_back(tmp_path):
    model = _pruned_model(tmp_path / "m.keras")
    loaded = kl.load_model(tmp_path / "m.keras")
    masks, again = kl.get_masks(model), kl.get_masks(loaded)
    assert list(again) == ["conv", "dense"]
    for key in masks:
        np.testing.assert_array_equal(again[key], masks[key])
