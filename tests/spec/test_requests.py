"""Requests: a procedure's arguments as one typed value, checked once,
before anything loads TensorFlow; their JSON form (a study's nodes)."""

import json
import subprocess
import sys

import pytest

from keras_lottery.errors import LotteryError
from keras_lottery.spec.execution import Execution
from keras_lottery.spec.requests import DeriveRequest
from keras_lottery.spec.requests import IterateRequest
from keras_lottery.spec.requests import Request
from keras_lottery.spec.requests import TrainRequest

BAD = [
    (TrainRequest, dict(seed=-1), "seed=-1: expected an integer >= 0"),
    (TrainRequest, dict(steps=-5), "steps=-5: expected a positive integer"),
    (TrainRequest, dict(steps=10, epochs=2), "epochs=2: give steps or epochs, not both"),
    (TrainRequest, dict(save_every=0), "save_every=0: expected a positive number of steps"),
    (TrainRequest, dict(checkpoint_iters="0,10"), "checkpoint_iters='0,10': expected a list"),
    (DeriveRequest, dict(method="rewnd"), "method='rewnd': unknown method (did you mean rewind?)"),
    (DeriveRequest, dict(method="train"), "method='train': unknown method"),
    (DeriveRequest, dict(method="rewind", iteration=-1), "iteration=-1: expected an integer >= 0"),
    (DeriveRequest, dict(method="rewind", density=80), "density=80: expected a fraction in (0, 1]"),
    (DeriveRequest, dict(method="rewind", exclude="fc_3"), "exclude='fc_3': expected a list of"),
    (DeriveRequest, dict(method="rewind", scope="local"), "scope='local': expected one of"),
    (DeriveRequest, dict(method="finetune", lr=-0.1), "lr=-0.1: expected a positive learning"),
    (DeriveRequest, dict(method="rewind", pruner=3), "pruner=3: expected a registered pruner"),
    (IterateRequest, dict(rounds=0), "rounds=0: expected a positive integer"),
    (IterateRequest, dict(rounds=2, rate=1.0), "rate=1.0: expected a fraction in (0, 1)"),
    (IterateRequest, dict(rounds=2, method="branch"), "method='branch': unknown method"),
]


@pytest.mark.parametrize("kind, fields, message", BAD, ids=[m.split(":")[0] for *_, m in BAD])
def test_a_request_is_checked_when_made(kind, fields, message):
    with pytest.raises(LotteryError) as error:
        kind(**fields)
    assert str(error.value).startswith(message), str(error.value)


def test_requests_round_trip_through_json():
    made = [
        TrainRequest(arch="lenet300", dataset="digits", steps=40, checkpoint_iters=[0, 8],
                     seed=1, out="runs/x", execution=Execution(jit_compile="off")),
        DeriveRequest(method="rewind_lr", parent="runs/x", iteration=8, density=0.2,
                      exclude=["fc_3"], layer_densities={"fc_1": 0.5}, scope="layerwise",
                      pruner="magnitude", seed=2),
        IterateRequest(method="finetune", parent="runs/x", iteration=8, rounds=3, rate=0.5,
                       layer_rates={"fc_3": 0.9}, scope="layerwise", lr=0.01),
    ]
    for request in made:
        again = Request.from_dict(json.loads(json.dumps(request.to_dict())))
        assert again == request and type(again) is type(request)


def test_a_procedures_arguments_become_its_request():
    request = DeriveRequest.from_arguments(
        dict(parent="p", iteration=3, density=0.5, mixed_precision="bf16",
             jit_compile="off", steps_per_execution=2, strategy=None), method="rewind-lr")
    assert request.method == "rewind_lr"
    assert request.execution == Execution("off", "bf16", 2, None)
    with pytest.raises(LotteryError, match="has no JSON form"):
        TrainRequest(arch=object()).to_dict()


# Every cheap argument is checked before TensorFlow loads, so a typo costs
# no start-up (issue: "answers before TensorFlow loads").
QUICK = """
import sys
from click.testing import CliRunner
from keras_lottery.cli import main
result = CliRunner().invoke(main, {args!r})
print(result.output.strip().splitlines()[-1])
print("tensorflow" in sys.modules, "keras" in sys.modules)
"""


@pytest.mark.parametrize("args, message", [
    (["rewind", "--iter", "-1", "--density", "50"], "Error: --iter -1: expected an integer >= 0"),
    (["train", "--steps", "-5"], "Error: --steps -5: expected a positive integer"),
    (["iterate", "--iter", "4", "--rounds", "2", "--rate", "1.5"],
     "Error: --rate 1.5: expected a fraction in (0, 1)"),
    (["rewind", "--density", "50"], "Error: Missing option '--iter'"),
])
def test_the_command_line_refuses_cheap_mistakes_before_tensorflow(args, message, tmp_path):
    done = subprocess.run([sys.executable, "-c", QUICK.format(args=args)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    error, loaded = done.stdout.strip().splitlines()[-2:]
    assert error.startswith(message), error
    assert loaded == "False False"


def test_inputs_once_accepted_silently_are_refused():
    import keras_lottery as kl
    from keras_lottery.spec import recipe

    with pytest.raises(LotteryError, match=r"^parent=123: expected a run directory's path or a Run"):
        kl.rewind(123, iteration=1, density=0.5)
    with pytest.raises(LotteryError, match=r"^exclude='fc_3': expected a list of layer names"):
        kl.rewind("runs/x", iteration=1, density=0.5, exclude="fc_3")
    with pytest.raises(LotteryError, match=r"^warmup_steps=300: is longer than the run \(200"):
        recipe.make(steps=200, warmup_steps=300)
    from click.testing import CliRunner

    from keras_lottery.cli import main

    result = CliRunner().invoke(main, ["results", "--select", "best_val"])
    assert result.exit_code == 2 and "--select picks each run's result within a --group" in (
        result.output)
def test_arrays_given_as_a_dataset_are_refused_in_one_short_line():
    import numpy as np

    x, y = np.zeros((100, 8, 8, 1), "float32"), np.zeros(100, "int64")
    message = ("dataset=<tuple of array of shape (100, 8, 8, 1), array of shape (100,)>: "
               "expected a dataset name, npz:PATH or a keras_lottery.data.Dataset; for "
               "arrays pass keras_lottery.data.arrays(x_train, y_train, x_test, y_test)")
    with pytest.raises(LotteryError) as error:
        TrainRequest(arch="lenet300", dataset=(x, y))
    assert str(error.value) == message
    with pytest.raises(LotteryError) as error:
        DeriveRequest(method="rewind", iteration=1, density=0.5, dataset=[x, y])
    assert str(error.value) == message.replace("<tuple", "<list")
