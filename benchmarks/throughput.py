"""Training and evaluation throughput of keras_lottery's masked networks.

One command measures, in one process with the configurations alternated
round-robin (so machine noise hits all of them alike), the steady-state
images/s of:

- the masked network (density 1.0: the reference), pruned to density 0.2,
  and the same network with plain Keras Conv2D/Dense (`keras_lottery.strip`),
  all built and compiled as `lottery train` does (`keras_lottery.spec.execution.
  Execution` and `training.compile_model`: MomentumSGD, the paper's LR
  schedule, sparse cross-entropy, top-1/top-5 metrics, batch 128);
- variants of the masked network through the same execution settings as
  `lottery train --jit-compile on`, `--mixed-precision bf16`,
  `--steps-per-execution 8`, and fed by `keras_lottery.data.TrainBatches`
  exactly as `lottery train` feeds it;
- the masked network with a fused batch norm (benchmarks/fused_bn.py, a
  proposed library change);
- evaluation (`model.evaluate`), masked and plain;
- the input pipeline alone (`TrainBatches` batches, augmentation included);
- peak resident memory of a real `keras_lottery.train` run (a subprocess);
- tfmot's `prune_low_magnitude` in tf_keras (another venv, see
  setup_tfmot_env.sh): subprocesses of the two environments alternate, one
  per repetition, and the ratio of their medians is reported.

Model configurations train on 8 fixed, pre-made synthetic batches (tf.data on
TensorFlow, a numpy generator on other backends), so they time the model, not
the input pipeline. Each repetition runs `--warmup` untimed steps, then
`--steps` timed ones (both rounded up to a multiple of steps_per_execution);
a configuration's figure is the median over `--reps` repetitions.

Usage:
    python benchmarks/throughput.py                        # everything, ResNet-20
    python benchmarks/throughput.py --arch resnet56 --reps 3 --steps 8 \
        --sections train --configs masked,masked_d0.2,plain
    python benchmarks/throughput.py --json out.json        # also raw numbers
"""

import argparse
import contextlib
import dataclasses
import json
import math
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
# Benchmark the checkout, not whatever keras_lottery may be installed.
sys.path.insert(0, str(ROOT))

import _timing  # noqa: E402  (benchmarks/ is sys.path[0] for a script)
import fused_bn  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_lottery  # noqa: E402
from keras_lottery import data as data_lib  # noqa: E402
from keras_lottery.spec import execution as execution_lib  # noqa: E402
from keras_lottery.training import compile as training  # noqa: E402
from keras_lottery.spec import recipe as recipe_lib  # noqa: E402
from keras_lottery.spec.execution import Execution  # noqa: E402

TARGETS = {
    "plain": ("masked / plain", 0.97),
    "tfmot": ("masked / tfmot", 1.3),
    "pipeline": ("pipeline / masked model", 5.0),
}
DEFAULT_TFMOT_PYTHON = "/tmp/tfmot-venv/bin/python"
FIXED_BATCHES = 8
# Environment variables that set the frameworks' thread counts, recorded.
THREAD_SETTINGS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS",
                   "TF_NUM_INTEROP_THREADS", "XLA_FLAGS")
TRAIN_IMAGES = 50_000
TEST_IMAGES = 10_000


@dataclasses.dataclass(frozen=True)
class Spec:
    """One measured configuration."""

    name: str
    kind: str  # "train", "eval" or "pipeline"
    what: str
    density: float = 1.0
    plain: bool = False
    precision: str = None  # Execution precision: None, "bf16", "fp16"
    jit_compile: object = "auto"
    steps_per_execution: int = 1
    feed: str = "fixed"  # "fixed" batches or the real "pipeline"
    workers: int = 1
    # Batch norm: None as the model is built (a stripped `plain` model keeps
    # the masked one's kind), "fused" (benchmarks/fused_bn.py; TF only) or
    # "keras" (Keras's own, unfused).
    bn: str = None


SPECS = {
    s.name: s
    for s in [
        Spec("masked", "train", "masked, density 1.0 (reference)"),
        Spec("masked_d0.2", "train", "masked, pruned to density 0.2",
             density=0.2),
        Spec("plain", "train", "plain Conv2D/Dense (strip)", plain=True),
        Spec("masked_xla", "train", "masked, jit_compile=True",
             jit_compile=True),
        Spec("plain_xla", "train", "plain, jit_compile=True", plain=True,
             jit_compile=True),
        Spec("masked_bf16", "train", "masked, mixed_bfloat16",
             precision="bf16"),
        Spec("masked_fp16", "train",
             "masked, mixed_float16 with loss scaling (GPU only)",
             precision="fp16"),
        Spec("masked_spe8", "train", "masked, steps_per_execution=8",
             steps_per_execution=8),
        Spec("masked_pipeline", "train",
             "masked, fed by TrainBatches (as `lottery train`)",
             feed="pipeline"),
        Spec("masked_pipeline_w4", "train",
             "masked, TrainBatches with workers=4 (threads)",
             feed="pipeline", workers=4),
        Spec("masked_fusedbn", "train",
             "masked, fused batch norm (fused_bn.py / the library's)",
             bn="fused"),
        Spec("masked_kerasbn", "train",
             "masked, Keras's own BatchNormalization (unfused)", bn="keras"),
        Spec("eval_masked", "eval", "evaluate, masked"),
        Spec("eval_plain", "eval", "evaluate, plain", plain=True),
        Spec("pipeline", "pipeline",
             "TrainBatches alone (crop+flip+standardize), no model"),
    ]
}
DEFAULT_CONFIGS = [
    "masked", "masked_d0.2", "plain", "masked_xla", "masked_bf16",
    "masked_spe8", "masked_pipeline", "masked_fusedbn", "masked_kerasbn",
    "eval_masked",
    "eval_plain", "pipeline",
]
# Under JAX every step is compiled with XLA anyway.
DEFAULT_CONFIGS_JAX = [
    "masked", "masked_d0.2", "plain", "masked_bf16", "masked_fp16",
    "masked_spe8", "masked_pipeline", "masked_pipeline_w4", "eval_masked", "eval_plain",
    "pipeline",
]
SECTIONS = ("train", "memory", "tfmot", "tfmot1")


def log(message):
    print(message, file=sys.stderr, flush=True)


# -- Models and data -----------------------------------------------------------


def execution(spec):
    """The spec's execution settings as `lottery train` takes them."""
    return Execution(
        jit_compile={"auto": "auto", True: "on", False: "off"}[spec.jit_compile],
        precision=spec.precision,
        steps_per_execution=spec.steps_per_execution,
    )


def build_model(arch, spec):
    """The masked architecture as `lottery train` builds it (dtype policy
    from the execution settings), pruned or stripped as the spec says."""
    run = execution(spec)
    with run.building():
        keras.utils.set_random_seed(0)
        model = run.prepare(keras_lottery.models.build(
            arch, num_classes=10, input_shape=data_lib.IMAGE_SHAPE
        ))
    if spec.density < 1:
        keras_lottery.prune(model, spec.density)
    if spec.plain:
        fused = fused_bn.uses_fused_batch_norm(model)
        model = keras_lottery.strip(model)
        if fused:  # strip() makes batch norm plain too; keep it the same
            model = fused_bn.with_fused_batch_norm(model)
    if spec.bn == "fused":
        model = fused_bn.with_fused_batch_norm(model)
    elif spec.bn == "keras":
        model = fused_bn.with_keras_batch_norm(model)
    return model


def compile_like_lottery(model, spec=None):
    """Compiles exactly as `lottery train` does: `compile_model` with the
    paper's recipe and the spec's execution settings."""
    run = execution(spec or SPECS["masked"])
    with run.building():
        training.compile_model(model, recipe_lib.make(), run)


def cifar_sized_data(seed=0):
    """Random uint8 images and labels of CIFAR-10's training-set size."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (TRAIN_IMAGES,) + data_lib.IMAGE_SHAPE, np.uint8)
    y = rng.integers(0, 10, TRAIN_IMAGES).astype(np.int32)
    return x, y


class Feeds:
    """Fixed pre-made batches for the model configurations."""

    def __init__(self, x, y, batch_size):
        maker = data_lib.TrainBatches(
            x, y, batch_size, seed=0, num_steps=FIXED_BATCHES
        )
        self.batches = [maker[i] for i in range(FIXED_BATCHES)]
        self.x, self.y = x, y
        self.batch_size = batch_size
        self._dataset = None

    def fixed(self):
        """An endless stream of the fixed batches, cheapest for the backend."""
        if keras.backend.backend() == "tensorflow":
            if self._dataset is None:
                import tensorflow as tf

                xs = np.concatenate([b[0] for b in self.batches])
                ys = np.concatenate([b[1] for b in self.batches])
                self._dataset = (
                    tf.data.Dataset.from_tensor_slices((xs, ys))
                    .batch(self.batch_size, drop_remainder=True)
                    .cache()
                    .repeat()
                    .prefetch(2)
                )
            return self._dataset

        def endless():
            while True:
                yield from self.batches

        return endless()


# -- Measured configurations ---------------------------------------------------


class Bench:
    """A configuration: set up once, then timed once per repetition."""

    def __init__(self, spec, args, feeds):
        self.spec = spec
        self.args = args
        self.feeds = feeds
        self.rates = []  # batch / median step time, one per repetition
        self.window_rates = []  # timed images / elapsed, one per repetition
        self.notes = set()
        self.model = None
        self._next_step = 0
        Timer = _timing.timer_callback(keras.callbacks.Callback)
        self._timer = Timer
        spe = spec.steps_per_execution
        self.warmup = _timing.round_up(max(args.warmup, spe), spe)
        steps = args.eval_steps if spec.kind == "eval" else args.steps
        if spec.kind == "pipeline":
            steps, self.warmup = args.pipeline_steps, 2
        self.timed = _timing.round_up(steps, spe)

    def setup(self):
        if self.spec.kind == "pipeline":
            return
        self.model = build_model(self.args.arch, self.spec)
        compile_like_lottery(self.model, self.spec)
        self.run_once(trace=True)  # traces/compiles the step functions

    def run_once(self, trace=False):
        spec, batch = self.spec, self.args.batch_size
        steps = self.warmup + (0 if trace else self.timed)
        if spec.kind == "pipeline":
            return self._pipeline(steps)
        timer = self._timer()
        if spec.kind == "eval":
            self.model.evaluate(
                self.feeds.fixed(), steps=steps, callbacks=[timer], verbose=0
            )
        else:
            if spec.feed == "pipeline":
                data = data_lib.TrainBatches(
                    self.feeds.x, self.feeds.y, batch, seed=0,
                    start_step=self._take_steps(steps), num_steps=steps,
                    workers=spec.workers,
                )
            else:
                data = self.feeds.fixed()
            history = self.model.fit(
                data, steps_per_epoch=steps, callbacks=[timer], shuffle=False,
                verbose=0,
            )
            loss = history.history.get("loss", [0.0])[-1]
            if not math.isfinite(loss):
                self.notes.add("loss became non-finite")
        if trace:
            return None
        return timer.steady_rate(self.warmup, batch)

    def _take_steps(self, n):
        start = self._next_step
        self._next_step += n
        return start

    def _pipeline(self, steps):
        batches = data_lib.TrainBatches(
            self.feeds.x, self.feeds.y, self.args.batch_size, seed=0,
            start_step=self._take_steps(steps), num_steps=steps,
        )
        marks = [(0, time.perf_counter())]
        for i in range(steps):
            batches[i]
            marks.append((i + 1, time.perf_counter()))
        return _timing.steady_rates(marks, self.warmup, self.args.batch_size)


def measure(specs, args, feeds):
    """Round-robin over the configurations, rotating the order each rep."""
    benches = [Bench(s, args, feeds) for s in specs]
    for bench in benches:
        began = time.perf_counter()
        bench.setup()
        log(f"set up {bench.spec.name} in {time.perf_counter() - began:.1f} s")
    for rep in range(args.reps):
        shift = rep % len(benches)
        for bench in benches[shift:] + benches[:shift]:
            rate, window = bench.run_once()
            bench.rates.append(rate)
            bench.window_rates.append(window)
            log(f"rep {rep + 1}/{args.reps} {bench.spec.name}: {rate:,.0f} "
                f"img/s (window {window:,.0f})")
    return benches


# -- Subprocess sections ---------------------------------------------------------


def child_env(extra=None):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    env.update(extra or {})
    return env


def run_child(cmd, env=None):
    log("$ " + " ".join(cmd))
    done = subprocess.run(
        cmd, capture_output=True, text=True, env=child_env(env), cwd=ROOT
    )
    if done.returncode:
        sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
        raise RuntimeError(f"child failed with exit code {done.returncode}")
    return _timing.parse_result(done.stdout)


def measure_memory(args):
    """Peak RSS of a `keras_lottery.train` run in a fresh process."""
    result = run_child([
        sys.executable, str(HERE / "throughput.py"), "--memory-child",
        "--arch", args.arch, "--memory-steps", str(args.memory_steps),
        "--batch-size", str(args.batch_size),
    ])
    return result


def memory_child(args):
    """Runs `keras_lottery.train` on CIFAR-10-sized random data and reports
    this process's peak resident set (VmHWM)."""
    import resource

    def sized_dataset(seed=0, **_):
        x, y = cifar_sized_data(seed)
        rng = np.random.default_rng(seed + 1)
        x_test = rng.integers(
            0, 256, (TEST_IMAGES,) + data_lib.IMAGE_SHAPE, np.uint8
        )
        y_test = rng.integers(0, 10, TEST_IMAGES).astype(np.int32)
        return data_lib.Dataset("synthetic", x, y, x_test, y_test)

    # CIFAR-10's array sizes (50,000 + 10,000 images) instead of the small
    # demo set; data_lib.load() looks `bundled.synthetic` up at call time.
    data_lib.bundled.synthetic = sized_dataset
    before = _proc_status("VmRSS")
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        keras_lottery.train(
            args.arch, dataset="synthetic", steps=args.memory_steps,
            eval_every=args.memory_steps, batch_size=args.batch_size,
            seed=0, verbose=0, out=os.path.join(tmp, "run"), root=tmp,
        )
    _timing.print_result({
        "arch": args.arch,
        "steps": args.memory_steps,
        "seconds": round(time.perf_counter() - began, 1),
        "rss_after_import_kib": before,
        "vmhwm_kib": _proc_status("VmHWM"),
        "ru_maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    })


def _proc_status(field):
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def measure_tfmot(args):
    """Alternates a Keras 3 child and a tfmot child, one per repetition."""
    python = args.tfmot_python
    common = ["--arch", args.arch, "--steps", str(args.steps),
              "--warmup", str(args.warmup), "--batch-size", str(args.batch_size)]
    ours = [sys.executable, str(HERE / "throughput.py"), "--child",
            "--configs", args.tfmot_ours, *common]
    theirs = [python, str(HERE / "tfmot_throughput.py"),
              "--configs", "tfmot,tfkeras", *common]
    runs = {"keras_lottery": [], "tfmot": []}
    for rep in range(args.tfmot_reps):
        order = ["keras_lottery", "tfmot"]
        if rep % 2:
            order.reverse()
        for side in order:
            if side == "tfmot":
                result = run_child(theirs, env={"TF_USE_LEGACY_KERAS": "1"})
            else:
                result = run_child(ours)
            runs[side].append(result)
            log(f"tfmot rep {rep + 1}/{args.tfmot_reps} {side}: "
                + ", ".join(f"{k} {v:,.0f}" for k, v in result["rates"].items()))
    return runs


def measure_tfmot_inprocess(args):
    """Keras 3 masked and tfmot alternated inside one process of the tfmot
    venv (both Kerases import there), repetition by repetition."""
    cmd = [args.tfmot_python, str(HERE / "tfmot_throughput.py"),
           "--configs",
           "masked,tfmot,masked_fusedbn,tfkeras,plain,masked_kerasbn",
           "--arch", args.arch, "--steps", str(args.steps),
           "--warmup", str(args.warmup), "--batch-size", str(args.batch_size),
           "--reps", str(args.tfmot_reps)]
    return run_child(cmd, env={"TF_USE_LEGACY_KERAS": "1"})


# -- Report ----------------------------------------------------------------------


def ratio(a, b):
    return a / b if b else float("nan")


def fmt_rates(rates):
    return f"{min(rates):,.0f}–{max(rates):,.0f}" if rates else ""


def paired(rates, base_rates):
    """Median over repetitions of the per-repetition ratio rates / base: each
    repetition (round) measured both back to back, under the same load."""
    pairs = [a / b for a, b in zip(rates, base_rates) if b]
    return _timing.median(pairs) if pairs else float("nan")


def verdict(values, target):
    met = [v >= target for v in values if math.isfinite(v)]
    if not met:
        return "n/a"
    if all(met):
        return "yes"
    return "**no**" if not any(met) else "unclear (noise)"


def report(args, configs, memory, tfmot, backend, tfmot1=None):
    """Markdown tables from the measured numbers (`configs`: name -> dict
    with what, kind, rates, window_rates, notes)."""
    med = {n: _timing.median(c["rates"]) for n, c in configs.items()}
    ref = med.get("masked")
    eval_ref = med.get("eval_masked")
    lines = []
    out = lines.append
    out(f"## {args.arch}, batch {args.batch_size}, backend {backend}, "
        f"{args.reps} reps × {args.steps} timed steps (warm-up {args.warmup})\n")
    if configs:
        out("| configuration | what | images/s (median) | min–max | "
            "ratio to masked | paired ratio | window images/s |")
        out("|---|---|---:|---:|---:|---:|---:|")
        for name, c in configs.items():
            base = "eval_masked" if c["kind"] == "eval" else "masked"
            r = ratio(med[name], med[base]) if med.get(base) else float("nan")
            pr = (paired(c["rates"], configs[base]["rates"])
                  if base in configs else float("nan"))
            notes = f" ({'; '.join(c['notes'])})" if c.get("notes") else ""
            out(f"| `{name}` | {c['what']}{notes} | {med[name]:,.0f} | "
                f"{fmt_rates(c['rates'])} | {r:.2f} | {pr:.2f} | "
                f"{_timing.median(c['window_rates']):,.0f} |")
        out("")
        out("images/s: batch / median step time within a repetition, median "
            "over repetitions. ratio to masked: ratio of those medians. paired "
            "ratio: median over repetitions of the ratio within the repetition "
            "(the configurations of one repetition run back to back, so a "
            "burst of load from other processes hits both). window: timed "
            "images / elapsed time, median over repetitions. Evaluation rows "
            "compare with `eval_masked`, the others with `masked` "
            "(training).\n")
    checks = []
    if ref and "plain" in med:
        checks.append(("masked / plain (training)",
                       [ratio(ref, med["plain"]),
                        1 / paired(configs["plain"]["rates"],
                                   configs["masked"]["rates"])],
                       TARGETS["plain"][1]))
    if eval_ref and "eval_plain" in med:
        checks.append(("masked / plain (evaluation)",
                       [ratio(eval_ref, med["eval_plain"]),
                        1 / paired(configs["eval_plain"]["rates"],
                                   configs["eval_masked"]["rates"])],
                       TARGETS["plain"][1]))
    if ref and "pipeline" in med:
        checks.append(("input pipeline / masked training",
                       [ratio(med["pipeline"], ref),
                        paired(configs["pipeline"]["rates"],
                               configs["masked"]["rates"])],
                       TARGETS["pipeline"][1]))
    summary = {}
    if tfmot:
        side = {}
        for proc, key in (("keras_lottery", "masked"), ("keras_lottery", "plain"),
                          ("keras_lottery", "masked_fusedbn"),
                          ("keras_lottery", "masked_kerasbn"),
                          ("tfmot", "tfmot"), ("tfmot", "tfkeras")):
            side[key] = [r["rates"].get(key) for r in tfmot[proc]]
        ours, theirs = side["masked"], side["tfmot"]
        n = len(ours)
        out(f"### Side by side with tfmot ({n} alternating subprocess pairs)\n")
        out("| process | configuration | images/s (median) | min–max | "
            "ratio to tfmot | paired ratio to tfmot |")
        out("|---|---|---:|---:|---:|---:|")
        rows = [
            ("Keras 3", "masked", "keras_lottery masked, density 1.0"),
            ("Keras 3", "plain", "plain Keras 3 (strip)"),
            ("Keras 3", "masked_fusedbn", "masked + proposed fused BN"),
            ("Keras 3", "masked_kerasbn", "masked, Keras's unfused BN"),
            ("tf_keras", "tfmot",
             "tfmot prune_low_magnitude, ConstantSparsity 0.8"),
            ("tf_keras", "tfkeras", "plain tf_keras"),
        ]
        for proc, key, what in rows:
            values = side[key]
            if any(v is None for v in values):
                continue
            out(f"| {proc} | `{key}`: {what} | {_timing.median(values):,.0f} | "
                f"{fmt_rates(values)} | "
                f"{ratio(_timing.median(values), _timing.median(theirs)):.2f} | "
                f"{paired(values, theirs):.2f} |")
        out("")
        params = {r["params"] for r in tfmot["keras_lottery"] + tfmot["tfmot"]}
        out(f"Parameter count of the plain networks, Keras 3 vs tf_keras: "
            f"{sorted(params)} ({'equal' if len(params) == 1 else 'DIFFERENT'})."
            " Each pair ran the two processes back to back, the order "
            "alternating; paired ratio = median over pairs.\n")
        checks.append(("masked / tfmot (training)",
                       [ratio(_timing.median(ours), _timing.median(theirs)),
                        paired(ours, theirs)],
                       TARGETS["tfmot"][1]))
        if all(v is not None for v in side["masked_fusedbn"]):
            summary["masked_fusedbn / tfmot"] = [
                ratio(_timing.median(side["masked_fusedbn"]),
                      _timing.median(theirs)),
                paired(side["masked_fusedbn"], theirs)]
    if tfmot1:
        rates = tfmot1["all_rates"]
        theirs = rates["tfmot"]
        out(f"### tfmot and Keras 3 alternated in one process "
            f"({len(theirs)} rounds)\n")
        out("| Keras | configuration | images/s (median) | min–max | "
            "ratio to tfmot | paired ratio to tfmot |")
        out("|---|---|---:|---:|---:|---:|")
        names = {"masked": ("Keras 3", "keras_lottery masked, density 1.0"),
                 "plain": ("Keras 3", "plain Keras 3 (strip)"),
                 "masked_fusedbn": ("Keras 3", "masked + proposed fused BN"),
                 "masked_kerasbn": ("Keras 3", "masked, Keras's unfused BN"),
                 "tfmot": ("tf_keras", "tfmot prune_low_magnitude, "
                           "ConstantSparsity 0.8"),
                 "tfkeras": ("tf_keras", "plain tf_keras")}
        for key, values in rates.items():
            which, what = names.get(key, ("?", key))
            out(f"| {which} | `{key}`: {what} | {_timing.median(values):,.0f} "
                f"| {fmt_rates(values)} | "
                f"{ratio(_timing.median(values), _timing.median(theirs)):.2f} "
                f"| {paired(values, theirs):.2f} |")
        out("")
        if "masked" in rates:
            checks.append(("masked / tfmot (training, one process)",
                           [ratio(_timing.median(rates["masked"]),
                                  _timing.median(theirs)),
                            paired(rates["masked"], theirs)],
                           TARGETS["tfmot"][1]))
    if checks:
        out("| check | ratio of medians | paired ratio | target | met |")
        out("|---|---:|---:|---:|:---:|")
        for name, values, target in checks:
            out(f"| {name} | {values[0]:.2f}× | {values[1]:.2f}× | "
                f"≥ {target}× | {verdict(values, target)} |")
            summary[name] = values
        out("")
    if memory:
        out(f"Peak resident memory (VmHWM) of `keras_lottery.train("
            f"'{memory['arch']}', ...)` on CIFAR-10-sized data, "
            f"{memory['steps']} steps, one evaluation of 10,000 images: "
            f"**{memory['vmhwm_kib'] / 1024:,.0f} MiB** (after imports: "
            f"{memory['rss_after_import_kib'] / 1024:,.0f} MiB; run took "
            f"{memory['seconds']} s).\n")
    projection = project(args, med)
    if projection:
        out(f"Projected full run ({args.project_steps:,} steps × "
            f"{args.batch_size} images, plus its "
            f"{projection['evaluations']} evaluations of 10,000 images):")
        for name, hours in projection["hours"].items():
            out(f"- at `{name}` speed: {hours:.2f} h")
        out("")
    return "\n".join(lines), summary, projection


def project(args, med):
    steps = args.project_steps
    recipe = recipe_lib.make(steps=steps, batch_size=args.batch_size)
    evaluations = len(recipe.eval_steps(0, steps))
    eval_rate = med.get("eval_masked")
    eval_seconds = evaluations * TEST_IMAGES / eval_rate if eval_rate else 0.0
    hours = {}
    for name in ("masked", "masked_spe8", "masked_bf16", "masked_fp16",
                 "masked_pipeline", "masked_pipeline_w4"):
        if med.get(name):
            train_seconds = steps * args.batch_size / med[name]
            hours[name] = (train_seconds + eval_seconds) / 3600
    if not hours:
        return None
    return {"steps": steps, "evaluations": evaluations, "hours": hours}


def environment():
    cpu = None
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            cpu = next(
                (l.split(":", 1)[1].strip() for l in f
                 if l.startswith("model name")), None)
    versions = {"python": platform.python_version(), "keras": keras.__version__,
                "numpy": np.__version__, "keras_lottery": keras_lottery.__version__}
    backend = keras.backend.backend()
    with contextlib.suppress(ImportError):
        if backend == "tensorflow":
            import tensorflow as tf

            versions["tensorflow"] = tf.__version__
        elif backend == "jax":
            import jax

            versions["jax"] = jax.__version__
            versions["devices"] = [str(d) for d in jax.devices()]
        elif backend == "torch":
            import torch

            versions["torch"] = torch.__version__
            versions["devices"] = (
                [torch.cuda.get_device_name(i)
                 for i in range(torch.cuda.device_count())] or ["cpu"])
    git = None
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        git = subprocess.run(
            ["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
            capture_output=True, text=True, timeout=10,
        ).stdout.strip() or None
    threads = {k: os.environ[k] for k in THREAD_SETTINGS if k in os.environ}
    return {"cpu": cpu or platform.processor(), "cores": os.cpu_count(),
            "backend": backend, "versions": versions, "git": git,
            "threads": threads, "load_average": os.getloadavg()}


# -- Main ------------------------------------------------------------------------


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", default="resnet20")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--reps", type=int, default=5,
                   help="repetitions per configuration (median reported)")
    p.add_argument("--steps", type=int, default=20,
                   help="timed training steps per repetition")
    p.add_argument("--warmup", type=int, default=3,
                   help="untimed steps at the start of every repetition")
    p.add_argument("--eval-steps", type=int, default=None,
                   help="timed evaluation batches per repetition (2 × --steps)")
    p.add_argument("--pipeline-steps", type=int, default=60,
                   help="timed input-pipeline batches per repetition")
    p.add_argument("--configs", default=None,
                   help="comma-separated subset of: " + ", ".join(SPECS))
    p.add_argument("--sections", default=None,
                   help="comma-separated subset of: " + ", ".join(SECTIONS)
                   + " (default: all; tfmot only where its venv exists)")
    p.add_argument("--tfmot-python",
                   default=os.environ.get("TFMOT_PYTHON", DEFAULT_TFMOT_PYTHON))
    p.add_argument("--tfmot-reps", type=int, default=None,
                   help="alternating subprocess pairs (default: --reps)")
    p.add_argument("--tfmot-ours",
                   default="masked,plain,masked_fusedbn,masked_kerasbn",
                   help="configs the Keras 3 side of the tfmot comparison "
                   "measures (must include masked and plain)")
    p.add_argument("--memory-steps", type=int, default=40)
    p.add_argument("--project-steps", type=int, default=71108)
    p.add_argument("--json", default=None, help="write raw results here")
    p.add_argument("--markdown", default=None, help="write the tables here")
    p.add_argument("--report-only", metavar="JSON", default=None,
                   help="print the tables of an earlier --json file again")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--memory-child", action="store_true",
                   help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.eval_steps is None:
        args.eval_steps = 2 * args.steps
    if args.tfmot_reps is None:
        args.tfmot_reps = args.reps
    if args.configs is None:
        jax = keras.backend.backend() == "jax"
        args.configs = ",".join(DEFAULT_CONFIGS_JAX if jax else DEFAULT_CONFIGS)
    unknown = [c for c in args.configs.split(",") if c not in SPECS]
    if unknown:
        p.error(f"unknown configs {unknown}; choose from {', '.join(SPECS)}")
    configs = args.configs.split(",")
    if "masked_fp16" in configs and not execution_lib.has_gpu():
        log("no GPU: skipping masked_fp16 (float16 needs one)")
        args.configs = ",".join(c for c in configs if c != "masked_fp16")
    if args.sections is None:
        sections = ["train", "memory"]
        if os.path.exists(args.tfmot_python):
            sections += ["tfmot", "tfmot1"]
        else:
            log(f"no tfmot venv at {args.tfmot_python}: skipping the tfmot "
                "comparison (run benchmarks/setup_tfmot_env.sh)")
        args.sections = ",".join(sections)
    args.sections = set(args.sections.split(","))
    if args.sections - set(SECTIONS):
        p.error(f"unknown sections; choose from {', '.join(SECTIONS)}")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.memory_child:
        return memory_child(args)
    specs = [SPECS[c] for c in args.configs.split(",")]
    if args.child:
        args.reps = 1
        benches = measure(specs, args, Feeds(*cifar_sized_data(), args.batch_size))
        plain = build_model(args.arch, SPECS["plain"]).count_params()
        _timing.print_result({"rates": {b.spec.name: b.rates[0] for b in benches},
                              "window_rates": {b.spec.name: b.window_rates[0]
                                               for b in benches},
                              "params": plain})
        return None
    if args.report_only:
        payload = json.loads(pathlib.Path(args.report_only).read_text())
        saved = payload["settings"]
        for key in ("arch", "batch_size", "reps", "steps", "warmup",
                    "project_steps"):
            setattr(args, key, saved[key])
        text, _, _ = report(args, payload["configs"], payload["memory"],
                            payload["tfmot"], payload["environment"]["backend"],
                            payload.get("tfmot1"))
        text += machine_line(payload["environment"], payload["wall_seconds"])
        print(text)
        if args.markdown:
            pathlib.Path(args.markdown).write_text(text)
        return None
    began = time.perf_counter()
    env = environment()
    log(f"{env['cpu']}, {env['cores']} cores, {env['versions']}")
    memory = measure_memory(args) if "memory" in args.sections else None
    benches = []
    if "train" in args.sections:
        feeds = Feeds(*cifar_sized_data(), args.batch_size)
        benches = measure(specs, args, feeds)
    tfmot = measure_tfmot(args) if "tfmot" in args.sections else None
    tfmot1 = (measure_tfmot_inprocess(args) if "tfmot1" in args.sections
              else None)
    configs = {
        b.spec.name: {"what": b.spec.what, "kind": b.spec.kind,
                      "rates": b.rates, "median": _timing.median(b.rates),
                      "window_rates": b.window_rates,
                      "window_median": _timing.median(b.window_rates),
                      "notes": sorted(b.notes)}
        for b in benches
    }
    text, summary, projection = report(args, configs, memory, tfmot,
                                       env["backend"], tfmot1)
    wall = time.perf_counter() - began
    env["load_average_end"] = os.getloadavg()
    text += machine_line(env, wall)
    print(text)
    if args.markdown:
        pathlib.Path(args.markdown).write_text(text)
    if args.json:
        payload = {
            "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
            "environment": env,
            "settings": {k: (sorted(v) if isinstance(v, set) else v)
                         for k, v in vars(args).items()},
            "configs": configs,
            "memory": memory,
            "tfmot": tfmot,
            "tfmot1": tfmot1,
            "checks": summary,
            "projection": projection,
            "wall_seconds": wall,
        }
        pathlib.Path(args.json).write_text(json.dumps(payload, indent=1))
    return None


def machine_line(env, wall):
    end = env.get("load_average_end", [float("nan")])[0]
    return (f"\nMachine: {env['cpu']}, {env['cores']} cores; "
            f"{', '.join(f'{k} {v}' for k, v in env['versions'].items())}; "
            f"load average at start {env['load_average'][0]:.2f}, at end "
            f"{end:.2f}; measured in {wall / 60:.1f} min.\n")

if __name__ == "__main__":
    main()
