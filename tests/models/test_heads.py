"""A softmax head is trained as one, a sigmoid head refused (issue 23)."""

import keras
import numpy as np
import pytest

import keras_lottery as kl
from keras_lottery.models import heads
from keras_lottery.spec import recipe as recipe_lib


def _mlp(*head):
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(5), *head])


def _nested_softmax():
    inputs = keras.Input((4,))
    inner = keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="p")(inputs))
    outer_inputs = keras.Input((4,))
    return keras.Model(outer_inputs, inner(keras.layers.Dense(4)(outer_inputs)))


@pytest.mark.parametrize("model, activation", [
    (_mlp(keras.layers.Dense(3)), None),
    (_mlp(keras.layers.Dense(3, activation="softmax")), "softmax"),
    (_mlp(keras.layers.Dense(3), keras.layers.Activation("softmax")), "softmax"),
    (_mlp(keras.layers.Dense(3), keras.layers.Softmax()), "softmax"),
    (_mlp(keras.layers.Dense(3, activation="log_softmax")), None),
    (_nested_softmax(), "softmax"),
    (_mlp(keras.layers.Dense(3, activation="sigmoid")), "sigmoid"),
])
def test_the_output_activation_is_read_from_the_output_layer(model, activation):
    assert heads.output_activation(model) == activation
    assert heads.output_activation(kl.masked(model)) == activation


@pytest.mark.parametrize("name", ["MobileNetV2", "MobileNetV3Small"])
def test_keras_applications_end_in_a_softmax(name):
    # MobileNetV2 ends in Dense(softmax), MobileNetV3 in Activation(softmax).
    model = getattr(keras.applications, name)(input_shape=(32, 32, 3), weights=None,
                                              classes=10)
    assert heads.output_activation(model) == "softmax"


def _loss_of(model, **kwargs):
    kl.compile_model(model, recipe_lib.make(steps=10), **kwargs)
    return model.loss.get_config()["from_logits"]


def test_compile_model_follows_the_model_output():
    assert _loss_of(_mlp(keras.layers.Dense(3))) is True
    assert _loss_of(_mlp(keras.layers.Dense(3, activation="softmax"))) is False
    own = keras.losses.SparseCategoricalCrossentropy(from_logits=False)
    assert _loss_of(_mlp(keras.layers.Softmax()), loss=own) is False


def test_a_loss_that_contradicts_the_output_and_a_sigmoid_head_are_refused():
    logits = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    with pytest.raises(kl.LotteryError) as error:
        _loss_of(_mlp(keras.layers.Dense(3, activation="softmax")), loss=logits)
    assert str(error.value) == (
        "loss='SparseCategoricalCrossentropy': has from_logits=True, but the model "
        "outputs softmax probabilities: pass from_logits=False, or leave loss out to "
        "follow the model")
    model = _mlp(keras.layers.Dense(3, activation="sigmoid", name="out"))
    with pytest.raises(kl.LotteryError, match=r"^model='sequential\w*': its output layer "
                       r"'out' ends in a sigmoid.*: end the model in logits "
                       r"\(activation=None\) or a softmax, one output per class$"):
        _loss_of(model)


def test_a_sigmoid_head_is_refused_before_a_run_is_written(tmp_path):
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(10, activation="sigmoid")])
    with pytest.raises(kl.LotteryError, match="^arch=.*ends in a sigmoid"):
        kl.train(model, dataset="digits", steps=2, seed=0, verbose=0, root=tmp_path / "runs")
    assert list(tmp_path.iterdir()) == []


def test_a_softmax_application_trains_on_its_probabilities(tmp_path):
    # keras.applications end in a softmax: the loss must not take its
    # probabilities for logits (which trains towards a uniform output).
    model = keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35,
                                           weights=None, classes=10)
    run = kl.train(model, dataset="synthetic", steps=2, batch_size=16, eval_every=2,
                   checkpoint_iters=[0, 2], seed=0, verbose=0, out=tmp_path / "train")
    assert run.status == "finished"
    trained = run.load_model()
    assert trained.loss.get_config()["from_logits"] is False
    assert np.isfinite(run.metrics[-1]["loss"])
