"""Thinned against masked ResNet-56: inference and training-step times at
each level 1-5 of the structured configurations A and B, beside the FLOPs.

Each network is ResNet-56 pruned with `keras_lottery.prune_filters(model,
"resnet56-A" or "-B", level=i)` and thinned with `keras_lottery.thin`; the
masked network computes every weight whatever its masks, so one masked
ResNet-56 is the baseline of all ten. Each thinned network is measured
twice: with the channels as pruned ("A3") and kept in multiples of 8 ("A3/8",
`thin(model, multiple=8)`; CPU convolution kernels are blocked by 8 or 16
channels). All are compiled as `lottery train` compiles (`compile_model`,
the paper's recipe) and all use the library's fused batch norm (`thin`
returns Keras's own; benchmarks/fused_bn.py swaps it back, so only the
removed filters differ). Synthetic CIFAR-sized data: 32×32×3 images, batch
128, fixed.

One process; each round times every network in turn (the order rotates
from round to round, so a burst of load from another process spreads over
all of them): one untimed call, then `--steps` timed `predict_on_batch`
calls (inference) and as many `train_on_batch` calls (a training step). A
network's figure is the median over rounds of its median call time. The
target: a thinned network at least 0.8 × its FLOP reduction faster
(speed-up ≥ 0.8 × masked FLOPs / thinned FLOPs).

    python benchmarks/thinning.py --reps 5 --steps 3 \
        --json benchmarks/results/thinning-resnet56-cpu.json \
        --markdown benchmarks/results/thinning-resnet56-cpu.md
    python benchmarks/thinning.py --quick   # a smoke run: level 5 only, batch 4
"""

import argparse
import json
import os
import pathlib
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # benchmark the checkout

import fused_bn  # noqa: E402  (benchmarks/ is sys.path[0] for a script)
import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_lottery as kl  # noqa: E402
from keras_lottery.sparse import flops  # noqa: E402
from keras_lottery.spec import recipe  # noqa: E402
from keras_lottery.training.compile import compile_model  # noqa: E402

TARGET = 0.8


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def networks(args):
    """{name: (model, FLOPs per example, density)}: the masked baseline, then
    the thinned networks of each level and configuration, alternating A and
    B ("A3"; "A3/8" with its channels kept in multiples of 8). Each is
    checked against the masked network pruned the same way, on `x`."""
    keras.utils.set_random_seed(0)
    masked = kl.models.build(args.arch)
    found = {"masked": (masked, flops.model_flops(masked).total, 1.0)}
    weights = masked.get_weights()
    for level in args.levels:
        for config in args.configs:
            masked.set_weights(weights)  # every level from the unpruned network
            kl.prune_filters(masked, f"{args.arch}-{config}", level=level)
            want = keras.ops.convert_to_numpy(masked(args.x, training=False))
            for multiple in args.multiples:
                thinned = fused_bn.with_fused_batch_norm(kl.thin(masked, multiple=multiple))
                got = keras.ops.convert_to_numpy(thinned(args.x, training=False))
                np.testing.assert_allclose(got, want, rtol=1e-3,
                                           atol=1e-3 * np.abs(want).max())
                name = f"{config}{level}" + (f"/{multiple}" if multiple > 1 else "")
                found[name] = (thinned, flops.model_flops(thinned).kept, kl.density(masked))
    masked.set_weights(weights)
    return found


def time_calls(call, steps):
    """The median time of `steps` calls, after one untimed call."""
    call()
    times = []
    for _ in range(steps):
        began = time.perf_counter()
        call()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def measure(found, args, x, y):
    """{name: {"inference": [seconds per round], "train": [...]}}."""
    for model, _, _ in found.values():
        compile_model(model, recipe.make())
    times = {name: {"inference": [], "train": []} for name in found}
    names = list(found)
    for rep in range(args.reps):
        order = names[rep % len(names):] + names[:rep % len(names)]
        for name in order:
            model = found[name][0]
            times[name]["inference"].append(
                time_calls(lambda m=model: m.predict_on_batch(x), args.steps))
            times[name]["train"].append(
                time_calls(lambda m=model: m.train_on_batch(x, y), args.steps))
        log(f"round {rep + 1}/{args.reps} done")
    return times


def table(found, times, args):
    """The markdown table: per network, FLOPs and times against masked."""
    base = {kind: statistics.median(times["masked"][kind]) for kind in ("inference", "train")}
    base_flops = found["masked"][1]
    lines = [
        f"| network | density | MFLOPs | FLOP ratio | inference ms | speed-up "
        f"| train step ms | speed-up | ≥ {TARGET}× FLOP ratio (inf. / train) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|:---:|",
    ]
    verdicts = {multiple: [] for multiple in args.multiples}
    for name, (_, macs, density) in found.items():
        ratio = base_flops / macs
        inference = statistics.median(times[name]["inference"])
        train = statistics.median(times[name]["train"])
        up = (base["inference"] / inference, base["train"] / train)
        met = [u >= TARGET * ratio for u in up]
        if name != "masked":
            verdicts[int(name.partition("/")[2] or 1)].append(met)
        shown = "—" if name == "masked" else " / ".join("yes" if m else "no" for m in met)
        lines.append(
            f"| {'masked (any level)' if name == 'masked' else name} | {density:.4f} "
            f"| {macs / 1e6:.1f} | {ratio:.2f}× | {inference * 1e3:.0f} | {up[0]:.2f}× "
            f"| {train * 1e3:.0f} | {up[1]:.2f}× | {shown} |")
    lines.append("")
    for multiple, found_met in verdicts.items():
        met = [sum(v[i] for v in found_met) for i in (0, 1)]
        what = "channels as pruned" if multiple == 1 else f"channels in multiples of {multiple}"
        lines.append(f"Target met (speed-up ≥ {TARGET} × FLOP ratio), {what}: inference "
                     f"{met[0]}/{len(found_met)}, training step {met[1]}/{len(found_met)}.")
    return "\n".join(lines) + "\n"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", default="resnet56")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--reps", type=int, default=5, help="rounds (medians over them)")
    p.add_argument("--steps", type=int, default=3, help="timed calls per round and kind")
    p.add_argument("--levels", default="1,2,3,4,5")
    p.add_argument("--configs", default="A,B")
    p.add_argument("--multiples", default="1,8",
                   help="thin(multiple=...) values: 1 keeps the channels as pruned")
    p.add_argument("--quick", action="store_true",
                   help="a smoke run: level 5, batch 4, one round of one call")
    p.add_argument("--json", default=None, help="write the raw times here")
    p.add_argument("--markdown", default=None, help="write the table here")
    args = p.parse_args(argv)
    if args.quick:
        args.levels, args.batch_size, args.reps, args.steps = "5", 4, 1, 1
    args.levels = [int(level) for level in args.levels.split(",")]
    args.configs = args.configs.split(",")
    args.multiples = [int(m) for m in args.multiples.split(",")]
    return args


def main(argv=None):
    args = parse_args(argv)
    began = time.perf_counter()
    rng = np.random.default_rng(0)
    args.x = rng.normal(size=(args.batch_size, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, args.batch_size)
    found = networks(args)
    log(f"{len(found)} networks built, thinned and checked equal to the masked ones")
    times = measure(found, args, args.x, y)
    text = table(found, times, args)
    wall = time.perf_counter() - began
    text += (f"\n{os.cpu_count()} cores, TensorFlow backend, Keras {keras.__version__}; "
             f"batch {args.batch_size}, {args.reps} rounds × {args.steps} timed calls; "
             f"load average at end {os.getloadavg()[0]:.2f}; {wall / 60:.1f} min.\n")
    print(text)
    if args.markdown:
        pathlib.Path(args.markdown).write_text(text)
    if args.json:
        settings = {k: v for k, v in vars(args).items() if k != "x"}
        payload = {"command": " ".join(["python"] + sys.argv), "settings": settings,
                   "flops": {name: f[1] for name, f in found.items()},
                   "density": {name: f[2] for name, f in found.items()},
                   "seconds": times, "wall_seconds": wall}
        pathlib.Path(args.json).write_text(json.dumps(payload, indent=1) + "\n")


if __name__ == "__main__":
    main()
