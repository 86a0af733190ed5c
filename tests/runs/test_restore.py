"""`Run.load_model(iteration)`: a run's masked model back from its files
(issue 15)."""

import keras
import numpy as np
import pytest

import keras_lottery as kl
from keras_lottery.sparse import pruning
from keras_lottery import data as data_lib


def _state(model):
    return ([keras.ops.convert_to_numpy(v) for v in model.weights],
            [keras.ops.convert_to_numpy(v) for v in model.optimizer.variables])


def test_load_model_is_the_checkpoint_and_reproduces_the_final_accuracy(digits_family):
    _, child = digits_family
    model = child.load_model()
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == child.end_step
    # The same state as the checkpoint loaded into a model built by hand.
    by_hand = kl.models.build("lenet300", input_shape=(8, 8, 1), num_classes=10)
    kl.compile_model(by_hand, child.spec.recipe)
    kl.load_state(by_hand, child.checkpoints["final"], child.end_step)
    for mine, theirs in zip(_state(model), _state(by_hand)):  # weights, optimizer
        assert len(mine) == len(theirs)
        for a, b in zip(mine, theirs):
            np.testing.assert_array_equal(a, b)
    masks = kl.get_masks(model)
    assert sum(int(m.sum()) for m in masks.values()) == 25_100  # half of 50,200
    assert pruning.density(model) == child.density
    data = data_lib.load("digits")
    test = data_lib.EvalBatches(data.x_test, data.y_test, 32, normalize=data.normalize)
    top1 = model.evaluate(test, verbose=0, return_dict=True)["top1"]
    assert top1 == pytest.approx(child.metrics[-1]["top1"], abs=1e-6)


def test_load_model_at_an_iteration_and_a_bad_one(digits_family):
    parent, child = digits_family
    at_k = child.load_model(3)  # the child's start: k's weights under its masks
    assert int(keras.ops.convert_to_numpy(at_k.optimizer.iterations)) == 3
    assert pruning.density(at_k) == child.density
    assert pruning.density(parent.load_model(0)) == 1.0
    with pytest.raises(kl.LotteryError) as error:
        child.load_model(5)
    assert str(error.value) == (f"iteration=5: is not a checkpoint of {child.path}; "
                                "saved: 3, 12, final")


def test_a_run_evaluates_again_on_the_data_it_saw(digits_family, tmp_path):
    parent, child = digits_family
    assert child.evaluate() == pytest.approx(
        {k: child.metrics[-1][k] for k in ("top1", "top5", "loss")}, abs=1e-6)
    assert parent.evaluate(12)["top1"] == pytest.approx(parent.metrics[-1]["top1"], abs=1e-6)
    x, y = child.evaluation_data()
    raw = data_lib.load("digits")
    assert x.shape == raw.x_test.shape and np.array_equal(y, raw.y_test)
    assert not np.allclose(x, raw.x_test)  # normalized, as the run saw them
    model = child.load_model()
    top1 = model.evaluate(x, y, verbose=0, return_dict=True)["top1"]
    assert top1 == pytest.approx(child.metrics[-1]["top1"], abs=1e-6)
    with pytest.raises(kl.LotteryError, match="held out no validation images"):
        child.evaluation_data("validation")
    with pytest.raises(kl.LotteryError, match='split=\'train\': expected "test" or'):
        child.evaluation_data("train")


def test_a_held_out_validation_set_is_the_runs_own(tmp_path):
    run = kl.train("lenet300", dataset="digits", steps=8, batch_size=32, eval_every=8,
                   checkpoint_iters=[0, 8], val_split=100, seed=0, verbose=0,
                   out=tmp_path / "r")
    x, y = run.evaluation_data()
    vx, vy = run.evaluation_data("validation")
    assert (len(x), len(vx)) == (260, 100)
    assert run.evaluate(split="validation")["top1"] == pytest.approx(
        run.metrics[-1]["val_top1"], abs=1e-6)
    assert run.evaluate()["top1"] == pytest.approx(run.metrics[-1]["top1"], abs=1e-6)
