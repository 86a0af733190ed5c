"""A run from scratch: `TrainRequest` -> the run it means -> the lifecycle."""

from keras_lottery import checks
from keras_lottery import data as data_lib
from keras_lottery.errors import LotteryError
from keras_lottery.models import network as network_lib
from keras_lottery.procedures import lifecycle
from keras_lottery.runs import layout
from keras_lottery.runs import resolver
from keras_lottery.spec import methods
from keras_lottery.spec import recipe as recipe_lib
from keras_lottery.spec.requests import CIFAR_TEST_IMAGES
from keras_lottery.spec.requests import PAPER_DATASETS
from keras_lottery.spec.requests import PAPER_VAL_SPLIT
from keras_lottery.spec.runspec import RunSpec
from keras_lottery.training import keras_optimizers
from keras_lottery.training import timing



def train(request, *, verbose=1, callbacks=None):
    """Trains (or resumes, or finds finished) the run `request` (a
    `TrainRequest`) asks for; returns its `Run`."""
    clock = timing.Stopwatch("data")
    execution = request.execution.check_devices()
    network_lib.check_name(request.arch)  # before any data is read
    data = lifecycle.load_data(request.dataset, request.data_dir)
    network = network_lib.resolve(request.arch, data)
    if network.model_json is not None and (execution.precision or execution.strategy):
        raise LotteryError(
            "mixed precision and strategies apply to named architectures; "
            "build your own model under the dtype policy and strategy scope "
            "you want instead", param="mixed_precision", value=execution.precision,
        )
    recipe = recipe_lib.make(
        "renda2020" if request.recipe is None else request.recipe,
        steps=request.steps, epochs=request.epochs, batch_size=request.batch_size,
        checkpoint_iters=request.checkpoint_iters, eval_every=request.eval_every,
        optimizer=request.optimizer, train_images=len(data.x_train),
    )
    recipe = keras_optimizers.canonical(recipe)
    if recipe.batch_size > len(data.x_train):
        raise LotteryError(
            f"is larger than the training set ({len(data.x_train)} examples); "
            "use a smaller batch", param="batch_size", value=recipe.batch_size,
        )
    spec = RunSpec(methods.TRAIN.name, network.name, data_lib.spec_name(data), recipe,
                   seed=request.seed, val_split=_val_split(request.val_split, data),
                   precision=execution.precision, model=network.fingerprint,
                   data_fingerprint=data_lib.own_fingerprint(data))
    root = layout.DEFAULT_ROOT if request.root is None else request.root
    found = resolver.resolve(spec, out=request.out, root=root)
    job = lifecycle.Job(
        found, data, request.data_dir, execution,
        build=lambda: network_lib.build(network.name, network.model_json, data,
                                        recipe.weight_decay),
        bounds=(0, recipe.steps), init_seed=found.spec.seed,
        model_json=network.model_json, save_every=request.save_every,
        root=root if request.out is None else None, clock=clock)
    return lifecycle.run(job, verbose=verbose, callbacks=callbacks,
                         check=lambda model: network_lib.check_fits(model, data))


def _val_split(val_split, data):
    """The validation split asked, checked against the data (default: the
    paper's protocol on CIFAR's real test set, else none)."""
    if val_split is None:
        paper = data.name in PAPER_DATASETS and len(data.x_test) == CIFAR_TEST_IMAGES
        val_split = PAPER_VAL_SPLIT if paper else 0
    if not checks.is_count(val_split) or val_split >= len(data.x_test):
        raise LotteryError(
            f"expected an integer in [0, {len(data.x_test)}) (the test set has "
            f"{len(data.x_test)} images)", param="val_split", value=val_split,
        )
    return val_split
