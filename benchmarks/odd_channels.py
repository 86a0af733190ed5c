"""Why a thinned network's training step gains less than its FLOPs: one
residual stage whose blocks' first convolution has C filters, for C a
multiple of 8 and one less, with the library's fused batch norm and with
Keras's own, side by side in one process.

The network: 32×32×16 inputs, 4 residual blocks (conv 3×3 to C channels,
batch norm, ReLU, conv 3×3 back to 16, batch norm, add, ReLU), global
pooling, a dense layer; SGD with momentum, batch 128. This is the shape of a
ResNet-56 stage-1 block after configuration A removes a filter or two
(16 → 15 or 14). Each round times every network in turn: two
`train_on_batch` calls and one `predict_on_batch`; a figure is the median
over rounds.

    python benchmarks/odd_channels.py --channels 16,15,14,8 --reps 7
    python benchmarks/odd_channels.py --channels 16,15 --no-remapping
    python benchmarks/odd_channels.py --channels 16,15 --norms none,fused

`--norms none` leaves the batch norms out (the convolutions alone);
`--no-remapping` turns off Grappler's remapper (which fuses a convolution
with its batch norm), to see whether that fusion is what odd counts lose.
"""

import argparse
import os
import pathlib
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # the checkout

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_lottery.sparse.layers import FusedBatchNormalization  # noqa: E402

NORMS = {"fused": FusedBatchNormalization, "keras": keras.layers.BatchNormalization,
         "none": keras.layers.Identity}


def network(channels, norm):
    x = inputs = keras.Input((32, 32, 16))
    for _ in range(4):
        y = keras.layers.Conv2D(channels, 3, padding="same", use_bias=False)(x)
        y = keras.layers.ReLU()(norm()(y))
        y = norm()(keras.layers.Conv2D(16, 3, padding="same", use_bias=False)(y))
        x = keras.layers.ReLU()(keras.layers.Add()([x, y]))
    outputs = keras.layers.Dense(10)(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, outputs)
    model.compile(keras.optimizers.SGD(0.1, momentum=0.9),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--channels", default="16,15,14,8")
    p.add_argument("--reps", type=int, default=7)
    p.add_argument("--norms", default="fused,keras",
                   help="batch norms to compare: fused, keras, none (no batch norm)")
    p.add_argument("--no-remapping", action="store_true")
    args = p.parse_args()
    if args.no_remapping:
        import tensorflow as tf

        tf.config.optimizer.set_experimental_options({"remapping": False})
    rng = np.random.default_rng(0)
    x = rng.random((128, 32, 32, 16), dtype="float32")
    y = rng.integers(0, 10, 128)
    models = {(int(c), n): network(int(c), NORMS[n]) for c in args.channels.split(",")
              for n in args.norms.split(",")}
    for model in models.values():  # traced before timing
        model.train_on_batch(x, y)
        model.predict_on_batch(x)
    train = {k: [] for k in models}
    infer = {k: [] for k in models}
    for _ in range(args.reps):
        for key, model in models.items():
            start = time.perf_counter()
            model.train_on_batch(x, y)
            model.train_on_batch(x, y)
            train[key].append((time.perf_counter() - start) / 2)
            start = time.perf_counter()
            model.predict_on_batch(x)
            infer[key].append(time.perf_counter() - start)
    print("| C | batch norm | train step ms | inference ms |")
    print("|---:|---|---:|---:|")
    for key in models:
        print(f"| {key[0]} | {key[1]} | {1000 * statistics.median(train[key]):.1f} | "
              f"{1000 * statistics.median(infer[key]):.1f} |")


if __name__ == "__main__":
    main()
