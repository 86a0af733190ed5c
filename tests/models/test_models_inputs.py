"""Every architecture adapts to the data's class count and the shapes it can
take; a shape it cannot take fails at once, naming what it needs."""

import keras
import numpy as np
import pytest

import keras_lottery as kl
from keras_lottery import models


def _fresh(name, seed=0, **kwargs):
    keras.utils.set_random_seed(seed)
    return models.build(name, **kwargs)


@pytest.mark.parametrize(
    "name, input_shape, num_classes",
    [
        ("lenet300", (28, 28, 1), 10),
        ("lenet300", (784,), 10),
        ("lenet300", (20,), 3),
        ("lenet300", (8, 8), 10),
        ("conv2", (28, 28, 1), 10),
        ("conv4", (28, 28, 1), 10),
        ("conv6", (28, 28, 1), 10),
        ("conv6", (32, 32, 3), 100),
        ("conv6", (8, 8, 1), 2),  # the smallest: three pools leave 1x1
        ("conv2", (2, 2, 1), 2),
        ("resnet20", (32, 32, 3), 100),  # CIFAR-100
        ("resnet8", (28, 28, 1), 10),
        ("resnet8", (1, 1, 3), 2),  # padded stride-2 convs keep 1x1 at 1x1
        ("vgg16_nofc", (32, 32, 1), 5),
    ],
)
def test_builds_and_predicts_for_shapes_it_can_take(name, input_shape, num_classes):
    model = _fresh(name, input_shape=input_shape, num_classes=num_classes)
    assert tuple(model.input_shape) == (None,) + input_shape
    assert tuple(model.output_shape) == (None, num_classes)
    x = np.random.default_rng(0).normal(size=(2,) + input_shape).astype("float32")
    y = keras.ops.convert_to_numpy(model(x, training=False))
    assert y.shape == (2, num_classes) and np.isfinite(y).all()


def test_lenet300_on_flat_vectors_is_the_same_network():
    flat = _fresh("lenet300", input_shape=(784,), seed=4)
    image = _fresh("lenet300", input_shape=(28, 28, 1), seed=4)
    assert [l.name for l in flat.layers] == [l.name for l in image.layers]
    assert tuple(flat.get_layer("flatten").output.shape) == (None, 784)
    for a, b in zip(flat.weights, image.weights):
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b)
        )
    x = np.random.default_rng(1).normal(size=(3, 28, 28, 1)).astype("float32")
    np.testing.assert_allclose(
        flat.predict(x.reshape(3, 784), verbose=0), image.predict(x, verbose=0),
        rtol=1e-6,
    )
    assert kl.sparsity_report(flat).total.total == 266_200


IMAGE = "an image shape (height, width, channels) of "
ANY = "one or more positive integer sizes, e.g. (784,) or (28, 28, 1)."
REFUSED = [
    ("resnet20", (784,), IMAGE + "positive integers."),
    ("resnet8", (32, 32), IMAGE + "positive integers."),
    ("resnet8", (32, 32, 3, 1), IMAGE + "positive integers."),
    ("resnet8", (32, 0, 3), IMAGE + "positive integers."),
    ("conv6", (784,), IMAGE + "at least 8x8, as it halves the size 3 times"),
    ("conv6", (7, 7, 1), IMAGE + "at least 8x8, as it halves the size 3 times"),
    ("conv6", (28, 4, 1), IMAGE + "at least 8x8"),
    ("conv4", (3, 3, 3), IMAGE + "at least 4x4, as it halves the size twice"),
    ("conv2", (1, 1, 3), IMAGE + "at least 2x2, as it halves the size once by "
     "2x2 max-pooling."),
    ("vgg16_nofc", (28, 28, 1), IMAGE + "at least 32x32, as it halves the size 5"),
    ("vgg16", (16, 16, 3), IMAGE + "at least 32x32"),
    ("lenet300", (), ANY),
    ("lenet300", (28, -28), ANY),
    ("lenet300", (28.0, 28.0), ANY),
    ("lenet300", 784, ANY),
    ("lenet300", "784", ANY),
]


@pytest.mark.parametrize("name, input_shape, need", REFUSED)
def test_shapes_it_cannot_take_are_refused_in_one_line(name, input_shape, need):
    with pytest.raises(ValueError) as info:
        models.check_input(name, input_shape)
    message = str(info.value)
    assert message.startswith(f"{name} cannot take input_shape {input_shape!r}: ")
    assert ": it needs " in message and need in message
    assert "\n" not in message
    # build raises the same error.
    with pytest.raises(ValueError) as built:
        models.build(name, input_shape=input_shape)
    assert str(built.value) == message


@pytest.mark.parametrize(
    "name, input_shape, need", REFUSED[:1] + REFUSED[4:6] + REFUSED[9:12]
)
def test_refused_before_any_layer_is_built(monkeypatch, name, input_shape, need):
    def no_layers(*args, **kwargs):
        raise AssertionError("a layer was built")

    monkeypatch.setattr(keras, "Input", no_layers)
    monkeypatch.setattr(kl.MaskedConv2D, "__init__", no_layers)
    monkeypatch.setattr(kl.MaskedDense, "__init__", no_layers)
    with pytest.raises(ValueError, match="cannot take input_shape"):
        models.build(name, input_shape=input_shape)
    with pytest.raises(AssertionError, match="a layer was built"):  # patch works
        models.build(name, input_shape=(32, 32, 3))


@pytest.mark.parametrize(
    "builder, input_shape, name",
    [
        (lambda **kw: models.resnet.resnet(8, **kw), (784,), "resnet8"),
        (lambda **kw: models.vgg.vgg16(fc=True, **kw), (16, 16, 3), "vgg16"),
        (lambda **kw: models.conv.conv_net(4, **kw), (3, 3, 1), "conv4"),
        (models.lenet.lenet300, (), "lenet300"),
    ],
)
def test_family_builders_also_refuse_before_any_layer(
    monkeypatch, builder, input_shape, name
):
    # Called directly, not through build(), each family checks first too.
    def no_layers(*args, **kwargs):
        raise AssertionError("a layer was built")

    monkeypatch.setattr(keras, "Input", no_layers)
    with pytest.raises(ValueError, match=f"^{name} cannot take input_shape"):
        builder(input_shape=input_shape)


def test_check_input_returns_the_shape_as_ints():
    shape = models.check_input("conv6", np.array([28, 28, 1]))
    assert shape == (28, 28, 1) and all(type(s) is int for s in shape)
    assert models.check_input("lenet300", [np.int64(784)]) == (784,)
    model = _fresh("lenet300", input_shape=np.array([8, 8, 1]), num_classes=np.int64(4))
    assert tuple(model.input_shape) == (None, 8, 8, 1)
    assert tuple(model.output_shape) == (None, 4)


@pytest.mark.parametrize("bad", [0, -3, 2.5, "10", True])
def test_num_classes_must_be_a_positive_integer(bad):
    with pytest.raises(ValueError) as info:
        models.build("conv2", num_classes=bad)
    assert str(info.value) == (
        f"conv2 needs num_classes to be a positive integer, got {bad!r}."
    )
