"""Layers held by other layers: converting them, and copying weights.

A layer of your own (keras-io's `TransformerBlock`) makes its sublayers in
its `__init__` (a `MultiHeadAttention`, a `Sequential` of `Dense` layers)
and keeps them as attributes; its config holds only its own arguments.
Rebuilt from that config it is unbuilt and so are they, so `convert_held`
can swap each for its masked twin before anything is built. A model
rebuilt from a config of masked layers (a run's model.json, a saved
`.keras` file) does the same inside `converting_held()`.

`copy_weights` copies a layer's weights into its converted copy, layer by
layer by position (the paths of `pruning.walk`), whatever the masks.
"""

import contextlib

import keras

from keras_lottery.sparse import pruning
from keras_lottery.sparse.masking import MaskedKernelLayer


def convert_held(holder, mapping):
    """Replaces each unbuilt layer that `holder` (unbuilt) holds, at any
    depth, whose type is a key of `mapping` by `mapping[type]` made from
    its config. Layers already built (a `Sequential` with an `Input`) stay.

    Held by an attribute, the new layer is assigned to it (Keras tracks it;
    the old, unbuilt one keeps no weight and is in no saved file); in a list
    or an unbuilt `Sequential`, it takes the old one's place.
    """
    if isinstance(holder, keras.Sequential) and not holder.built:
        _convert_sequential(holder, mapping)
        return
    if isinstance(holder, keras.Model):
        return  # a built model's layers are built, a subclassed one's are its own
    for attribute, value in pruning.holding_attributes(holder):
        if isinstance(value, keras.layers.Layer):
            new = _converted(value, mapping)
            if new is value:
                convert_held(value, mapping)
            else:
                setattr(holder, attribute, new)
        elif isinstance(value, list):
            for index, item in enumerate(list(value)):
                new = _converted(item, mapping)
                if new is not item:  # Keras's lists track pop and insert only
                    value.pop(index)
                    value.insert(index, new)
                elif isinstance(item, keras.layers.Layer):
                    convert_held(item, mapping)


def _converted(layer, mapping):
    target = mapping.get(type(layer))
    if target is None or not isinstance(layer, keras.layers.Layer) or layer.built:
        return layer
    return target.from_config(layer.get_config())


def _convert_sequential(model, mapping):
    layers = list(model.layers)
    new = [_converted(layer, mapping) for layer in layers]
    for layer, converted in zip(layers, new):
        if converted is layer:
            convert_held(layer, mapping)
    if any(a is not b for a, b in zip(layers, new)):
        for _ in layers:
            model.pop(rebuild=False)
        for layer in new:
            model.add(layer, rebuild=False)


@contextlib.contextmanager
def converting_held(mapping, custom_objects=None):
    """Within it, Keras deserializing a layer of a class of your own
    (registered with `keras.saving.register_keras_serializable`, or in
    `custom_objects`) converts the layers it holds (`convert_held`).

    Yields `custom_objects` with your classes so converting, to pass on.
    """
    registry = keras.saving.get_custom_objects()  # live: the global registry
    own = {name: cls for name, cls in registry.items() if _own_layer_class(cls)}
    registry.update({name: _converting(cls, mapping) for name, cls in own.items()})
    try:
        yield {name: _converting(value, mapping) if _own_layer_class(value) else value
               for name, value in (custom_objects or {}).items()}
    finally:
        registry.update(own)


def _own_layer_class(value):
    return (isinstance(value, type) and issubclass(value, keras.layers.Layer)
            and not issubclass(value, keras.Model)
            and value.__module__.split(".")[0] not in ("keras", "keras_lottery"))


def _converting(cls, mapping):
    """A subclass of `cls` whose `from_config` returns a `cls` whose held
    layers are converted."""

    def from_config(_, config):
        layer = cls.from_config(config)
        convert_held(layer, mapping)
        return layer

    return type(cls.__name__, (cls,), {"from_config": classmethod(from_config),
                                       "__module__": cls.__module__})


def copy_weights(old, new):
    """Copies the weights of `old` into `new`, a converted copy of it.

    Layers are paired by position; a masked kernel's mask goes with it
    where `new` masks that kernel too, and is folded into it (kernel ×
    mask) where `new` does not; a new mask stays all ones.

    Raises:
        RuntimeError: the two differ in more than their masks.
    """
    olds, news = _by_position(old), _by_position(new)
    if list(olds) != list(news):
        raise RuntimeError(
            f"Layer '{old.name}' and its converted copy hold different layers "
            f"({sorted(set(olds) ^ set(news))}); please report this model.")
    for path, layer in olds.items():
        _copy_own(layer, news[path])


def _by_position(layer):
    found = {(): layer}
    found.update({path: sub for path, _, sub in pruning.walk(layer, held=True)})
    return found


def _own_weights(layer):
    """The weights of `layer` that none of the layers it holds has, masks
    left out, and {id of a kernel: its mask}."""
    inside = {id(v) for _, _, child in pruning.children(layer) for v in child.weights}
    masks = {}
    if isinstance(layer, MaskedKernelLayer) and layer.built:
        masks = {id(kernel.raw): kernel.mask for kernel in layer.masked_kernels()}
    skipped = inside | {id(mask) for mask in masks.values()}
    return [v for v in layer.weights if id(v) not in skipped], masks


def _copy_own(old, new):
    sources, old_masks = _own_weights(old)
    targets, new_masks = _own_weights(new)
    # By shape: a weight made without a name gets a new one in the copy.
    if [tuple(v.shape) for v in sources] != [tuple(v.shape) for v in targets]:
        raise RuntimeError(
            f"Layer '{old.name}': weights {[v.name for v in sources]} do not match "
            f"its converted copy's {[v.name for v in targets]}; please report "
            "this model.")
    for source, target in zip(sources, targets):
        value = source.numpy()
        mask = old_masks.get(id(source))
        if mask is not None and id(target) in new_masks:
            new_masks[id(target)].assign(mask.numpy())
        elif mask is not None:
            value = value * mask.numpy()
        target.assign(value)
