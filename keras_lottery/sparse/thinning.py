"""Thinning: a pruned network with its removed filters physically gone.

`thin(model)` rebuilds a masked (or plain) Functional or Sequential model as
a plain Keras model in which every output channel that no layer reads any
more is removed, with its filter, its batch-norm channel and the readers'
input slices (the channel groups of `keras_lottery.sparse.channels`): after
`prune_filters`, the thinned network computes what the masked one does with
fewer parameters and multiply-accumulates. Zeros inside the kept kernels
(unstructured pruning) stay zeros; a group that reaches a residual `Add` or
a `Concatenate` keeps all its channels.

A layer left with no filter at all is dropped, and what it fed becomes a
per-channel constant: the next layer's bias, through the channel-wise layers
after it. In a residual block whose first convolution lost every filter the
branch is the second batch norm's shift, which the thinned network keeps
exactly, as a per-channel offset (`keras.layers.Rescaling`) added to the
shortcut where the `Add` was.

The thinned model is for **inference**: batch norm with its moving
statistics, as the constants above are computed. Trained, its batch norms
would use batch statistics (where a constant branch gives its shift β) and
the offsets would not learn; fine-tune the masked model, then thin it.
"""

import collections

import keras
import numpy as np

from keras_lottery import checks
from keras_lottery.errors import LotteryError
from keras_lottery.sparse import channels
from keras_lottery.sparse import conversion
from keras_lottery.sparse import held

_WHAT = "thin()"
Live = collections.namedtuple("Live", ["tensor", "kept"])
Const = collections.namedtuple("Const", ["values", "kept"])
# A tensor of the original model, rebuilt: `Live` is a tensor of the thinned
# model holding the original's last-axis entries `kept`; `Const` is a value
# per last-axis entry, the same at every position (`values` over the
# original's last axis; only `kept` matter).

_SAME_VALUES = tuple(getattr(keras.layers, f"{kind}{d}D")
                     for kind in ("MaxPooling", "AveragePooling", "GlobalMaxPooling",
                                  "GlobalAveragePooling", "Cropping") for d in (1, 2, 3))
_PADDING = tuple(getattr(keras.layers, f"ZeroPadding{d}D") for d in (1, 2, 3))


def thin(model, *, multiple=1):
    """A plain Keras model without the pruned filters and units.

    Example:

    >>> model = keras_lottery.models.build("resnet56")
    >>> keras_lottery.prune_filters(model, "resnet56-B", level=3)
    >>> small = keras_lottery.thin(model)  # same outputs, fewer FLOPs
    >>> small.save("resnet56-B3.keras")     # loads without keras_lottery

    Output channels (convolution filters, dense units) that no reader uses
    any more (their input slice is zero in every reader) go, with their
    batch-norm channels and the readers' input slices; see the module
    docstring for layers left with no filter. Masked layers become Keras's
    own with kernel × mask folded in, as `strip` makes them.

    Args:
        model: a built Functional or Sequential model (masked or not) whose
            layers are each called once and are not nested models.
        multiple: keep a multiple of this many channels in each thinned
            layer (with removed channels whose readers' slices are zero:
            the outputs do not change), as Torch-Pruning's `round_to`: CPU
            and GPU convolution kernels are blocked by 8 or 16 channels and
            can be slower on other counts. A layer left with none keeps none.

    Returns:
        A Functional `keras.Model` with the same name, inputs and outputs,
        equal to `model` in inference mode up to float rounding.

    Raises:
        LotteryError: something it cannot rebuild, named in one line (a
            nested model, a `keras.ops` call, a shared layer, or a constant
            it cannot carry through a layer).
    """
    multiple = checks.count(multiple, "multiple", minimum=1)
    graph = channels.Graph(model, _WHAT)
    for op in graph.operations:
        if isinstance(op, keras.Model) or not isinstance(op, keras.layers.Layer):
            kind = "a nested model" if isinstance(op, keras.Model) else "not a layer"
            raise LotteryError(f"thin() rebuilds layers one by one; {op.name!r} is "
                               f"{kind}: flatten the model into plain layers first",
                               param="model", value=model.name)
    return _Rebuild(graph, kept_channels(graph, multiple)).model()


def kept_channels(graph, multiple=1):
    """{layer name: the output channels some reader still uses, and unused
    ones up to a multiple of `multiple`} for every kernel layer with a
    closed group; the others keep all theirs."""
    kept = {}
    for op in graph.operations:
        if not channels.is_kernel_layer(op):
            continue
        group = graph.group(op)
        if group.blocker is not None or not group.readers:
            continue
        used = np.zeros(len(group.readers[0].rows), bool)
        for reader in group.readers:
            kernel = _kernel(reader.layer)
            rows = np.moveaxis(kernel, -2, 0).reshape(kernel.shape[-2], -1).any(axis=1)
            used |= rows[reader.rows].any(axis=1)
        short = min(len(used), -(-used.sum() // multiple) * multiple) - used.sum()
        used[np.flatnonzero(~used)[:short]] = True
        kept[op.name] = np.flatnonzero(used)
    return kept


def _kernel(layer):
    return _values(conversion.values_by_name(layer)["kernel"]) != 0


class _Rebuild:
    """The thinned model, built layer by layer in the original's order."""

    def __init__(self, graph, kept):
        self.graph, self.kept = graph, kept
        self.state = {}
        for tensor in graph.model.inputs:  # a Sequential's has no InputLayer
            if id(tensor) not in graph.producers:
                self.state[id(tensor)] = self._input(tensor, None)

    def model(self):
        for op in self.graph.operations:
            if isinstance(op, keras.layers.InputLayer):
                self.state[id(op.output)] = self._input(op.output, op.name)
                continue
            sources = [self.state[id(t)] for t in channels.flat(op.input)]
            for tensor, result in zip(channels.flat(op.output), self._step(op, sources)):
                self.state[id(tensor)] = result
        original = self.graph.model
        inputs = [self.state[id(t)].tensor for t in original.inputs]
        outputs = [self._output(t) for t in original.outputs]
        return keras.Model(inputs if len(inputs) > 1 else inputs[0],
                           outputs if len(outputs) > 1 else outputs[0], name=original.name)

    def _input(self, tensor, name):
        new = keras.Input(batch_shape=tuple(tensor.shape), dtype=tensor.dtype, name=name)
        return Live(new, np.arange(tensor.shape[-1]))

    def _output(self, tensor):
        found = self.state[id(tensor)]
        if isinstance(found, Const):
            raise self._refusal(f"the output {tensor.name!r} no longer depends on the "
                                "input (everything that feeds it is pruned)")
        return found.tensor

    def _refusal(self, message):
        return LotteryError(f"thin() cannot rebuild it: {message}", param="model",
                            value=self.graph.model.name)

    def _step(self, op, sources):
        if channels.is_kernel_layer(op):
            return [self._kernel_layer(op, sources[0])]
        if channels.passes_channels(op) or channels.flattens(op):
            return [self._channel_wise(op, sources[0])]
        if type(op) is keras.layers.Add:
            return [self._add(op, sources)]
        return self._other(op, sources)

    def _kernel_layer(self, op, source):
        values = {name: _values(v) for name, v in conversion.values_by_name(op).items()}
        kernel, bias = values["kernel"], values.get("bias")
        out = self.kept.get(op.name, np.arange(kernel.shape[-1]))
        if isinstance(source, Const):
            return Const(self._constant_through(op, source, kernel, bias), out)
        if not len(out):  # no filter left: nothing reads this output
            return Const(np.zeros(kernel.shape[-1], "float32"), out)
        values["kernel"] = np.take(np.take(kernel, source.kept, axis=-2), out, axis=-1)
        if bias is not None:
            values["bias"] = bias[out]
        config = op.get_config()
        config["units" if "units" in config else "filters"] = len(out)
        return Live(self._call(op, config, source.tensor, values), out)

    def _constant_through(self, op, source, kernel, bias):
        """A kernel layer's output for a constant input, or a refusal."""
        inputs = source.values[source.kept]
        y = np.zeros(kernel.shape[-1], "float32") if bias is None else bias.copy()
        if np.any(inputs != 0):
            if isinstance(op, channels.CONVOLUTIONS):  # padding would make edges differ
                raise self._refusal(
                    f"{op.name!r} reads a nonzero constant (a layer before it lost "
                    "every filter); prune its input convolution's reader instead")
            y = y + inputs @ np.take(kernel, source.kept, axis=0)
        return _values(op.activation(keras.ops.convert_to_tensor(y[None])))[0]

    def _channel_wise(self, op, source):
        if isinstance(source, Const):
            return self._constant_channel_wise(op, source)
        if channels.flattens(op):
            shape = tuple(op.input.shape)
            kept = channels.flat_rows(source.kept[:, None], shape).T.reshape(-1)
            return Live(self._call(op, op.get_config(), source.tensor, {}), kept)
        values = {name: _values(v)[..., source.kept]
                  for name, v in conversion.values_by_name(op).items()}
        return Live(self._call(op, op.get_config(), source.tensor, values), source.kept)

    def _constant_channel_wise(self, op, source):
        values = source.values
        if channels.flattens(op):
            positions = int(np.prod(tuple(op.input.shape)[1:-1]))
            kept = channels.flat_rows(source.kept[:, None], tuple(op.input.shape))
            return Const(np.tile(values, positions), np.sort(kept.reshape(-1)))
        if isinstance(op, _PADDING) and np.any(values[source.kept] != 0):
            raise self._refusal(f"{op.name!r} pads a nonzero constant (a layer before "
                                "it lost every filter)")
        if not isinstance(op, _SAME_VALUES + _PADDING):
            rank = len(op.input.shape)
            pixel = values.reshape((1,) * (rank - 1) + (-1,)).astype("float32")
            values = _values(op(pixel, training=False)).reshape(-1)
        return Const(values, source.kept)

    def _add(self, op, sources):
        """A sum with constants in it: the live terms added, then the
        constants' sum as a per-channel offset (named as the `Add` when it
        takes its place)."""
        live = [s.tensor for s in sources if isinstance(s, Live)]
        shift = sum(s.values for s in sources if isinstance(s, Const))
        kept = sources[0].kept
        if not live:
            return Const(shift, kept)
        total = live[0] if len(live) == 1 else keras.layers.Add(name=op.name)(live)
        if not np.any(shift):
            return Live(total, kept)
        name = op.name if len(live) == 1 else f"{op.name}_shift"
        offset = keras.layers.Rescaling(1.0, offset=np.asarray(shift, "float32"), name=name)
        return Live(offset(total), kept)

    def _other(self, op, sources):
        for source in sources:
            if isinstance(source, Const):
                raise self._refusal(f"{op.name!r} ({type(op).__name__}) reads a constant "
                                    "(a layer before it lost every filter)")
        tensors = [s.tensor for s in sources]
        new = conversion.plain_class(op).from_config(op.get_config())
        outputs = new(tensors if isinstance(op.input, (list, tuple)) else tensors[0])
        if type(new) is type(op):
            new.set_weights(op.get_weights())
        else:  # a masked layer of another kind, folded as strip() folds it
            held.copy_weights(op, new)
        return [Live(t, np.arange(t.shape[-1])) for t in channels.flat(outputs)]

    def _call(self, op, config, tensor, values):
        """`op`'s plain twin made from `config`, called on `tensor`, with
        `values` ({variable name: array}) for its weights."""
        new = conversion.plain_class(op).from_config(config)
        output = new(tensor)
        for variable in new.weights:
            variable.assign(values[variable.name])
        return output


def _values(tensor):
    return np.asarray(keras.ops.convert_to_numpy(tensor))
