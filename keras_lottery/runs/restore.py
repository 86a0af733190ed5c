"""A run's model back, from its files: `Run.load_model(iteration)`."""

from keras_lottery.models import network as arch_lib
from keras_lottery import data as data_lib
from keras_lottery.training import compile as compile_lib
from keras_lottery.errors import LotteryError
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
