"""Masked twins of every Keras layer whose kernel multiplies its input.

`MaskedConv1D`, `MaskedConv2D`, `MaskedConv3D`, their `...Transpose` twins,
`MaskedDepthwiseConv1D`, `MaskedDepthwiseConv2D`, `MaskedSeparableConv1D`,
`MaskedSeparableConv2D`, `MaskedEinsumDense` and `MaskedDense` take exactly
the arguments of the Keras layer they are named after (except LoRA and
quantization) and run its own `call`: its kernel attribute returns
`raw_kernel × mask` (see `keras_lottery.sparse.masking`). A pruned entry has no
effect on the output and gets no gradient from the loss; `set_mask` also
zeroes the stored kernel, so saved weights are sparse and weight decay
(which acts on the stored kernel) cannot move a pruned entry.

Separable convolutions mask both kernels: `depthwise_kernel` (stored as
`raw_depthwise_kernel`, mask `depthwise_mask`) and `pointwise_kernel`.

Checkpoints hold every variable in creation order: kernel(s), bias, mask(s),
the layout keras_lottery 0.1's `MaskedConv2D` / `MaskedDense` wrote.

`MaskedMultiHeadAttention` and `MaskedGroupQueryAttention` are Keras's
attention layers with masked projections (`MaskedEinsumDense`).
"""

import keras

from keras_lottery.sparse.masking import MaskedSeparableKernels
from keras_lottery.sparse.masking import MaskedSingleKernel
from keras_lottery.sparse.masking import Twin

_PACKAGE = "keras_lottery"
_register = keras.saving.register_keras_serializable(package=_PACKAGE)
_SINGLE_DOC = """{what} whose kernel is multiplied by a fixed 0/1 mask.

    Takes the arguments of `keras.layers.{base}` (except LoRA and
    quantization). After `build`, `layer.mask` is a non-trainable
    variable of the kernel's shape, initialised to ones, and `layer.kernel`
    is `layer.raw_kernel × layer.mask`.

    Example:

    >>> layer = {example}
    >>> y = layer(np.ones({shape}, "float32"))
    >>> layer.set_mask(np.zeros(layer.kernel.shape))  # prunes every weight
    """
_SEPARABLE_DOC = """{what} whose two kernels are masked.

    Takes the arguments of `keras.layers.{base}` (except LoRA and
    quantization). After `build`, `layer.depthwise_mask` and
    `layer.pointwise_mask` are non-trainable variables of the two kernels'
    shapes, initialised to ones; `set_mask(mask, kernel)` names the kernel.

    Example:

    >>> layer = {example}
    >>> y = layer(np.ones({shape}, "float32"))
    >>> pointwise = np.zeros(layer.pointwise_kernel.shape)
    >>> layer.set_mask(pointwise, "pointwise_kernel")  # prunes that kernel
    """
# Keras layer: (what it is, an example, the shape of an example input).
_TWINS = {
    "Conv1D": ("1D convolution", "MaskedConv1D(8, 3)", (2, 16, 4)),
    "Conv2D": ("2D convolution", 'MaskedConv2D(16, 3, padding="same")', (1, 8, 8, 3)),
    "Conv3D": ("3D convolution", "MaskedConv3D(4, 3)", (1, 6, 6, 6, 2)),
    "Conv1DTranspose": ("1D transposed convolution", "MaskedConv1DTranspose(8, 3)",
                        (2, 16, 4)),
    "Conv2DTranspose": ("2D transposed convolution",
                        "MaskedConv2DTranspose(8, 3, strides=2)", (1, 8, 8, 3)),
    "Conv3DTranspose": ("3D transposed convolution", "MaskedConv3DTranspose(4, 3)",
                        (1, 6, 6, 6, 2)),
    "DepthwiseConv1D": ("1D depthwise convolution",
                        "MaskedDepthwiseConv1D(3, depth_multiplier=2)", (2, 16, 4)),
    "DepthwiseConv2D": ("2D depthwise convolution", "MaskedDepthwiseConv2D(3)",
                        (1, 8, 8, 3)),
    "SeparableConv1D": ("1D separable convolution", "MaskedSeparableConv1D(8, 3)",
                        (2, 16, 4)),
    "SeparableConv2D": ("2D separable convolution", "MaskedSeparableConv2D(8, 3)",
                        (1, 8, 8, 3)),
    "EinsumDense": ("Einsum dense layer",
                    'MaskedEinsumDense("ab,bc->ac", 10, bias_axes="c")', (2, 4)),
    "Dense": ("Densely-connected layer", "MaskedDense(10)", (2, 4)),
}


def _twin(name):
    """The registered masked twin of `keras.layers.<name>`: the Keras class
    behind a mixin, so Keras's own `__init__`, `build` and `call` run."""
    what, example, shape = _TWINS[name]
    separable = name.startswith("Separable")
    mixin = MaskedSeparableKernels if separable else MaskedSingleKernel
    doc = (_SEPARABLE_DOC if separable else _SINGLE_DOC).format(
        what=what, base=name, example=example, shape=shape)
    cls = type(f"Masked{name}", (mixin, getattr(keras.layers, name)),
               {"__doc__": doc, "__module__": __name__})
    return _register(cls)


(MaskedConv1D, MaskedConv2D, MaskedConv3D, MaskedConv1DTranspose,
 MaskedConv2DTranspose, MaskedConv3DTranspose, MaskedDepthwiseConv1D,
 MaskedDepthwiseConv2D, MaskedSeparableConv1D, MaskedSeparableConv2D,
 MaskedEinsumDense, MaskedDense) = (_twin(name) for name in _TWINS)


# Each masked layer by the Keras class it is the twin of (exact types: a
# user's subclass of Dense is not converted, since its `call` may differ).
MASKED_TWINS = {getattr(keras.layers, name): globals()[f"Masked{name}"] for name in _TWINS}
MASKED_LAYERS = tuple(MASKED_TWINS.values())


class MaskedProjections(Twin):
    """An attention layer whose projections are masked.

    Keras's attention layers make their query, key, value and output
    projections (`EinsumDense` layers) in `build`, and assign each to
    themselves before building it; each is made a `MaskedEinsumDense` of
    the same config there, so the layer's own `build` and `call` run.
    """

    def __setattr__(self, name, value):
        if type(value) is keras.layers.EinsumDense and not value.built:
            value = MaskedEinsumDense.from_config(value.get_config())
        super().__setattr__(name, value)


_ATTENTION_DOC = """`keras.layers.{base}` whose projections are masked.

    Takes the arguments of `keras.layers.{base}`. After `build`, its query,
    key, value and output projections are `MaskedEinsumDense` layers, each
    with its mask (mask keys "<layer>/query_dense", "<layer>/key_dense",
    "<layer>/value_dense", "<layer>/output_dense"); `masked(model)` turns a
    model's `{base}` layers into this one.
    """


def _attention_twin(name):
    base = getattr(keras.layers, name)
    cls = type(f"Masked{name}", (MaskedProjections, base),
               {"__doc__": _ATTENTION_DOC.format(base=name), "__module__": __name__})
    return _register(cls)


MaskedMultiHeadAttention = _attention_twin("MultiHeadAttention")
MaskedGroupQueryAttention = _attention_twin("GroupQueryAttention")
# Each attention layer whose projections `masked()` masks, by Keras class.
ATTENTION_TWINS = {keras.layers.MultiHeadAttention: MaskedMultiHeadAttention,
                   keras.layers.GroupQueryAttention: MaskedGroupQueryAttention}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` on TensorFlow's fused kernel.

    Keras 3 normalizes with separate moment and normalization ops; the fused
    `FusedBatchNormV3` kernel (what tf_keras and the original TF1 code used)
    makes a CIFAR ResNet's training step markedly faster on CPU (see
    `benchmarks/RESULTS.md`). Same arguments, variables, config and
    checkpoints as Keras's layer, and the same results up to float32
    rounding. It falls back to Keras's own code wherever the kernel does not
    apply: other backends, non-4-D or channels-first inputs, masks, renorm,
    synchronized (multi-replica) statistics, or without scale/center.
    `strip()` turns it back into a plain `BatchNormalization`.

    Example:

    >>> x = keras_lottery.sparse.layers.FusedBatchNormalization(momentum=0.997)(x)
    """

    def fusable(self, inputs, mask=None):
        """Whether TensorFlow's fused kernel computes this call."""
        return (
            keras.backend.backend() == "tensorflow"
            and mask is None
            and len(inputs.shape) == 4
            and self.axis in (-1, 3)
            # Keras added `renorm` to BatchNormalization in 3.14.
            and not getattr(self, "renorm", False)
            and not self.synchronized
            and self.scale
            and self.center
        )

    def call(self, inputs, training=None, mask=None):
        if not self.fusable(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        x = tf.cast(inputs, "float32")
        gamma = tf.cast(self.gamma, "float32")
        beta = tf.cast(self.beta, "float32")
        if training and self.trainable:
            empty = tf.constant([], "float32")
            y, mean, variance, _, _, _ = tf.raw_ops.FusedBatchNormV3(
                x=x, scale=gamma, offset=beta, mean=empty, variance=empty,
                epsilon=self.epsilon, data_format="NHWC", is_training=True,
            )
            # The kernel reports the Bessel-corrected batch variance; Keras's
            # moving average (and so every checkpoint) uses the biased one.
            n = tf.cast(tf.reduce_prod(tf.shape(x)[:3]), "float32")
            variance = variance * (n - 1.0) / tf.maximum(n, 1.0)
            m = self.momentum
            self.moving_mean.assign(self.moving_mean * m + mean * (1.0 - m))
            self.moving_variance.assign(
                self.moving_variance * m + variance * (1.0 - m)
            )
        else:
            y, _, _, _, _, _ = tf.raw_ops.FusedBatchNormV3(
                x=x, scale=gamma, offset=beta,
                mean=tf.cast(self.moving_mean, "float32"),
                variance=tf.cast(self.moving_variance, "float32"),
                epsilon=self.epsilon, data_format="NHWC", is_training=False,
            )
        return tf.cast(y, self.compute_dtype)
