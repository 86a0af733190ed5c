"""A batch-norm layer that uses TensorFlow's fused kernel (a proposed patch).

Keras 3's `BatchNormalization` computes moments and normalizes with separate
ops (`tf.nn.moments`, `tf.nn.batch_normalization`) on every backend; tf_keras
(Keras 2) used the fused `FusedBatchNormV3` kernel on 4-D inputs, which is
much faster on CPU. This subclass takes the fused kernel where it applies
(TensorFlow backend, 4-D channels-last input, no mask, no renorm, not
synchronized) and otherwise falls back to Keras's code. Variables, config and
checkpoints are Keras's own. The results match Keras's to float32 rounding:
epsilon is passed unchanged (the raw op, unlike `tf.nn.fused_batch_norm`, does
not raise it to 1.001e-5), and the kernel's Bessel-corrected batch variance
is scaled back to Keras's biased one before the moving-average update.

throughput.py's `masked_fusedbn` configuration swaps it (or, once the library
has adopted it, `keras_lottery.layers.FusedBatchNormalization`) into the
masked ResNet to measure the gain, and `masked_kerasbn` swaps Keras's own
layer back in; `python benchmarks/fused_bn.py` checks that it computes what
Keras's layer computes.
"""

import keras


class FusedBatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` using TF's fused kernel when it can."""

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
            # The kernel returns the unbiased variance; Keras keeps the
            # biased one in its moving average.
            n = tf.cast(tf.reduce_prod(tf.shape(x)[:3]), "float32")
            variance = variance * (n - 1.0) / tf.maximum(n, 1.0)
            momentum = self.momentum
            self.moving_mean.assign(
                self.moving_mean * momentum + mean * (1.0 - momentum)
            )
            self.moving_variance.assign(
                self.moving_variance * momentum + variance * (1.0 - momentum)
            )
        else:
            y, _, _, _, _, _ = tf.raw_ops.FusedBatchNormV3(
                x=x, scale=gamma, offset=beta,
                mean=tf.cast(self.moving_mean, "float32"),
                variance=tf.cast(self.moving_variance, "float32"),
                epsilon=self.epsilon, data_format="NHWC", is_training=False,
            )
        return tf.cast(y, self.compute_dtype)


def library_class():
    """keras_lottery's own fused layer where the library has adopted this
    patch, else the one above."""
    try:
        from keras_lottery.layers import FusedBatchNormalization as adopted
    except ImportError:
        return FusedBatchNormalization
    return adopted


def uses_fused_batch_norm(model):
    return any(
        isinstance(layer, keras.layers.BatchNormalization)
        and type(layer) is not keras.layers.BatchNormalization
        for layer in _layers(model)
    )


def with_fused_batch_norm(model):
    """A copy of a Functional/Sequential model whose plain
    BatchNormalization layers are fused ones, weights copied."""
    fused = library_class()
    return _swap_batch_norm(
        model, lambda layer: type(layer) is keras.layers.BatchNormalization,
        fused)


def with_keras_batch_norm(model):
    """A copy whose batch-norm layers are all Keras's own (unfused)."""
    return _swap_batch_norm(
        model,
        lambda layer: isinstance(layer, keras.layers.BatchNormalization)
        and type(layer) is not keras.layers.BatchNormalization,
        keras.layers.BatchNormalization)


def _swap_batch_norm(model, select, cls):
    def clone(layer):
        target = cls if select(layer) else type(layer)
        return target.from_config(layer.get_config())

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy


def _layers(model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from _layers(layer)


def _self_check():
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(2.0, 3.0, (16, 8, 8, 5)).astype("float32")
    ref = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5)
    fused = FusedBatchNormalization.from_config(ref.get_config())
    ref.build(x.shape)
    fused.build(x.shape)
    for layer in (ref, fused):
        layer.gamma.assign(rng.normal(1, 0.1, 5).astype("float32"))
    fused.set_weights(ref.get_weights())
    assert fused._fusable(x, None)
    worst = 0.0
    for training in (True, True, False):
        a = keras.ops.convert_to_numpy(ref(x, training=training))
        b = keras.ops.convert_to_numpy(fused(x, training=training))
        worst = max(worst, float(np.abs(a - b).max()))
    stats = max(
        float(np.abs(keras.ops.convert_to_numpy(u) - keras.ops.convert_to_numpy(v)).max())
        for u, v in zip(ref.weights, fused.weights)
    )
    import tensorflow as tf

    w = tf.constant(rng.normal(size=x.shape).astype("float32"))
    grads = []
    for layer in (ref, fused):
        xt = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            loss = tf.reduce_sum(layer(xt, training=True) * w)
        grads.append(tape.gradient(loss, [xt, layer.gamma, layer.beta]))
    grad = max(float(np.abs(a - b).max()) for a, b in zip(*grads))
    print(f"max |output difference| {worst:.2e}, max |variable difference| "
          f"{stats:.2e}, max |gradient difference| {grad:.2e}")
    assert worst < 1e-4 and stats < 1e-5 and grad < 1e-3


if __name__ == "__main__":
    _self_check()
