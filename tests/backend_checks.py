"""The checks of a Keras backend other than TensorFlow, shared by
tests/procedures/test_backend_jax.py and test_backend_torch.py (each names
its `BACKEND` and imports these).

One subprocess on that backend (tests/backend_script.py) runs every
procedure, an interrupted and resumed run, a rewind of a TensorFlow parent
made here, AdamW with cosine decay, bf16 and a tiny study on each engine
(local, Slurm, Ray); the checks read
what it left, in this (TensorFlow) process, which also shows that the
backend's checkpoints load on TensorFlow.
"""

import json
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_lottery as kl
from keras_lottery.runs import layout
from keras_lottery.spec import record
from snapshots import tensors

SCRIPT = pathlib.Path(__file__).resolve().parent / "backend_script.py"
# The backend's package, and what installs it.
PACKAGES = {"jax": "jax", "torch": "torch"}
K = 3
KW = dict(dataset="digits", steps=12, batch_size=32, eval_every=4,
          checkpoint_iters=[0, K, 12], save_every=4)


@pytest.fixture(scope="module")
def made(request, tmp_path_factory):
    """(out, report, stdout, TensorFlow parent) of the backend's script."""
    backend = request.module.BACKEND
    pytest.importorskip(PACKAGES[backend], reason=f"{backend} is not installed: "
                        f"pip install '.[{backend}]'")
    root = tmp_path_factory.mktemp(backend)
    parent = kl.train("lenet300", seed=0, out=root / "tf-parent", verbose=0, **KW)
    out = root / "out"
    package_root = str(pathlib.Path(kl.__file__).resolve().parents[1])
    env = dict(os.environ, KERAS_BACKEND=backend, XLA_PYTHON_CLIENT_PREALLOCATE="false",
               PYTHONPATH=os.pathsep.join(filter(None, [package_root,
                                                         os.environ.get("PYTHONPATH")])))
    done = subprocess.run([sys.executable, str(SCRIPT), str(out), str(parent.path)], env=env,
                          capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return out, json.loads((out / "report.json").read_text()), done.stdout, parent


def _run(out, name):
    return kl.Run.open(out / name)


def _untimed(run):
    return [{k: v for k, v in row.items() if k != "elapsed"} for row in run.metrics]


def test_every_procedure_runs_and_records_its_backend(made, request):
    out, report, _, _ = made
    backend = request.module.BACKEND
    assert report["backend"] == backend
    runs = [kl.Run.open(p) for p in layout.find_runs(out)]
    assert len(runs) >= 17
    for run in runs:
        assert run.status == record.FINISHED, run.path
        assert run.record.backend == backend == run.config["versions"]["keras_backend"]
    modes = {run.spec.mode for run in runs}
    assert modes == {"train", "rewind", "rewind_lr", "finetune", "lowlr_rewind", "random",
                     "reinit", "branch"}
    for name in ("rewind", "rewind_lr", "finetune", "lowlr_rewind", "random_prune", "reinit"):
        assert _run(out, name).density == pytest.approx(0.5, abs=1e-4), name
    one, two = _run(out, "iterate/round-1"), _run(out, "iterate/round-2")
    assert (one.density, two.density) == (pytest.approx(0.8, abs=1e-4),
                                          pytest.approx(0.64, abs=1e-4))
    masks_one, masks_two = (kl.get_masks(r.load_model()) for r in (one, two))
    for key, mask in masks_two.items():
        assert (mask <= masks_one[key]).all(), key  # rounds nest
    assert len(report["stability_copies"]) == 2 and report["barriers"]
    assert report["overlap_pairs"] == 1 and report["groups"] >= 8
    assert (out / "density.png").stat().st_size > 1000


def test_progress_lines_and_tensorboard_logs(made):
    out, _, stdout, _ = made
    assert [line.split(":")[0] for line in stdout.splitlines()
            if line.startswith("step ")][:3] == ["step 4", "step 8", "step 12"]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    for folder, tags in (("eval", {"accuracy", "loss", "learning_rate", "density"}),
                         ("train", {"loss", "learning_rate"})):
        events = EventAccumulator(str(out / "train" / "logs" / folder)).Reload()
        found = set(events.Tags()["scalars"]) | set(events.Tags()["tensors"])
        assert tags <= found, (folder, found)


def test_an_interrupted_run_resumes_to_the_bits_of_an_uninterrupted_one(made):
    out, report, _, _ = made
    assert report["interrupted_status"] == record.INTERRUPTED
    base, resumed = _run(out, "train"), _run(out, "resumed")
    assert list(resumed.checkpoints) == list(base.checkpoints)
    for key, path in base.checkpoints.items():  # the same seed: the same bits
        theirs = tensors(resumed.checkpoints[key])
        for name, value in tensors(path).items():
            np.testing.assert_array_equal(theirs[name], value, err_msg=f"{key} {name}")
    assert _untimed(resumed) == _untimed(base)


def test_a_tensorflow_parent_rewinds_here_and_these_runs_load_on_tensorflow(made):
    out, _, _, parent = made
    cross = _run(out, "cross")
    assert cross.spec.parent == str(parent.path.resolve()) and cross.start_step == K
    assert parent.record.backend == "tensorflow"
    assert cross.density == pytest.approx(0.5, abs=1e-4)
    for run in (cross, _run(out, "train"), _run(out, "bf16")):
        found = run.evaluate()
        assert found["top1"] == pytest.approx(run.metrics[-1]["top1"], abs=0.02), run.path


def test_adamw_with_cosine_decay_rewinds_here(made):
    out, report, _, _ = made
    parent, child = _run(out, "adamw"), _run(out, "adamw-rewind-lr")
    assert child.spec.recipe.optimizer_name == "AdamW"
    schedule = keras.optimizers.schedules.CosineDecay(1e-2, 12)
    assert [g for g, _ in report["adamw_lrs"]] == list(range(K, 12))
    for g, lr in report["adamw_lrs"]:
        assert lr == pytest.approx(float(schedule(g)), rel=1e-5), g
    # LR rewinding: the parent's final moments, zeroed where pruned.
    final, start = parent.load_model(), child.load_model(K)
    masks = kl.get_masks(start)
    theirs = {v.name: keras.ops.convert_to_numpy(v) for v in final.optimizer.variables}
    for v in start.optimizer.variables:
        if len(v.shape) == 0:
            continue
        layer = v.name.split("_kernel_")[0]
        mask = masks[layer] if "_kernel_" in v.name and layer in masks else 1
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(v), theirs[v.name] * mask)


def test_bf16_convolutions_and_batch_norm_train_and_rewind(made):
    out, _, _, _ = made
    for name in ("bf16", "bf16-rewind"):
        run = _run(out, name)
        assert run.spec.precision == "bf16" and run.status == record.FINISHED


def test_what_the_backend_lacks_is_one_line(made):
    _, report, _, _ = made
    assert report["mirrored"].startswith("strategy='mirrored': is TensorFlow's")
    assert "\n" not in report["mirrored"]


@pytest.mark.parametrize("engine", ["local", "slurm", "ray"])
def test_a_tiny_study_runs_on_the_backend(made, request, engine):
    out, report, _, _ = made
    folder = "study" if engine == "local" else f"study-{engine}"
    returncode, output = report[folder]
    assert returncode == 0, output
    runs = [kl.Run.open(p) for p in layout.find_runs(out / folder / "runs")]
    assert len(runs) == 2
    for run in runs:
        assert run.status == record.FINISHED
        assert run.record.backend == request.module.BACKEND
        assert run.spec.recipe.optimizer_name == "Adam"
