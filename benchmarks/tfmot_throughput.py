"""Training throughput of tfmot's prune_low_magnitude on the paper's ResNet.

Runs in its own venv (benchmarks/setup_tfmot_env.sh) with
TF_USE_LEGACY_KERAS=1: tensorflow-model-optimization needs tf_keras (Keras 2),
which keras_lottery's Keras 3 cannot share a process with. Normally started
by `benchmarks/throughput.py` (section "tfmot"), which alternates it with a
Keras 3 process and reports the ratio; it prints one `RESULT {json}` line.

The network is keras_lottery's ResNet (keras_lottery/models/resnet.py)
rewritten in tf_keras with the same layers, shapes, initializers, batch-norm
settings and L2 weight decay; the parameter count is reported so the driver
can check it matches. Compiled like `lottery train`: SGD with momentum 0.9
under the paper's piecewise-constant schedule (tf_keras's SGD folds the LR
into the velocity where MomentumSGD applies it after; the arithmetic per
step is the same), sparse cross-entropy from logits, top-1 and top-5
accuracy, batch 128, default jit_compile (off on CPU), on 8 fixed
pre-made batches.

Configurations (`--configs`, alternated in the order given):
- `tfmot`: prune_low_magnitude(ConstantSparsity(0.8, begin_step=0,
  frequency=100)) with the UpdatePruningStep callback. Its masks are
  recomputed at steps 0, 100, ...; the timed window (steps
  `--warmup`..`--warmup + --steps` of each process) holds no such step, so
  that occasional cost (1 step in 100) is not counted;
- `tfkeras`: the same network without pruning wrappers;
- `masked`, `plain`, `masked_fusedbn`, `masked_kerasbn`: keras_lottery's
  Keras 3 network, as
  throughput.py builds and compiles it, in this same process. TensorFlow's
  Keras 3 dependency is installed in this venv too (tf.keras is tf_keras, but
  `import keras` is Keras 3), so one process can alternate both Kerases step
  block by step block, which a shared, noisy machine disturbs least
  (throughput.py's section `tfmot1`).

Usage (in the tfmot venv):
    TF_USE_LEGACY_KERAS=1 /tmp/tfmot-venv/bin/python \
        benchmarks/tfmot_throughput.py --configs tfmot,tfkeras
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_model_optimization as tfmot  # noqa: E402
import tf_keras  # noqa: E402

import _timing  # noqa: E402

WEIGHT_DECAY = 2e-4
BN_MOMENTUM = 0.997
BN_EPSILON = 1e-5
LR_BOUNDARIES = [35546, 53125]
LR_VALUES = [0.1, 0.01, 0.001]
FIXED_BATCHES = 8


def resnet(depth, num_classes=10, input_shape=(32, 32, 3)):
    """keras_lottery's CIFAR ResNet v1 in tf_keras, layer for layer."""
    blocks = (depth - 2) // 6
    layers = tf_keras.layers
    l2 = tf_keras.regularizers.L2(WEIGHT_DECAY / 2)

    def conv(x, filters, size, stride):
        if stride > 1:
            pad = (size - 1) // 2
            if pad:
                x = layers.ZeroPadding2D(pad)(x)
        return layers.Conv2D(
            filters, size, strides=stride,
            padding="same" if stride == 1 else "valid", use_bias=False,
            kernel_initializer=tf_keras.initializers.LecunNormal(),
            kernel_regularizer=l2,
        )(x)

    def bn(x):
        return layers.BatchNormalization(
            momentum=BN_MOMENTUM, epsilon=BN_EPSILON,
            beta_regularizer=l2, gamma_regularizer=l2,
        )(x)

    inputs = tf_keras.Input(shape=input_shape)
    x = layers.ReLU()(bn(conv(inputs, 16, 3, 1)))
    for stage, filters in enumerate((16, 32, 64)):
        for block in range(blocks):
            stride = 2 if stage > 0 and block == 0 else 1
            shortcut = bn(conv(x, filters, 1, stride)) if block == 0 else x
            y = layers.ReLU()(bn(conv(x, filters, 3, stride)))
            y = bn(conv(y, filters, 3, 1))
            x = layers.ReLU()(layers.Add()([y, shortcut]))
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(
        num_classes,
        kernel_initializer=tf_keras.initializers.RandomNormal(0.0, 0.01),
        kernel_regularizer=l2, bias_regularizer=l2,
    )(x)
    return tf_keras.Model(inputs, outputs, name=f"resnet{depth}")


def compile_model(model):
    schedule = tf_keras.optimizers.schedules.PiecewiseConstantDecay(
        LR_BOUNDARIES, LR_VALUES
    )
    model.compile(
        optimizer=tf_keras.optimizers.SGD(schedule, momentum=0.9),
        loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[
            tf_keras.metrics.SparseCategoricalAccuracy(name="top1"),
            tf_keras.metrics.SparseTopKCategoricalAccuracy(k=5, name="top5"),
        ],
    )


def fixed_dataset(batch_size, seed=0):
    """8 batches of standardized random images, repeated (as throughput.py)."""
    rng = np.random.default_rng(seed)
    n = FIXED_BATCHES * batch_size
    x = rng.integers(0, 256, (n, 32, 32, 3), np.uint8).astype(np.float32)
    flat = x.reshape(n, -1)
    flat -= flat.mean(axis=1, keepdims=True)
    std = np.sqrt((flat * flat).mean(axis=1, keepdims=True))
    flat /= np.maximum(std, 1.0 / np.sqrt(flat.shape[1]))
    y = rng.integers(0, 10, n).astype(np.int32)
    return (
        tf.data.Dataset.from_tensor_slices((x, y))
        .batch(batch_size, drop_remainder=True)
        .cache()
        .repeat()
        .prefetch(2)
    )


KERAS3_CONFIGS = ("masked", "plain", "masked_fusedbn", "masked_kerasbn")


class Bench:
    def __init__(self, name, args, dataset):
        self.name = name
        self.args = args
        self.dataset = dataset
        self.rates = []
        self.window_rates = []
        self.keras3 = name in KERAS3_CONFIGS
        if self.keras3:
            import throughput  # Keras 3 + keras_lottery from the checkout

            self.model = throughput.build_model(args.arch, throughput.SPECS[name])
            throughput.compile_like_lottery(self.model, throughput.SPECS[name])
            self.params = throughput.build_model(
                args.arch, throughput.SPECS["plain"]).count_params()
            self.run_once(trace=True)
            return
        tf_keras.utils.set_random_seed(0)
        base = resnet(int(args.arch.removeprefix("resnet")))
        self.params = base.count_params()
        if name == "tfmot":
            schedule = tfmot.sparsity.keras.ConstantSparsity(
                0.8, begin_step=0, frequency=100
            )
            self.model = tfmot.sparsity.keras.prune_low_magnitude(
                base, pruning_schedule=schedule
            )
        elif name == "tfkeras":
            self.model = base
        else:
            raise SystemExit(f"unknown config {name!r}; use tfmot, tfkeras, "
                             + ", ".join(KERAS3_CONFIGS))
        compile_model(self.model)
        self.run_once(trace=True)

    def run_once(self, trace=False):
        warmup = self.args.warmup
        steps = warmup + (0 if trace else self.args.steps)
        if self.keras3:
            import keras

            base = keras.callbacks.Callback
        else:
            base = tf_keras.callbacks.Callback
        timer = _timing.timer_callback(base)()
        callbacks = [timer]
        if self.name == "tfmot":
            callbacks.insert(0, tfmot.sparsity.keras.UpdatePruningStep())
        self.model.fit(
            self.dataset, steps_per_epoch=steps, callbacks=callbacks,
            shuffle=False, verbose=0,
        )
        if not trace:
            rate, window = timer.steady_rate(warmup, self.args.batch_size)
            self.rates.append(rate)
            self.window_rates.append(window)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", default="resnet20")
    p.add_argument("--configs", default="tfmot,tfkeras")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--reps", type=int, default=1)
    args = p.parse_args(argv)
    if not tf.keras.__name__.startswith("tf_keras"):
        raise SystemExit("set TF_USE_LEGACY_KERAS=1 (tfmot needs tf_keras)")
    dataset = fixed_dataset(args.batch_size)
    benches = [Bench(name, args, dataset) for name in args.configs.split(",")]
    for rep in range(args.reps):
        shift = rep % len(benches)
        for bench in benches[shift:] + benches[:shift]:
            bench.run_once()
            print(f"rep {rep + 1} {bench.name}: {bench.rates[-1]:,.0f} img/s",
                  file=sys.stderr, flush=True)
    params = {b.params for b in benches}
    _timing.print_result({
        "rates": {b.name: _timing.median(b.rates) for b in benches},
        "all_rates": {b.name: b.rates for b in benches},
        "window_rates": {b.name: b.window_rates for b in benches},
        "params": params.pop() if len(params) == 1 else -1,
        "params_all": {b.name: b.params for b in benches},
        "versions": {"tensorflow": tf.__version__,
                     "tf_keras": tf_keras.__version__,
                     "tfmot": getattr(tfmot, "__version__", "?")},
        "time": time.time(),
    })


if __name__ == "__main__":
    main()
