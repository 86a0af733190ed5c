"""Execution settings: mixed precision keeps masks exact, steps per
execution keeps checkpoints exact, MirroredStrategy keeps run semantics."""

import functools
import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import keras_lottery as kl
from keras_lottery.sparse import pruning
from keras_lottery.spec import execution as execution_lib
from keras_lottery.training import compile as training
from keras_lottery.spec import recipe as recipe_lib
from keras_lottery.errors import LotteryError
from keras_lottery.spec.execution import Execution
from snapshots import tensors

SMALL = dict(steps=12, batch_size=16, eval_every=6, verbose=0)


def _resnet8(path, iteration=None, execution=None):
    """A resnet8 compiled as runs are (under `execution`), with a checkpoint's
    state loaded and, if given, its iteration checked."""
    execution = execution or Execution()
    with execution.building():
        model = kl.models.build("resnet8")
        kl.compile_model(model, recipe_lib.Recipe(), execution, lr=0.1)
    kl.load_state(model, path, iteration)
    return model


def _masks_and_kernels(model):
    """[(mask, stored kernel)] of every masked layer."""
    return [
        (np.asarray(layer.mask.numpy()), np.asarray(layer.raw_kernel.numpy()))
        for layer in pruning.masked_layers(model)
    ]


def test_settings_are_validated_and_mapped():
    assert Execution().compile_kwargs() == {"jit_compile": "auto", "steps_per_execution": 1}
    assert Execution("on", steps_per_execution=8).compile_kwargs() == {
        "jit_compile": True, "steps_per_execution": 8}
    assert Execution("off").compile_kwargs()["jit_compile"] is False
    for bad, param in [(dict(jit_compile="yes"), "jit_compile"),
                       (dict(precision="fp8"), "mixed_precision"),
                       (dict(steps_per_execution=0), "steps_per_execution"),
                       (dict(strategy="tpu"), "strategy")]:
        with pytest.raises(LotteryError) as error:
            Execution(**bad)
        assert error.value.param == param
    with pytest.raises(LotteryError, match="mixed_precision='fp16': needs a GPU"):
        Execution(precision="fp16").check_devices()  # this machine has none


def test_bf16_keeps_masks_exact_and_pruned_weights_zero(tmp_path):
    parent = kl.train("resnet8", dataset="synthetic", seed=2, out=tmp_path / "p",
                      mixed_precision="bf16", **SMALL)
    assert parent.config["execution"]["precision"] == "bf16"
    child = kl.rewind(parent.path, iteration=2, density=0.3, seed=2,
                      out=tmp_path / "c", mixed_precision="bf16", verbose=0)
    total = 77_616
    for path in child.checkpoints.values():
        pairs = _masks_and_kernels(_resnet8(path))
        assert pairs
        assert sum(int(m.sum()) for m, _ in pairs) == round(0.3 * total)
        for mask, kernel in pairs:
            assert mask.dtype == np.float32 and kernel.dtype == np.float32
            assert set(np.unique(mask)) <= {0.0, 1.0}
            assert (kernel[mask == 0] == 0).all()
        assert all((k[m == 1] != 0).all() for m, k in pairs)  # survivors live
    # The run really trained in bfloat16: it differs from a float32 twin.
    twin = kl.rewind(parent.path, iteration=2, density=0.3, seed=2,
                     out=tmp_path / "f32", verbose=0)
    a = tensors(child.checkpoints["final"])
    b = tensors(twin.checkpoints["final"])
    assert any(not np.array_equal(a[k], b[k]) for k in a)


def test_steps_per_execution_keeps_checkpoints_exact(tmp_path):
    one = kl.train("resnet8", dataset="synthetic", seed=3, out=tmp_path / "one", **SMALL)
    four = kl.train("resnet8", dataset="synthetic", seed=3, out=tmp_path / "four",
                    steps_per_execution=4, **SMALL)
    assert list(four.checkpoints) == list(one.checkpoints)
    assert [r["step"] for r in four.metrics] == [r["step"] for r in one.metrics]
    for key in one.checkpoints:
        a, b = tensors(one.checkpoints[key]), tensors(four.checkpoints[key])
        for name in a:
            np.testing.assert_allclose(a[name], b[name], rtol=1e-5, atol=1e-6,
                                       err_msg=f"{key} {name}")


FP16_SCALE = 2.0**20  # overflows in the first steps of resnet8, which are skipped


@pytest.fixture
def fp16_here(monkeypatch):
    """fp16 on this CPU (slow but exact in its semantics), with a first loss
    scale so large that some steps overflow and are skipped."""
    monkeypatch.setattr(execution_lib, "has_gpu", lambda: True)
    monkeypatch.setattr(training, "LossScaleOptimizer", functools.partial(
        kl.LossScaleOptimizer, initial_scale=FP16_SCALE))


def test_fp16_counts_skipped_steps_and_keeps_masks_exact(tmp_path, fp16_here):
    parent = kl.train("resnet8", dataset="synthetic", seed=2, out=tmp_path / "p",
                      mixed_precision="fp16", **SMALL)
    child = kl.rewind(parent.path, iteration=2, density=0.3, seed=2,
                      out=tmp_path / "c", mixed_precision="fp16", verbose=0)
    twin = kl.train("resnet8", dataset="synthetic", seed=2, out=tmp_path / "f32", **SMALL)
    # Skipped steps still count: every checkpoint holds the iteration it is
    # named for, and the learning rate follows the schedule step for step.
    assert list(parent.checkpoints) == list(twin.checkpoints)
    assert [(r["step"], r["lr"]) for r in parent.metrics] == \
        [(r["step"], r["lr"]) for r in twin.metrics]
    fp16 = Execution(precision="fp16")
    final = _resnet8(parent.checkpoints["final"], 12, fp16)
    assert float(final.optimizer.dynamic_scale.numpy()) < FP16_SCALE  # some steps did overflow
    total = 77_616
    for run, end in [(parent, 12), (child, 12)]:
        for key, path in run.checkpoints.items():
            model = _resnet8(path, end if key == "final" else key, fp16)
            pairs = _masks_and_kernels(model)
            for mask, kernel in pairs:
                assert mask.dtype == np.float32 and kernel.dtype == np.float32
                assert set(np.unique(mask)) <= {0.0, 1.0}
                assert (kernel[mask == 0] == 0).all()
            if run is child:
                assert sum(int(m.sum()) for m, _ in pairs) == round(0.3 * total)
    # It really trained in float16: it differs from the float32 twin.
    a, b = tensors(parent.checkpoints["final"]), tensors(twin.checkpoints["final"])
    assert any(not np.array_equal(a[k], b[k]) for k in b if k.startswith("layers"))


def test_fp16_rewind_lr_zeroes_restored_momentum_of_pruned_weights(tmp_path, monkeypatch):
    # A normal loss scale: no step is skipped, so the momentum a rewind_lr
    # child restores from its parent's final state is nonzero everywhere,
    # and it lives on the loss-scale wrapper's inner optimizer.
    monkeypatch.setattr(execution_lib, "has_gpu", lambda: True)
    monkeypatch.setattr(training, "LossScaleOptimizer", functools.partial(
        kl.LossScaleOptimizer, initial_scale=2.0**8))
    parent = kl.train("resnet8", dataset="synthetic", seed=2, out=tmp_path / "p",
                      mixed_precision="fp16", **SMALL)
    fp16 = Execution(precision="fp16")
    final = _resnet8(parent.checkpoints["final"], 12, fp16)
    assert float(final.optimizer.dynamic_scale.numpy()) == 2.0**8  # none skipped
    inner = final.optimizer.inner_optimizer
    for layer in pruning.masked_layers(final):
        assert np.abs(inner.slot(layer.raw_kernel).numpy()).min() > 0, layer.name
    child = kl.rewind_lr(parent.path, iteration=2, density=0.3, seed=2,
                         out=tmp_path / "c", mixed_precision="fp16", verbose=0)
    assert len(child.checkpoints) > 1
    for key, path in child.checkpoints.items():
        model = _resnet8(path, None, fp16)
        inner = model.optimizer.inner_optimizer
        for layer, (mask, kernel) in zip(pruning.masked_layers(model),
                                         _masks_and_kernels(model)):
            momentum = inner.slot(layer.raw_kernel).numpy()
            assert (kernel[mask == 0] == 0).all(), (key, layer.name)
            assert (momentum[mask == 0] == 0).all(), (key, layer.name)


def test_fp16_and_other_precisions_do_not_derive_from_each_other(tmp_path, fp16_here):
    fp16 = kl.train("resnet8", dataset="synthetic", seed=2, out=tmp_path / "p16",
                    mixed_precision="fp16", **SMALL)
    f32 = kl.train("resnet8", dataset="synthetic", seed=2, out=tmp_path / "p32", **SMALL)
    for parent, precision, match in [(fp16, None, "fp16 too"), (fp16, "bf16", "fp16 too"),
                                     (f32, "fp16", "needs an fp16 parent")]:
        out = tmp_path / f"child-{precision}"
        with pytest.raises(LotteryError, match=match):
            kl.rewind(parent.path, iteration=2, density=0.5, out=out,
                      mixed_precision=precision, verbose=0)
        assert not out.exists()
    # iterate checks it before it writes its study.
    with pytest.raises(LotteryError, match="needs an fp16 parent"):
        kl.iterate(f32.path, method="rewind", iteration=2, rounds=2,
                   out=tmp_path / "study", mixed_precision="fp16", verbose=0)
    assert not (tmp_path / "study").exists()


def test_user_model_built_in_float16_counts_skipped_steps(tmp_path, fp16_here):
    # float16 layers in a float32 container, as Keras rebuilds such a model.
    mine = keras.Sequential([
        keras.Input((32, 32, 3)), kl.MaskedConv2D(4, 3, strides=4, dtype="mixed_float16"),
        keras.layers.Flatten(), kl.MaskedDense(10, dtype="mixed_float16")])
    parent = kl.train(mine, dataset="synthetic", seed=1, out=tmp_path / "mine", **SMALL)
    child = kl.finetune(parent.path, iteration=2, density=0.5, verbose=0,
                        out=tmp_path / "child")
    scales = []
    for run, end in [(parent, 12), (child, 12 + 10)]:
        assert run.status == "finished"
        model = keras.models.model_from_json(run.model_config_path().read_text())
        kl.compile_model(model, recipe_lib.Recipe(), lr=0.1)
        assert isinstance(model.optimizer, kl.LossScaleOptimizer)
        kl.load_state(model, run.checkpoints["final"], end)  # counts every step
        scales.append(float(model.optimizer.dynamic_scale.numpy()))
    assert scales[0] < FP16_SCALE  # steps were skipped


MIRRORED = textwrap.dedent('''
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras_lottery as kl
    from keras_lottery.spec.execution import Execution
    out = sys.argv[1]
    small = dict(steps=12, batch_size=16, eval_every=6, verbose=0)
    parent = kl.train("resnet8", dataset="synthetic", seed=5, out=out + "/p",
                      strategy="mirrored", **small)
    child = kl.rewind(parent.path, iteration=2, density=0.4, seed=5,
                      out=out + "/c", strategy="mirrored", verbose=0)
    # fp16 (faked GPU): skipped steps count across replicas too.
    import functools
    from keras_lottery.spec import execution
    from keras_lottery.training import compile as training
    execution.has_gpu = lambda: True
    training.LossScaleOptimizer = functools.partial(
        kl.LossScaleOptimizer, initial_scale=2.0**20)
    fp16 = kl.train("resnet8", dataset="synthetic", seed=5, out=out + "/fp16",
                    strategy="mirrored", mixed_precision="fp16", **small)
    with Execution(precision="fp16").building():
        model = kl.models.build("resnet8")
        kl.compile_model(model, kl.recipe.Recipe(), Execution(precision="fp16"), lr=0.1)
    kl.load_state(model, fp16.checkpoints["final"], 12)
    # An overflow on one replica only skips the step on every replica.
    import keras
    import numpy as np
    strategy = execution.mirrored_strategy()
    kept = []
    for bad in (0, 1):
        with strategy.scope():
            v = keras.Variable(np.array([1.0, 2.0], "float32"))
            opt = kl.LossScaleOptimizer(kl.MomentumSGD(0.1), initial_scale=8.0)
            opt.build([v])

        @tf.function
        def step():
            def replica_step():
                me = tf.distribute.get_replica_context().replica_id_in_sync_group
                g = tf.where(tf.equal(me, bad), tf.constant([np.inf, 1.0]),
                             tf.constant([4.0, 4.0]))
                opt.apply([g], [v])
            strategy.run(replica_step)

        step()
        kept.append([v.numpy().tolist(), int(opt.iterations.numpy()),
                     float(opt.dynamic_scale.numpy())])
    print(json.dumps({"replicas": Execution(strategy="mirrored").replicas(),
                      "fp16_scale": float(model.optimizer.dynamic_scale.numpy()),
                      "one_replica_overflow": kept}))
''')


def test_mirrored_strategy_on_two_cpu_devices_keeps_run_semantics(tmp_path):
    script = tmp_path / "mirrored.py"
    script.write_text(MIRRORED)
    package_root = os.path.dirname(os.path.dirname(kl.__file__))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])))
    done = subprocess.run([sys.executable, str(script), str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    reported = json.loads(done.stdout.strip().splitlines()[-1])
    assert reported["replicas"] == 2
    assert reported["fp16_scale"] < FP16_SCALE  # steps were skipped, and counted
    # [weights, iterations, loss scale] after an inf on replica 0, then on 1.
    assert reported["one_replica_overflow"] == [[[1.0, 2.0], 1, 4.0]] * 2

    # The same runs on one device, for comparison.
    parent = kl.train("resnet8", dataset="synthetic", seed=5, out=tmp_path / "p1", **SMALL)
    child = kl.rewind(parent.path, iteration=2, density=0.4, seed=5,
                      out=tmp_path / "c1", verbose=0)
    mirrored_parent, mirrored_child = kl.Run.open(tmp_path / "p"), kl.Run.open(tmp_path / "c")
    assert mirrored_parent.config["execution"]["strategy"] == "mirrored"
    for mine, single in [(mirrored_parent, parent), (mirrored_child, child)]:
        assert list(mine.checkpoints) == list(single.checkpoints)
        assert [(r["step"], r["lr"]) for r in mine.metrics] == \
            [(r["step"], r["lr"]) for r in single.metrics]
        # Synchronized batch norm over the global batch: the same training,
        # up to the order of floating-point sums.
        a, b = tensors(mine.checkpoints["final"]), tensors(single.checkpoints["final"])
        for name in a:
            np.testing.assert_allclose(a[name], b[name], rtol=1e-3, atol=1e-4, err_msg=name)
    # Masks exact and identical to the single-device rewind's.
    for (m1, k1), (m2, _) in zip(_masks_and_kernels(_resnet8(mirrored_child.checkpoints["final"])),
                                 _masks_and_kernels(_resnet8(child.checkpoints["final"]))):
        np.testing.assert_array_equal(m1, m2)
        assert (k1[m1 == 0] == 0).all()


def test_mirrored_on_one_device_says_so_in_one_line_and_trains(tmp_path):
    # A real process: the strategy is made once per process, and this one
    # sees a single CPU (no logical devices set up, unlike the test above).
    done = subprocess.run(
        [sys.executable, "-m", "keras_lottery.cli", "train", "--arch", "lenet300",
         "--dataset", "digits", "--steps", "2", "--batch-size", "32", "-q",
         "--strategy", "mirrored", "--seed", "1", "--out", str(tmp_path / "r")],
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    said = [line for line in done.stderr.splitlines() if "single device" in line]
    assert said == ["Warning: strategy='mirrored' sees a single device (no second GPU is "
                    "visible), so the run trains as on one device"], done.stderr[-2000:]
    assert kl.Run.open(tmp_path / "r").status == "finished"
