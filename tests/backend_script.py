"""What the backend tests run on one Keras backend, in one process.

    KERAS_BACKEND=jax python tests/backend_script.py OUT TF_PARENT

A backend is chosen per process, so tests/procedures/test_backend_*.py run
this script in a subprocess once and check what it leaves in OUT: every
procedure on the bundled digits (train, the derived methods, branch,
iterate, stability, mask overlap, results and a plot), a run interrupted
and resumed, a run of the same seed again, a rewind of the TensorFlow run
TF_PARENT, AdamW with cosine decay rewound, a bf16 ResNet-8 and a tiny
study on each engine (local; Slurm through submitit's debug executor, its
jobs in this process; Ray on a local cluster). OUT/report.json holds what
only this process can see.
"""

import json
import pathlib
import subprocess
import sys

import keras

import keras_lottery as kl
from keras_lottery.runs import layout

K = 3
KW = dict(dataset="digits", steps=12, batch_size=32, eval_every=4,
          checkpoint_iters=[0, K, 12], save_every=4)
STUDY = """
[study]
root = "runs"
[base]
arch = "lenet300"
dataset = "digits"
steps = 12
batch_size = 32
checkpoint_iters = [0, 3, 12]
seeds = [0]
optimizer = {class_name = "Adam", config = {learning_rate = {class_name = "ExponentialDecay", \
config = {initial_learning_rate = 0.01, decay_steps = 4, decay_rate = 0.5}}}}
[oneshot]
methods = ["rewind"]
iters = [3]
densities = [50]
[resources]
devices = "cpu"
"""


class Interrupt(keras.callbacks.Callback):
    """Ctrl-C at global step `at` (the user's callbacks see global steps)."""

    def __init__(self, at):
        super().__init__()
        self.at = at

    def on_train_batch_end(self, batch, logs=None):
        if batch + 1 == self.at:
            raise KeyboardInterrupt


class LRs(keras.callbacks.Callback):
    """(iteration, LR) the optimizer applies at each step."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def on_train_batch_begin(self, batch, logs=None):
        optimizer = self.model.optimizer
        self.seen.append((int(keras.ops.convert_to_numpy(optimizer.iterations)),
                          float(keras.ops.convert_to_numpy(optimizer.learning_rate))))


def chain(out):
    """Every procedure, from a base run trained here."""
    base = kl.train("lenet300", seed=0, out=out / "train", verbose=2, **KW)
    pruned = dict(iteration=K, density=0.5, seed=1, verbose=0)
    for name in ("rewind", "rewind_lr", "finetune", "lowlr_rewind", "random_prune"):
        getattr(kl, name)(base, out=out / name, **pruned)
    kl.reinit(base, density=0.5, seed=1, verbose=0, out=out / "reinit")
    kl.branch(base, iteration=K, seed=1, verbose=0, out=out / "branch")
    kl.iterate(base, iteration=K, rounds=2, seed=1, verbose=0, out=out / "iterate")
    stability = kl.stability(base, iteration=K, density=0.5, seed=1, points=3, verbose=0)
    overlap = kl.mask_overlap([out / "rewind", out / "rewind_lr"])
    rows = kl.report.group(layout.find_runs(out))
    kl.plot.accuracy_vs_density([out / n for n in ("rewind", "iterate/round-1",
                                                   "iterate/round-2")], out / "density.png")
    return {"barriers": {str(k): v for k, v in stability.barriers.items()},
            "stability_copies": [str(c.path) for c in stability.copies],
            "overlap_pairs": len(overlap.pairs), "groups": len(rows)}


def interrupted(out):
    """The base run again, Ctrl-C at step 6, then resumed by the same call."""
    try:
        kl.train("lenet300", seed=0, out=out / "resumed", verbose=0,
                 callbacks=[Interrupt(6)], **KW)
    except KeyboardInterrupt:
        pass
    status = kl.Run.open(out / "resumed").status
    kl.train("lenet300", seed=0, out=out / "resumed", verbose=0, **KW)
    return status


def adamw(out):
    """AdamW with cosine decay, rewound to k with its LR replayed."""
    optimizer = keras.optimizers.AdamW(keras.optimizers.schedules.CosineDecay(1e-2, 12),
                                       weight_decay=0.01)
    parent = kl.train("lenet300", seed=0, out=out / "adamw", verbose=0,
                      optimizer=optimizer, **KW)
    lrs = LRs()
    kl.rewind_lr(parent, iteration=K, density=0.5, seed=1, out=out / "adamw-rewind-lr",
                 verbose=0, callbacks=[lrs])
    return lrs.seen


def slurm_study(folder):
    """[0, ""] once the tiny study's Slurm jobs ran here (submitit's debug
    executor), else [1, the error]."""
    from keras_lottery.study import planner
    from keras_lottery.study import studyfile
    from keras_lottery.study.engines import slurm as slurmengine

    folder.mkdir()
    (folder / "study.toml").write_text(STUDY + "[slurm]\ngpus_per_job = 0\ntime = 10\n")
    plan = planner.expand(studyfile.load(folder / "study.toml"))
    submitted = slurmengine.SlurmEngine(cluster="debug").submit(plan)
    for wave in submitted.jobs:
        for job in wave:
            # exception(), not result(): the debug executor would open pdb.
            error = job.exception()
            if error is not None:
                return [1, f"{type(error).__name__}: {error}"]
    return [0, ""]


def main(out, tf_parent):
    out.mkdir(parents=True, exist_ok=True)
    report = {"backend": keras.backend.backend(), **chain(out)}
    report["interrupted_status"] = interrupted(out)
    kl.rewind(tf_parent, iteration=K, density=0.5, seed=1, verbose=0, out=out / "cross")
    report["adamw_lrs"] = adamw(out)
    bf16 = kl.train("resnet8", dataset="synthetic", steps=4, batch_size=16, eval_every=4,
                    checkpoint_iters=[0, 2, 4], seed=0, mixed_precision="bf16",
                    out=out / "bf16", verbose=0)
    kl.rewind(bf16, iteration=2, density=0.5, seed=1, mixed_precision="bf16",
              out=out / "bf16-rewind", verbose=0)
    try:
        kl.train("lenet300", strategy="mirrored", out=out / "mirrored", **KW)
    except kl.LotteryError as e:
        report["mirrored"] = str(e)
    for engine in ("local", "ray"):
        folder = out / ("study" if engine == "local" else f"study-{engine}")
        folder.mkdir()
        (folder / "study.toml").write_text(STUDY)
        done = subprocess.run([sys.executable, "-m", "keras_lottery.cli", "study", "run",
                               "study.toml", "--engine", engine], cwd=folder,
                              capture_output=True, text=True)
        report[folder.name] = [done.returncode, done.stdout[-2000:] + done.stderr[-2000:]]
    report["study-slurm"] = slurm_study(out / "study-slurm")
    (out / "report.json").write_text(json.dumps(report))


if __name__ == "__main__":
    main(pathlib.Path(sys.argv[1]), sys.argv[2])
