"""A run's model and data back, from its files: `Run.load_model`,
`Run.evaluation_data` and `Run.evaluate`."""

import numpy as np

from keras_lottery.models import network as arch_lib
from keras_lottery import data as data_lib
from keras_lottery.training import compile as compile_lib
from keras_lottery.errors import LotteryError
from keras_lottery.training import evaluation
from keras_lottery.spec.execution import Execution
from keras_lottery.training.state import load_state


def load_model(run, iteration="final"):
    """The masked model of `run` with its state at `iteration`.

    The model is rebuilt as the run built it (its architecture or stored
    model.json, its dataset's input shape and classes), compiled as runs
    are (so the optimizer holds the checkpoint's momentum and iteration),
    and loaded from `checkpoint_iter_<iteration>`.

    Example:

    >>> model = keras_lottery.Run.open("runs/resnet20/train-s0").load_model()
    >>> model.evaluate(x, y)

    Args:
        run: a `Run`.
        iteration: a checkpoint iteration of the run, or "final".

    Raises:
        LotteryError: the run has no such checkpoint, or it cannot be loaded.
    """
    checkpoints = run.checkpoints
    if iteration not in checkpoints:
        saved = ", ".join(str(k) for k in checkpoints) or "none"
        raise LotteryError(f"is not a checkpoint of {run.path}; saved: {saved}",
                           param="iteration", value=iteration)
    spec = run.spec
    execution = Execution(**{k: v for k, v in (run.record.execution or {}).items()
                             if k in ("jit_compile", "precision")}).check_devices()
    with execution.building():
        model = arch_lib.build(spec.arch, _model_json(run), _Shapes(run), spec.recipe.weight_decay)
        compile_lib.compile_model(model, spec.recipe, execution, lr=spec.lr)
    load_state(model, checkpoints[iteration],
               run.end_step if iteration == "final" else iteration)
    return model


def _model_json(run):
    path = run.model_config_path()
    return path.read_text() if path.exists() else None


class _Shapes:
    """What `arch.build` needs of a dataset, from run.json (recorded since
    schema 1) or, for older runs, from the dataset itself."""

    def __init__(self, run):
        record = run.record
        if record.input_shape is not None:
            self.image_shape = record.input_shape
            self.num_classes = record.num_classes
        else:
            data = data_lib.load(run.spec.dataset, record.data_dir)
            self.image_shape, self.num_classes = data.image_shape, data.num_classes


def evaluation_data(run, split="test", dataset=None):
    """(x, y): the images `run` evaluated on and their labels, prepared as
    it prepared them (normalized the dataset's way), so that
    `model.evaluate(x, y)` reproduces its metrics.

    Args:
        run: a `Run`.
        split: "test" (what it reports as `top1`: the test set without the
            images held out for validation) or "validation" (`val_top1`).
        dataset: the run's data when it trained on arrays in memory
            (`keras_lottery.data.arrays(...)`); default: read again from
            where the run read it.

    Raises:
        LotteryError: an unknown split, a run without a validation split,
            or data that is not the run's.
    """
    if split not in ("test", "validation"):
        raise LotteryError('expected "test" or "validation"', param="split", value=split)
    data = _data(run, dataset)
    test, val = evaluation.evaluation_split(data, run.spec.val_split)
    if split == "validation" and val is None:
        raise LotteryError(f"{run.path} held out no validation images (val_split 0)",
                           param="split", value=split)
    x, y = test if split == "test" else val
    if not len(x):
        return x, y
    return data_lib.normalize_images(x, data.normalize), np.asarray(y, np.int32)


def evaluate(run, iteration="final", split="test", dataset=None):
    """{top1, top5, loss} of `run`'s model at `iteration` on its evaluation
    data, as its metrics.csv records them at that step."""
    model = load_model(run, iteration)
    x, y = evaluation_data(run, split, dataset)
    result = model.evaluate(x, y, verbose=0, return_dict=True,
                            batch_size=evaluation.eval_batch_size(run.spec.recipe.batch_size))
    return {k: float(result[k]) for k in ("top1", "top5", "loss")}


def _data(run, dataset):
    record = run.record
    if dataset is None:
        try:
            data = data_lib.load(run.spec.dataset, record.data_dir)
        except LotteryError as e:
            raise LotteryError(f"{e}; give the run's data as dataset=",
                               param="dataset", value=None) from None
    else:
        data = dataset
    if record.data_sha256 is not None and data.fingerprint != record.data_sha256:
        raise LotteryError(f"is not the data {run.path} trained on; give its own",
                           param="dataset", value=data_lib.spec_name(data))
    return data
