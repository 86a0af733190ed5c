import json

import keras
import numpy as np
import pytest

from keras_lottery.spec import recipe
from keras_lottery.training import schedules
from keras_lottery.training.compile import schedule_for


def _lr(schedule, step):
    return float(keras.ops.convert_to_numpy(schedule(step)))


@pytest.mark.parametrize("step", [0, 1, 35547, 10**6])
def test_constant_schedule(step):
    s = schedules.ConstantSchedule(0.001)
    assert _lr(s, step) == pytest.approx(0.001, rel=1e-6)
    back = keras.optimizers.schedules.deserialize(
        json.loads(json.dumps(keras.optimizers.schedules.serialize(s)))
    )
    assert type(back) is schedules.ConstantSchedule
    assert _lr(back, step) == pytest.approx(0.001, rel=1e-6)
    assert back.get_config() == {"learning_rate": 0.001}


def test_constant_schedule_drives_optimizer():
    import keras_lottery as kl

    opt = kl.MomentumSGD(schedules.ConstantSchedule(0.25), momentum=0.0)
    var = keras.Variable(np.zeros(1, "float32"))
    for _ in range(3):
        opt.apply_gradients([(keras.ops.ones((1,)), var)])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(var), [-0.75], rtol=1e-6)


def test_piecewise_without_drops_or_warmup_is_constant_and_warmup_serializes():
    assert type(schedules.piecewise((), (0.3,))) is schedules.ConstantSchedule
    warm = schedules.piecewise((10,), (0.2, 0.02), warmup_steps=5)
    back = keras.optimizers.schedules.deserialize(
        json.loads(json.dumps(keras.optimizers.schedules.serialize(warm))))
    assert type(back) is schedules.LinearWarmup and back.steps == 5
    assert [_lr(back, g) for g in (0, 4, 10, 11)] == pytest.approx(
        [0.04, 0.2, 0.2, 0.02], rel=1e-6)
    # The paper's recipe keeps Keras's own piecewise schedule (bit-identical).
    assert type(schedule_for(recipe.Recipe())).__name__ == "PiecewiseConstantDecay"
