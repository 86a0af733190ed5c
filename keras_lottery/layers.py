"""Masked `Conv2D` and `Dense` layers: the effective kernel is kernel × mask.

Each layer holds a non-trainable `mask` variable of the kernel's shape,
initialised to ones. The forward pass multiplies the kernel by the mask, so a
pruned entry has no effect on the output and receives no gradient from the
loss. `set_mask` also zeroes the stored kernel, so saved weights are sparse and
weight decay (which acts on the raw kernel) cannot move a pruned entry.

Keras >= 3.1 (`Dense`) and 3.3 (`Conv2D`) save only kernel and bias by
position; these layers override `save_own_variables` / `load_own_variables` so
the mask is saved and loaded with them.
"""

import keras
import numpy as np
from keras import ops

_PACKAGE = "keras_lottery"


class _MaskedKernelMixin:
    """The mask variable, its (de)serialization and `set_mask`."""

    def _check_supported(self, kwargs):
        for unsupported in ("lora_rank", "quantization_config"):
            if kwargs.get(unsupported):
                raise ValueError(
                    f"{type(self).__name__} does not support `{unsupported}`; "
                    "prune the plain layer or drop that argument."
                )

    def _build_mask(self):
        # float32 under mixed precision too: 0/1 are exact in any float type,
        # and the variable dtype keeps the mask out of bf16/fp16 rounding.
        self.mask = self.add_weight(
            name="mask",
            shape=tuple(self._kernel.shape),
            initializer="ones",
            trainable=False,
            dtype=self.variable_dtype,
        )

    def masked_kernel(self):
        """Returns kernel × mask, the kernel the forward pass uses."""
        dtype = self.compute_dtype
        return ops.multiply(
            ops.cast(self._kernel, dtype), ops.cast(self.mask, dtype)
        )

    def set_mask(self, mask):
        """Assigns a 0/1 mask and zeroes the stored kernel where it is 0.

        Args:
            mask: array of the kernel's shape holding only 0 and 1.
        """
        mask = np.asarray(mask)
        if tuple(mask.shape) != tuple(self._kernel.shape):
            raise ValueError(
                f"Mask for layer '{self.name}' has shape {mask.shape}, "
                f"expected the kernel's shape {tuple(self._kernel.shape)}."
            )
        if not np.isin(mask, (0, 1)).all():
            raise ValueError(
                f"Mask for layer '{self.name}' must hold only 0 and 1."
            )
        mask = mask.astype(self.mask.dtype)
        self.mask.assign(mask)
        kernel = keras.ops.convert_to_numpy(self._kernel)
        self._kernel.assign((kernel * mask).astype(kernel.dtype))

    def quantize(self, *args, **kwargs):
        raise NotImplementedError(
            f"{type(self).__name__} cannot be quantized; call "
            "keras_lottery.strip(model) first to get plain Keras layers."
        )

    # Keras's Dense/Conv save only [kernel, bias]; the generic Layer methods
    # save every variable in order (kernel, bias, mask), which is what we want.
    def save_own_variables(self, store):
        keras.layers.Layer.save_own_variables(self, store)

    def load_own_variables(self, store):
        keras.layers.Layer.load_own_variables(self, store)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class MaskedConv2D(_MaskedKernelMixin, keras.layers.Conv2D):
    """2D convolution whose kernel is multiplied by a fixed 0/1 mask.

    Takes exactly the arguments of `keras.layers.Conv2D` (except LoRA and
    quantization). After `build`, `layer.mask` is a non-trainable variable of
    the kernel's shape, initialised to ones.

    Example:

    >>> layer = MaskedConv2D(16, 3, padding="same", use_bias=False)
    >>> y = layer(np.zeros((1, 8, 8, 3), "float32"))
    >>> layer.set_mask(np.zeros(layer.kernel.shape))  # prunes every weight

    Args:
        filters: number of output channels.
        kernel_size: int or tuple of 2 ints.
        **kwargs: any other `keras.layers.Conv2D` argument.
    """

    def __init__(self, filters, kernel_size, **kwargs):
        self._check_supported(kwargs)
        super().__init__(filters, kernel_size, **kwargs)

    def build(self, input_shape):
        super().build(input_shape)
        self._build_mask()

    def call(self, inputs):
        outputs = self.convolution_op(inputs, self.masked_kernel())
        if self.use_bias:
            if self.data_format == "channels_last":
                bias_shape = (1,) * (self.rank + 1) + (self.filters,)
            else:
                bias_shape = (1, self.filters) + (1,) * self.rank
            outputs = ops.add(outputs, ops.reshape(self.bias, bias_shape))
        if self.activation is not None:
            return self.activation(outputs)
        return outputs


@keras.saving.register_keras_serializable(package=_PACKAGE)
class MaskedDense(_MaskedKernelMixin, keras.layers.Dense):
    """Densely-connected layer whose kernel is multiplied by a fixed 0/1 mask.

    Takes exactly the arguments of `keras.layers.Dense` (except LoRA and
    quantization). After `build`, `layer.mask` is a non-trainable variable of
    the kernel's shape, initialised to ones.

    Example:

    >>> layer = MaskedDense(10)
    >>> y = layer(np.ones((2, 4), "float32"))
    >>> layer.set_mask(np.eye(4, 10))  # keep 4 of the 40 weights

    Args:
        units: dimensionality of the output.
        **kwargs: any other `keras.layers.Dense` argument.
    """

    def __init__(self, units, **kwargs):
        self._check_supported(kwargs)
        super().__init__(units, **kwargs)

    def build(self, input_shape):
        super().build(input_shape)
        self._build_mask()

    def call(self, inputs, training=None):
        x = ops.matmul(inputs, self.masked_kernel())
        if self.bias is not None:
            x = ops.add(x, self.bias)
        if self.activation is not None:
            x = self.activation(x)
        return x


MASKED_LAYERS = (MaskedConv2D, MaskedDense)


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

    >>> x = keras_lottery.layers.FusedBatchNormalization(momentum=0.997)(x)
    """

    def _fusable(self, inputs, mask):
        return (
            keras.backend.backend() == "tensorflow"
            and mask is None
            and len(inputs.shape) == 4
            and self.axis in (-1, 3)
            and not self.renorm
            and not self.synchronized
            and self.scale
            and self.center
        )

    def call(self, inputs, training=None, mask=None):
        if not self._fusable(inputs, mask):
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
