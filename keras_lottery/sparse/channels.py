"""Channel groups: the layers that read a layer's output channels.

A filter of a convolution (a unit of a dense layer) makes one channel of its
output. Channel-wise layers (batch norm, activations, padding, pooling,
dropout) keep channel c as channel c; the kernel layers that take the channel
next end its way: a convolution reads it as one input channel, a dense layer
after a `Flatten` as the rows of that channel's positions. A filter's group
(as Torch-Pruning's dependency graph has it) is its output slice, its
channel in the layers on the way (the batch-norm channel) and every reader's
input slice: removing one without the others changes what the network
computes, or leaves work that computes nothing.

A residual `Add`, a `Concatenate`, the model's output or any layer that mixes
channels on the way makes the group reach further than its readers: it is
*open*, and its channels cannot be removed one by one (Li et al. 2017 prune
only the first convolution of a residual block for that reason).

The graph is read through Keras's public API: each operation's `input` and
`output` tensors (those of its first call). A layer called more than once in
the model (a shared layer) is refused.
"""

import collections
import math

import keras
import numpy as np

from keras_lottery.errors import LotteryError
from keras_lottery.sparse.layers import MASKED_TWINS
from keras_lottery.sparse.layers import FusedBatchNormalization

Reader = collections.namedtuple("Reader", ["layer", "rows"])
Reader.__doc__ = """A kernel layer that reads a group's channels.

Attributes:
    layer: the convolution or dense layer.
    rows: int array (channels, k): `rows[c]` are the positions along the
        reader's input axis (its kernel's axis -2) that hold channel c.
"""

Group = collections.namedtuple("Group", ["layer", "readers", "path", "blocker"])
Group.__doc__ = """The layers a layer's output channels go through.

Attributes:
    layer: the layer whose output channels these are.
    readers: the `Reader`s that take them next (empty when open).
    path: the channel-wise layers on the way, in the order met.
    blocker: None for a closed group; for an open one, what it reaches
        (e.g. "'conv_3_add' (Add)" or "the model's output").
"""

_KERNEL_CLASSES = ("Conv1D", "Conv2D", "Conv3D", "Dense")
# Kernel layers whose kernel's axis -2 is the input channel and axis -1 the
# output one (plain and masked): they make channels and read them.
KERNEL_LAYERS = tuple(getattr(keras.layers, n) for n in _KERNEL_CLASSES) + tuple(
    MASKED_TWINS[getattr(keras.layers, n)] for n in _KERNEL_CLASSES)
CONVOLUTIONS = tuple(c for c in KERNEL_LAYERS if not issubclass(c, keras.layers.Dense))
# Layers that keep channel c as channel c (exact types: a subclass may not).
_CHANNEL_WISE = (FusedBatchNormalization,) + tuple(
    getattr(keras.layers, name) for name in (
        "BatchNormalization", "Activation", "ReLU", "LeakyReLU", "ELU",
        "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
        "GaussianDropout", "GaussianNoise", "AlphaDropout", "Identity",
        "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D",
        "Cropping1D", "Cropping2D", "Cropping3D",
        "MaxPooling1D", "MaxPooling2D", "MaxPooling3D",
        "AveragePooling1D", "AveragePooling2D", "AveragePooling3D",
        "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D",
        "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D",
    ) if hasattr(keras.layers, name))
# Activations that mix the channels of a position.
_MIXING = ("softmax", "log_softmax")


def is_kernel_layer(op):
    """Whether `op` makes and reads channels (a Conv1D/2D/3D with one group
    or a Dense layer, plain or masked, channels last)."""
    return (type(op) in KERNEL_LAYERS and _channels_last(op)
            and getattr(op, "groups", 1) == 1)


def passes_channels(op):
    """Whether `op` keeps channel c as channel c (a `Flatten` does not)."""
    if type(op) not in _CHANNEL_WISE or not _channels_last(op):
        return False
    if isinstance(op, keras.layers.BatchNormalization):
        return op.axis in (-1, len(op.input.shape) - 1)
    if isinstance(op, keras.layers.Activation):
        return keras.activations.serialize(op.activation) not in _MIXING
    return True


def flattens(op):
    """Whether `op` is a channels-last `Flatten` of a fully known shape."""
    return (type(op) is keras.layers.Flatten and _channels_last(op)
            and None not in tuple(op.input.shape)[1:])


def flat_rows(rows, shape):
    """`rows` (channels, k) of the last axis of `shape` after flattening it:
    channel c's entries at every position."""
    positions, last = math.prod(shape[1:-1]), shape[-1]
    offsets = last * np.arange(positions)
    return (rows[:, :, None] + offsets[None, None, :]).reshape(len(rows), -1)


def _channels_last(op):
    return getattr(op, "data_format", "channels_last") in (None, "channels_last")


def flat(structure):
    """The tensors of an operation's `input` or `output`, as a list."""
    return list(keras.tree.flatten(structure))


class Graph:
    """The operations of a Functional or Sequential model, in the order the
    model runs them, and which operations read each tensor.

    Args:
        model: a built Functional or Sequential model.
        what: the function asking, for messages ("prune_filters()").

    Raises:
        LotteryError: a subclassed model, or a layer called more than once.
    """

    def __init__(self, model, what):
        if type(model).__name__ not in ("Functional", "Sequential") or not model.built:
            raise LotteryError(
                f"{what} reads the layers' graph of a built Functional or "
                f"Sequential model, not a {type(model).__name__}",
                param="model", value=model.name)
        self.model = model
        found = getattr(model, "operations", None)  # Sequential has none
        self.operations = list(model.layers if found is None else found)
        self.producers = {}
        self.readers = collections.defaultdict(list)
        self.inputs = {id(t) for t in model.inputs}
        for op in self.operations:
            for tensor in flat(op.output):
                self.producers[id(tensor)] = op
        for op in self.operations:
            if isinstance(op, keras.layers.InputLayer):
                continue
            for tensor in flat(op.input):
                if id(tensor) not in self.producers and id(tensor) not in self.inputs:
                    raise LotteryError(
                        f"{what} needs every layer called once; {op.name!r} reads "
                        "the output of a layer's second call (a shared layer)",
                        param="model", value=model.name)
                self.readers[id(tensor)].append(op)
        self.outputs = {id(t) for t in model.outputs}

    def layer(self, name):
        """The operation named `name`, or None."""
        return next((op for op in self.operations if op.name == name), None)

    def group(self, layer):
        """The `Group` of `layer`'s output channels."""
        start = layer.output
        frontier = [(start, np.arange(start.shape[-1])[:, None])]
        readers, path = [], []
        while frontier:
            tensor, rows = frontier.pop(0)
            if id(tensor) in self.outputs:
                return Group(layer, (), tuple(path), "the model's output")
            for op in self.readers[id(tensor)]:
                if is_kernel_layer(op):
                    readers.append(Reader(op, rows))
                    continue
                if passes_channels(op):
                    frontier.append((op.output, rows))
                elif flattens(op):
                    frontier.append((op.output, flat_rows(rows, tuple(op.input.shape))))
                else:
                    return Group(layer, (), tuple(path),
                                 f"{op.name!r} ({type(op).__name__})")
                path.append(op)
        return Group(layer, tuple(readers), tuple(path), None)
