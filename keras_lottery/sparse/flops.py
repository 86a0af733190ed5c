"""FLOPs: the multiply-accumulates of a network's convolutions and dense layers.

The convention (Li et al. 2017's, whose ResNet-56 has 1.25e8 FLOPs): one
multiply-accumulate per kernel weight per position it is applied at, for one
example. A convolution's weight is applied at every output position (a
transposed one's at every input position), a dense layer's once (at every
position of an input with more axes). Only kept weights count: those a
masked kernel's mask keeps, every weight of a plain layer (it computes them
all, zeros included). Biases, batch norm, activations, pooling, additions
and `EinsumDense` layers are not counted. A thinned network (`thin`) costs
what its masked original's kept weights do when all the pruning is whole
filters with their readers' input channels.
"""

import collections
import math

import keras
import numpy as np

from keras_lottery.sparse.masking import MaskedKernelLayer
from keras_lottery.sparse.pruning import iter_layers

Flops = collections.namedtuple("Flops", ["kept", "total"])
Flops.__doc__ = """Multiply-accumulates for one example: of the kept weights
and of all weights (None where a shape is not known)."""

_COUNTED = tuple(getattr(keras.layers, name) for name in (
    "Conv1D", "Conv2D", "Conv3D", "DepthwiseConv1D", "DepthwiseConv2D",
    "SeparableConv1D", "SeparableConv2D", "Conv1DTranspose", "Conv2DTranspose",
    "Conv3DTranspose", "Dense"))
_TRANSPOSED = tuple(getattr(keras.layers, f"Conv{d}DTranspose") for d in (1, 2, 3))


def positions(layer):
    """Where each of `layer`'s kernel weights is applied, per example: its
    output's (a transposed convolution's input's) positions; None if a
    size is unknown or the layer was never called."""
    try:
        tensor = layer.input if isinstance(layer, _TRANSPOSED) else layer.output
    except (AttributeError, ValueError):
        return None
    sizes = tuple(tensor.shape)[1:-1]
    return None if None in sizes else math.prod(sizes)


def kernel_flops(layer, kept_weights, weights):
    """`Flops` of `kept_weights` out of `weights` of one of `layer`'s kernels."""
    where = positions(layer)
    if where is None:
        return Flops(None, None)
    return Flops(int(kept_weights) * where, int(weights) * where)


def layer_flops(layer):
    """`Flops` of a convolution or dense layer (masked or plain)."""
    if isinstance(layer, MaskedKernelLayer):
        parts = [kernel_flops(layer, np.count_nonzero(keras.ops.convert_to_numpy(k.mask)),
                              math.prod(k.mask.shape)) for k in layer.masked_kernels()]
    else:
        kernels = [getattr(layer, name) for name in ("kernel", "depthwise_kernel",
                                                      "pointwise_kernel")
                   if getattr(layer, name, None) is not None]
        parts = [kernel_flops(layer, math.prod(k.shape), math.prod(k.shape))
                 for k in kernels]
    return _sum(parts)


def model_flops(model):
    """`Flops` of every convolution and dense layer of `model`, nested
    models included."""
    return _sum([layer_flops(layer) for layer in iter_layers(model)
                 if isinstance(layer, _COUNTED)])


def _sum(parts):
    if any(p.kept is None for p in parts):
        return Flops(None, None)
    return Flops(sum(p.kept for p in parts), sum(p.total for p in parts))
