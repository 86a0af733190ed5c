"""`set_masks` zeroes every optimizer slot of a pruned kernel entry, through
any loss-scale wrapper, so that pruned stored weights stay exactly zero under
float32, bf16 and fp16 (weight decay acts on the stored kernel, whose L2
gradient is zero where the stored kernel is)."""

import keras
import numpy as np
import pytest

import keras_lottery as kl
from keras_lottery.sparse import pruning
from keras_lottery.sparse.slots import optimizers
from keras_lottery.sparse.slots import slot_variables

OPTIMIZERS = {
    "momentum_sgd": (lambda: kl.MomentumSGD(0.05, momentum=0.9), 1),
    "sgd": (lambda: keras.optimizers.SGD(0.05, momentum=0.9), 1),
    "nesterov": (lambda: keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True), 1),
    "adam": (lambda: keras.optimizers.Adam(0.01), 2),  # momentums, velocities
}
# A normal first loss scale: no step overflows, so momentum is nonzero
# everywhere by the time we prune.
WRAPPERS = {
    "plain": lambda inner: inner,
    "kl_loss_scale": lambda inner: kl.LossScaleOptimizer(inner, initial_scale=2.0**8),
    "keras_loss_scale": lambda inner: keras.optimizers.LossScaleOptimizer(
        inner, initial_scale=2.0**8),
}
POLICIES = {"float32": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}


def _np(x):
    return keras.ops.convert_to_numpy(x)


@pytest.fixture
def policy(request):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(POLICIES[request.param])
    yield request.param
    keras.config.set_dtype_policy(previous)


def _model():
    l2 = keras.regularizers.L2(1e-2)
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 6, 2))
    x = kl.MaskedConv2D(4, 3, padding="same", kernel_regularizer=l2, name="conv")(inputs)
    x = kl.MaskedSeparableConv2D(3, 3, depthwise_regularizer=l2,
                                 pointwise_regularizer=l2, name="sep")(x)
    x = keras.layers.Flatten()(x)
    outputs = kl.MaskedDense(2, kernel_regularizer=l2, name="dense")(x)
    return keras.Model(inputs, outputs)


def _data(seed):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(12, 6, 6, 2)).astype("float32"),
            rng.normal(size=(12, 2)).astype("float32"))


def _raw(model):
    return {key: _np(kernel.raw)
            for key, (_, kernel) in pruning.masked_kernels(model).items()}


def _check_slots_found(model, per_variable):
    """Every optimizer variable of a model variable's shape (not the
    counters and scales) is found for exactly one model variable, as many
    per variable as the optimizer keeps."""
    found = {}
    for variable in model.trainable_variables:
        slots = slot_variables(model.optimizer, variable, model.variables)
        assert len(slots) == per_variable, variable.path
        found.update({id(s): variable for s in slots})
    every = {id(v) for opt in optimizers(model.optimizer) for v in opt.variables
             if len(v.shape) > 0}
    assert every == set(found)


@pytest.mark.parametrize("policy", list(POLICIES), indirect=True)
@pytest.mark.parametrize("wrapper", list(WRAPPERS))
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_set_masks_zeroes_every_slot_and_pruned_weights_stay_zero(name, wrapper, policy):
    make, per_variable = OPTIMIZERS[name]
    model = _model()
    model.compile(optimizer=WRAPPERS[wrapper](make()), loss="mse")
    if policy == "fp16":  # Keras wraps a plain optimizer itself
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    _check_pruning_zeroes_slots(model, per_variable)


# Any Keras optimizer (a recipe can name one by its config): decoupled weight
# decay, sign updates, AMSGrad's maxima and an EMA of the weights.
OTHERS = {
    "adamw": (lambda: keras.optimizers.AdamW(0.01, weight_decay=0.1), 2),
    "lion": (lambda: keras.optimizers.Lion(0.001), 1),
    "adam_amsgrad_ema": (lambda: keras.optimizers.Adam(0.01, amsgrad=True, use_ema=True),
                         4),  # momentums, velocities, maxima, averages
}


@pytest.mark.parametrize("name", list(OTHERS))
def test_set_masks_zeroes_the_slots_of_other_keras_optimizers(name):
    make, per_variable = OTHERS[name]
    model = _model()
    model.compile(optimizer=make(), loss="mse")
    _check_pruning_zeroes_slots(model, per_variable)


def _check_pruning_zeroes_slots(model, per_variable):
    x, y = _data(0)
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, shuffle=False)
    assert int(model.optimizer.iterations) == 3
    _check_slots_found(model, per_variable)
    entries = pruning.masked_kernels(model)
    slots = {key: slot_variables(model.optimizer, kernel.raw, model.variables)
             for key, (_, kernel) in entries.items()}
    for key, found in slots.items():
        for slot in found:
            assert (_np(slot) != 0).all(), (key, slot.path)  # nonzero everywhere
    before = {id(v): _np(v).copy() for opt in optimizers(model.optimizer)
              for v in opt.variables}
    raw_before = _raw(model)

    rng = np.random.default_rng(1)
    masks = {key: (rng.random(m.shape) < 0.5).astype("float32")
             for key, m in kl.get_masks(model).items()}
    kl.set_masks(model, masks)

    changed = set()
    for key, found in slots.items():
        for slot in found:
            value, old = _np(slot), before[id(slot)]
            assert (value[masks[key] == 0] == 0).all(), (key, slot.path)
            np.testing.assert_array_equal(value[masks[key] == 1], old[masks[key] == 1])
            changed.add(id(slot))
    for opt in optimizers(model.optimizer):  # nothing else touched
        for v in opt.variables:
            if id(v) not in changed:
                np.testing.assert_array_equal(_np(v), before[id(v)], err_msg=v.path)
    for key, raw in _raw(model).items():
        assert (raw[masks[key] == 0] == 0).all(), key
        np.testing.assert_array_equal(raw[masks[key] == 1],
                                      raw_before[key][masks[key] == 1])

    # Training on (momentum, weight decay): pruned stored weights stay exactly 0.
    x, y = _data(2)
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, shuffle=False)
    for key, raw in _raw(model).items():
        assert raw.dtype == np.float32
        assert (raw[masks[key] == 0] == 0).all(), key
        assert (raw[masks[key] == 1] != raw_before[key][masks[key] == 1]).any(), key
        np.testing.assert_array_equal(kl.get_masks(model)[key], masks[key])


def test_slots_of_similarly_named_layers_are_told_apart():
    # "dense" and "dense_kernel": the slot "dense_kernel_bias_momentum" is
    # the bias's of layer dense_kernel, not a slot of dense/kernel.
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    x = kl.MaskedDense(4, name="dense")(inputs)
    outputs = kl.MaskedDense(4, name="dense_kernel")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), loss="mse")
    model.fit(np.ones((4, 4)), np.zeros((4, 4)), verbose=0)
    _check_slots_found(model, 1)
    for layer in model.layers[1:]:
        (slot,) = slot_variables(model.optimizer, layer.raw_kernel, model.variables)
        assert slot.name == layer.raw_kernel.path.replace("/", "_") + "_momentum"


def test_no_optimizer_or_unbuilt_optimizer_has_no_slots():
    model = _model()
    kernel = model.get_layer("dense").raw_kernel
    assert slot_variables(None, kernel, model.variables) == []
    model.compile(optimizer=kl.LossScaleOptimizer(kl.MomentumSGD(0.1)), loss="mse")
    assert slot_variables(model.optimizer, kernel, model.variables) == []
    kl.set_masks(model, {"dense": np.zeros(kernel.shape)})  # fine before building
    assert optimizers(model.optimizer)[1] is model.optimizer.inner_optimizer


def test_variables_sharing_a_path_get_their_slots_by_order():
    # Layers of one name in two sub-models make variables of one path, and
    # Keras builds the slots in the order of the variables.
    a, b = keras.layers.Dense(2, name="d"), keras.layers.Dense(2, name="d")
    a.build((None, 3)), b.build((None, 3))
    assert a.kernel.path == b.kernel.path
    optimizer = keras.optimizers.Adam(0.1)
    optimizer.build([a.kernel, b.kernel])
    both = [a.kernel, b.kernel]
    momentums = [v for v in optimizer.variables if v.name == "d_kernel_momentum"]
    velocities = [v for v in optimizer.variables if v.name == "d_kernel_velocity"]
    for i, kernel in enumerate(both):
        assert slot_variables(optimizer, kernel, both) == [momentums[i], velocities[i]]
    # Slots of only one of them: which is whose cannot be told.
    lone = keras.optimizers.SGD(0.1, momentum=0.9)
    lone.build([a.kernel])
    with pytest.raises(ValueError, match="2 model variables share the path 'd/kernel'"):
        slot_variables(lone, a.kernel, both)
