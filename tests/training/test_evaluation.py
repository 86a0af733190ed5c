"""TensorBoard events of a run (issue 15): training loss and LR every
`summary_every` steps, evaluation scalars, and an HParams summary, read back
from the event files."""

import pathlib

import pytest
import tensorflow as tf
from tensorboard.plugins.hparams import plugin_data_pb2

from keras_lottery.training import evaluation
from keras_lottery.runs import layout
def _events(logdir):
    """[(step, tag, value or summary metadata)] of every event file in `logdir`."""
    found = []
    for path in sorted(pathlib.Path(logdir).glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                found.append((event.step, value))
    return found


def _scalars(logdir):
    """{tag: {step: value}} of the scalar summaries in `logdir`."""
    scalars = {}
    for step, value in _events(logdir):
        if value.metadata.plugin_data.plugin_name == "scalars":
            scalars.setdefault(value.tag, {})[step] = float(tf.make_ndarray(value.tensor))
    return scalars


def test_training_loss_and_lr_every_summary_step(digits_family):
    parent, child = digits_family
    for run in (parent, child):
        scalars = _scalars(run.path / layout.LOGS_DIR / "train")
        # 12 steps are far below the paper's 71,108: a summary every step.
        steps = list(range(run.start_step + 1, run.end_step + 1))
        assert sorted(scalars) == ["learning_rate", "loss"]
        assert sorted(scalars["loss"]) == sorted(scalars["learning_rate"]) == steps
        # The LR follows the schedule (0.025 at batch 32, dropping at 6 and 9).
        values = [round(lr, 7) for _, lr in sorted(scalars["learning_rate"].items())]
        assert values == sorted(values, reverse=True)
        assert set(values) <= set(run.spec.recipe.lr_values)
        assert all(0 < loss < 10 for loss in scalars["loss"].values())


def test_the_lr_logged_at_a_step_is_the_one_its_last_update_used(digits_family):
    # README: "`lr` is the learning rate the last update used": at step s
    # that is the update made at iteration s - 1, lr_at(s - 1).
    parent, _ = digits_family
    recipe = parent.spec.recipe
    logged = _scalars(parent.path / layout.LOGS_DIR / "train")["learning_rate"]
    assert logged == pytest.approx({s: recipe.lr_at(s - 1) for s in logged})
    assert {m["step"]: m["lr"] for m in parent.metrics} == pytest.approx(
        {m["step"]: recipe.lr_at(m["step"] - 1) for m in parent.metrics})


def test_evaluations_are_scalars_at_their_steps(digits_family):
    _, child = digits_family
    scalars = _scalars(child.path / layout.LOGS_DIR / "eval")
    assert sorted(scalars) == ["accuracy", "accuracy_top_5", "density", "learning_rate", "loss"]
    for tag, column in [("accuracy", "top1"), ("accuracy_top_5", "top5"), ("loss", "loss"),
                        ("density", "density")]:
        assert scalars[tag] == pytest.approx({m["step"]: m[column] for m in child.metrics}), tag


def test_hparams_summary_names_method_density_k_and_seed(digits_family):
    parent, child = digits_family
    for run, method, density, k, seed in [(parent, "train", 1.0, -1, 0),
                                          (child, "rewind", 0.5, 3, 1)]:
        (summary,) = [v for _, v in _events(run.path / layout.LOGS_DIR / "hparams")
                      if v.metadata.plugin_data.plugin_name == "hparams"]
        data = plugin_data_pb2.HParamsPluginData.FromString(
            summary.metadata.plugin_data.content)
        values = {name: value.WhichOneof("kind") and getattr(value, value.WhichOneof("kind"))
                  for name, value in data.session_start_info.hparams.items()}
        assert values["method"] == method
        assert values["density"] == density
        assert values["k"] == k
        assert values["seed"] == seed
        assert (values["dataset"], values["steps"], values["arch"]) == ("digits", 12, "lenet300")
        assert set(values) == set(evaluation.hparams(run.spec))
