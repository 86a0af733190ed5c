"""Masked and plain training throughput on TensorFlow, JAX and PyTorch, side
by side, in one command.

Keras picks its backend once per process (`KERAS_BACKEND`), so each backend
runs in its own subprocess: `throughput.py --sections train --configs
masked,plain` with `KERAS_BACKEND` set. Inside each subprocess the masked
network (density 1.0, as `lottery train` builds and compiles it) and the same
network stripped to plain Keras Conv2D/Dense (`keras_lottery.strip`)
alternate repetition by repetition (by default each repetition is one
untimed and two timed steps of each), so that the two see the same load even
on a shared machine and the masked / plain ratio of a backend is paired
repetition by repetition; the ratio of the two fastest repetitions is the
second estimate, the least disturbed by other processes. A backend's
images/s is the median and the fastest over its repetitions; tracing,
compilation and warm-up steps are left out. Thread
settings in the environment (`OMP_NUM_THREADS`, ...) reach the
subprocesses; `--single-thread` gives each framework one compute thread.
Backends that are not installed are listed as such and skipped. With
`--rounds 2` or more, the backends' subprocesses alternate in order (A B C,
then C B A, ...), so that a change of load between them evens out when their
images/s are compared.

Usage:
    python benchmarks/backends.py                      # ResNet-20, every installed backend
    python benchmarks/backends.py --backends jax,torch --reps 6 --steps 10
    python benchmarks/backends.py --json out.json --markdown out.md
    python benchmarks/backends.py --single-thread      # steadier on a shared machine
    python benchmarks/backends.py --smoke              # checks it runs: resnet8, 1 step
"""

import argparse
import importlib.util
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent
BACKENDS = ("tensorflow", "jax", "torch")
TARGET = 0.97  # masked / plain, each backend against itself
# One compute thread in each framework (--single-thread): OpenMP (PyTorch,
# MKL), TensorFlow's thread pools, XLA's CPU thread pool (JAX).
SINGLE_THREAD = {
    "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
    "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1",
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false "
                 "intra_op_parallelism_threads=1",
}
SMOKE = {"arch": "resnet8", "reps": 1, "steps": 1, "warmup": 1,
         "batch_size": 8, "rounds": 1}


def log(message):
    print(message, file=sys.stderr, flush=True)


def installed(backend):
    return importlib.util.find_spec(backend) is not None


def measure(backend, args, scratch):
    """One subprocess of throughput.py on `backend`; its JSON payload."""
    out = pathlib.Path(scratch) / f"{backend}-{time.monotonic_ns()}.json"
    cmd = [sys.executable, str(HERE / "throughput.py"), "--sections", "train",
           "--configs", "masked,plain", "--arch", args.arch,
           "--batch-size", str(args.batch_size), "--reps", str(args.reps),
           "--steps", str(args.steps), "--warmup", str(args.warmup),
           "--json", str(out)]
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2",
               PYTHONUNBUFFERED="1")
    if args.single_thread:
        env.update(SINGLE_THREAD)
    log(f"$ KERAS_BACKEND={backend} " + " ".join(cmd[1:]))
    began = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode:
        sys.stderr.write(done.stdout[-3000:] + done.stderr[-3000:])
        raise SystemExit(f"Error: the {backend} benchmark failed (exit code "
                         f"{done.returncode}); its output is above.")
    log(f"{backend}: {time.perf_counter() - began:.0f} s")
    return json.loads(out.read_text())


def paired_ratios(masked, plain):
    """masked / plain within each repetition (measured back to back)."""
    return [m / p for m, p in zip(masked, plain) if p]


def median(values):
    values = sorted(values)
    if not values:
        return float("nan")
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def summarize(backend, payloads):
    """One backend's row from its subprocesses' payloads (one per round of
    `--rounds`)."""
    masked = [r for p in payloads for r in p["configs"]["masked"]["rates"]]
    plain = [r for p in payloads for r in p["configs"]["plain"]["rates"]]
    pairs = [q for p in payloads for q in paired_ratios(
        p["configs"]["masked"]["rates"], p["configs"]["plain"]["rates"])]
    versions = payloads[0]["environment"]["versions"]
    ratios = {"ratio": median(masked) / median(plain), "paired": median(pairs),
              "fastest_ratio": max(masked) / max(plain)}
    return {"backend": backend, "masked": median(masked), "plain": median(plain),
            "masked_fastest": max(masked), "plain_fastest": max(plain),
            "masked_rates": masked, "plain_rates": plain, **ratios,
            "paired_ratios": pairs, "met": verdict(ratios["paired"],
                                                   ratios["fastest_ratio"]),
            "framework": versions.get(backend), "devices": versions.get("devices")}


def verdict(paired, fastest):
    """Whether masked >= TARGET x plain: "yes" by both estimates, "no" by
    neither, "unclear (noise)" when they disagree."""
    met = [paired >= TARGET, fastest >= TARGET]
    return "yes" if all(met) else "unclear (noise)" if any(met) else "no"


def report(args, rows, skipped, env):
    lines = [f"## {args.arch}, batch {args.batch_size}: masked and plain "
             f"training per Keras backend ({args.rounds} round(s) × {args.reps} "
             f"reps × {args.steps} timed steps, warm-up {args.warmup}"
             f"{', one compute thread' if args.single_thread else ''})\n",
             "| backend | version | masked images/s: median, fastest | "
             "plain images/s: median, fastest | masked / plain: medians | "
             "paired | fastest | per repetition | " f"≥ {TARGET}× |",
             "|---|---|---:|---:|---:|---:|---:|---:|:---:|"]
    for row in rows:
        reps = ", ".join(f"{q:.2f}" for q in row["paired_ratios"])
        met = "**no**" if row["met"] == "no" else row["met"]
        lines.append(
            f"| {row['backend']} | {row['framework']} | {row['masked']:,.0f}, "
            f"{row['masked_fastest']:,.0f} | {row['plain']:,.0f}, "
            f"{row['plain_fastest']:,.0f} | {row['ratio']:.2f}× | "
            f"{row['paired']:.2f}× | {row['fastest_ratio']:.2f}× | {reps} | {met} |")
    for backend in skipped:
        lines.append(f"| {backend} | not installed | | | | | | | |")
    lines.append("")
    if rows:
        fastest = max(rows, key=lambda r: r["masked_fastest"])
        lines.append(f"Fastest masked network here: **{fastest['backend']}** "
                     f"({fastest['masked_fastest']:,.0f} images/s in its "
                     "fastest repetition).")
    lines.append(
        "images/s: batch / median step time of a repetition; median and "
        "fastest over repetitions. paired: median over repetitions of masked "
        "/ plain within the repetition (back to back, same load). fastest: "
        "the two fastest repetitions' ratio, the least disturbed by other "
        "processes. Each backend ran in its own subprocess; compare backends "
        "by their fastest repetitions, and only as far as the load allowed "
        "(see the load averages).")
    lines.append(f"\nMachine: {env['cpu']}, {env['cores']} cores; python "
                 f"{env['python']}, keras {env['keras']}; load average at start "
                 f"{env['load'][0]:.2f}, at end {env['load_end'][0]:.2f}; "
                 f"measured in {env['seconds'] / 60:.1f} min.\n")
    return "\n".join(lines)


def environment(payloads):
    first = next(iter(payloads.values()))[0]["environment"]
    return {"cpu": first["cpu"], "cores": first["cores"],
            "python": first["versions"]["python"],
            "keras": first["versions"]["keras"]}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backends", default=",".join(BACKENDS),
                   help="comma-separated subset of: " + ", ".join(BACKENDS))
    p.add_argument("--arch", default="resnet20")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--reps", type=int, default=10,
                   help="masked/plain repetitions in each backend's subprocess")
    p.add_argument("--steps", type=int, default=2,
                   help="timed training steps per configuration and repetition "
                   "(few, so masked and plain alternate often and see the "
                   "same load)")
    p.add_argument("--warmup", type=int, default=1,
                   help="untimed steps before each timed window")
    p.add_argument("--rounds", type=int, default=1,
                   help="subprocesses per backend, the backends' order "
                   "alternating")
    p.add_argument("--single-thread", action="store_true",
                   help="one compute thread per framework: slower, but far "
                   "steadier where other processes share the cores")
    p.add_argument("--smoke", action="store_true",
                   help="a seconds-long run that only checks it works: "
                   "resnet8, batch 8, 1 rep of 1 step")
    p.add_argument("--json", default=None, help="write raw results here")
    p.add_argument("--markdown", default=None, help="write the table here")
    args = p.parse_args(argv)
    if args.smoke:
        for key, value in SMOKE.items():
            setattr(args, key, value)
    args.backends = [b for b in args.backends.split(",") if b]
    unknown = [b for b in args.backends if b not in BACKENDS]
    if unknown or not args.backends:
        p.error(f"unknown backend(s) {unknown}; choose from {', '.join(BACKENDS)}")
    if min(args.reps, args.steps, args.rounds) < 1 or args.warmup < 1:
        p.error("--reps, --steps, --rounds and --warmup must be at least 1")
    return args


def main(argv=None):
    args = parse_args(argv)
    began, load = time.perf_counter(), os.getloadavg()
    present = [b for b in args.backends if installed(b)]
    skipped = [b for b in args.backends if b not in present]
    for backend in skipped:
        log(f"{backend} is not installed: skipped")
    if not present:
        raise SystemExit("Error: none of the backends asked for is installed; "
                         "install one (pip install -e '.[jax]' or '.[torch]').")
    payloads = {b: [] for b in present}
    with tempfile.TemporaryDirectory() as scratch:
        for n in range(args.rounds):
            for backend in present if n % 2 == 0 else present[::-1]:
                payloads[backend].append(measure(backend, args, scratch))
    rows = [summarize(b, payloads[b]) for b in present]
    env = dict(environment(payloads), load=load, load_end=os.getloadavg(),
               seconds=time.perf_counter() - began)
    text = report(args, rows, skipped, env)
    print(text)
    if args.markdown:
        pathlib.Path(args.markdown).write_text(text)
    if args.json:
        settings = {k: v for k, v in vars(args).items()
                    if k not in ("json", "markdown")}
        pathlib.Path(args.json).write_text(json.dumps(
            {"command": " ".join(["python"] + sys.argv), "settings": settings,
             "environment": env, "backends": rows, "skipped": skipped,
             "runs": payloads}, indent=1))


if __name__ == "__main__":
    main()
