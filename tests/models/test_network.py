"""The network a run trains (issues 16 and 17): a Keras model of your own
(filed under its architecture, checked against the data before anything is
written), a saved `.keras` file, `package.module:function`, and the named
architectures sized to the data."""

import re
import sys
import textwrap

import keras
import pytest
from click.testing import CliRunner

import keras_lottery as kl
from cifar_fixtures import make_cifar100
from cifar_fixtures import write_cifar100_binary
from idx_fixtures import make_mnist
from idx_fixtures import write_mnist
from keras_lottery.models import network as arch
from keras_lottery.runs import layout
from keras_lottery.cli import main

SMALL = dict(dataset="digits", steps=4, batch_size=32, eval_every=4,
             checkpoint_iters=[0, 1, 4], verbose=0)
DIGITS = ["--dataset", "digits", "--steps", "4", "--batch-size", "32", "--eval-every", "4",
          "--checkpoint-iters", "0,1,4", "--seed", "0", "-q"]
CHILD = ["--iter", "1", "--density", "50", "--seed", "0", "-q"]
# Dense 64 x 16 and 16 x 10 are the prunable weights of `_net()`.
NET_WEIGHTS = 64 * 16 + 16 * 10


def _net(outputs=10, shape=(8, 8, 1), units=16):
    return keras.Sequential([keras.Input(shape), keras.layers.Flatten(),
                             keras.layers.Dense(units, activation="relu"),
                             keras.layers.Dense(outputs)])


def _invoke(*args):
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result


def test_the_same_network_built_again_is_the_same_run(tmp_path, capsys):
    # Re-running a notebook cell: Keras names the second model and its
    # layers sequential_1, dense_2, ...
    first, second = _net(), _net()
    assert first.name != second.name
    assert [layer.name for layer in first.layers] != [layer.name for layer in second.layers]
    mine, again = arch.resolve(first), arch.resolve(second)
    assert mine.name == again.name and mine.fingerprint == again.fingerprint
    assert re.fullmatch(r"sequential-[0-9a-f]{8}", mine.name)
    assert arch.resolve(_net(units=17)).name != mine.name  # another network
    run = kl.train(first, root=tmp_path, **SMALL)  # a drawn seed
    capsys.readouterr()
    found = kl.train(second, root=tmp_path, **dict(SMALL, verbose=1))
    assert found.path == run.path
    assert "already finished; nothing to do" in capsys.readouterr().out
    assert layout.find_runs(tmp_path) == [run.path]


@pytest.mark.parametrize("model, message", [
    (_net(shape=(7, 7, 1)), "dataset='digits': the model takes inputs of shape (7, 7, 1) but "
                            "the data's are (8, 8, 1); build the model for the data"),
    (_net(outputs=5), "dataset='digits': the model has 5 outputs but the data has 10 "
                      "classes; give the model one logit per class"),
])
def test_a_network_that_does_not_fit_the_data_is_refused_before_anything_is_written(
        tmp_path, model, message):
    with pytest.raises(kl.LotteryError) as error:
        kl.train(model, root=tmp_path / "runs", seed=0, **SMALL)
    assert str(error.value) == message
    assert list(tmp_path.iterdir()) == []


def test_a_saved_keras_file_trains_and_derives(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = _net()
    model.save("net.keras")
    _invoke("train", "--arch", "net.keras", *DIGITS, "--out", "runs/mine")
    run = kl.Run.open("runs/mine")
    assert run.spec.arch == f"net-{arch.resolve(model).fingerprint[:8]}"
    assert (run.path / layout.MODEL_JSON).exists()
    _invoke("rewind", "--from", "runs/mine", *CHILD, "--out", "runs/child")
    child = kl.Run.open("runs/child")
    assert child.spec.arch == run.spec.arch and child.density == 0.5
    assert sum(int(m.sum()) for m in kl.get_masks(child.load_model()).values()) == (
        NET_WEIGHTS // 2)


BUILDER = textwrap.dedent('''
    import keras

    def small(input_shape, num_classes):
        return keras.Sequential([keras.Input(input_shape), keras.layers.Flatten(),
                                 keras.layers.Dense(16, activation="relu"),
                                 keras.layers.Dense(num_classes)])
''')


def test_a_builder_function_trains_and_derives(tmp_path, monkeypatch):
    package = tmp_path / "lab_nets"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "zoo.py").write_text(BUILDER)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    _invoke("train", "--arch", "lab_nets.zoo:small", *DIGITS, "--out", "runs/built")
    run = kl.Run.open("runs/built")
    assert run.spec.arch.startswith("small-")
    # Built for the data: the builder was given its shape and classes.
    assert arch.resolve(_net()).fingerprint == run.spec.model
    _invoke("rewind", "--from", "runs/built", *CHILD, "--out", "runs/child")
    assert kl.Run.open("runs/child").density == 0.5


def test_lenet300_takes_mnist_from_its_idx_files(tmp_path):
    write_mnist(tmp_path / "mnist", make_mnist(train=32, test=8))
    _invoke("train", "--arch", "lenet300", "--dataset", "mnist", "--data-dir",
            str(tmp_path / "mnist"), "--steps", "3", "--batch-size", "16", "--seed", "0", "-q",
            "--out", str(tmp_path / "run"))
    run = kl.Run.open(tmp_path / "run")
    assert (run.config["input_shape"], run.config["num_classes"]) == ([28, 28, 1], 10)
    masks = kl.get_masks(run.load_model())
    assert sum(m.size for m in masks.values()) == 266_200  # 784·300 + 300·100 + 100·10


def test_resnet8_on_cifar100_gets_100_outputs(tmp_path):
    write_cifar100_binary(tmp_path / "data" / "cifar-100-binary",
                          make_cifar100(train_records=32, test_records=8))
    _invoke("train", "--arch", "resnet8", "--dataset", "cifar100", "--data-dir",
            str(tmp_path / "data"), "--steps", "3", "--batch-size", "16", "--seed", "0", "-q",
            "--out", str(tmp_path / "run"))
    run = kl.Run.open(tmp_path / "run")
    assert run.config["num_classes"] == 100
    assert run.load_model().output_shape == (None, 100)
    assert run.spec.val_split == 0  # 8 test images are not CIFAR's real test set


def test_a_builder_in_the_current_folder_needs_no_pythonpath(tmp_path, monkeypatch):
    (tmp_path / "mynets_here.py").write_text(
        "import keras\n\n\ndef small_cnn(input_shape, num_classes):\n"
        "    return keras.Sequential([keras.Input(input_shape), keras.layers.Flatten(),\n"
        "                             keras.layers.Dense(num_classes)])\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    monkeypatch.delenv("PYTHONPATH", raising=False)
    result = CliRunner().invoke(main, [
        "train", "--arch", "mynets_here:small_cnn", "--dataset", "digits", "--steps", "2",
        "--batch-size", "32", "--checkpoint-iters", "0,2", "--seed", "0", "-q"])
    assert result.exit_code == 0, result.output
    assert "finished: runs/small_cnn-" in result.output
