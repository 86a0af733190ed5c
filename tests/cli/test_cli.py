import csv
import io
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

import keras_lottery
from keras_lottery.spec.record import RunRecord
from keras_lottery.cli import main
from snapshots import snapshot

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_help_and_version():
    runner = CliRunner()
    result = runner.invoke(main, ["--help"])
    assert result.exit_code == 0
    assert "Usage: main" in result.output or "Usage: lottery" in result.output
    assert "Renda" in result.output
    result = runner.invoke(main, ["--version"])
    assert result.exit_code == 0
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    assert re.fullmatch(rf"lottery, version {re.escape(keras_lottery.__version__)} "
                        rf"\(Keras backend: {backend}(, not installed)?\)",
                        result.output.strip()), result.output


def test_installed_console_script():
    exe = shutil.which("lottery")
    if exe is None:  # running from a source tree without `pip install`
        import pytest
        pytest.skip("the `lottery` console script is not installed")
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert keras_lottery.__version__ in out.stdout


def test_ci_runs_exactly_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    blocks = readme.split("```")
    commands = [line for line in blocks[1].splitlines()[1:]  # [0]: language tag
                if line and not line.startswith("#")]
    assert len(commands) == 2, "README must open with two commands"
    install_and_run, test_command = commands
    assert install_and_run.startswith("pip install ")
    assert "lottery " in install_and_run
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_command in ci_lines


def _invoke(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_verbatim_train_then_rewind_in_an_empty_folder(tmp_path, monkeypatch):
    import csv
    import io

    monkeypatch.chdir(tmp_path)
    result = _invoke("train", "--arch", "resnet20", "--dataset", "synthetic",
                     "--steps", "14", "--seed", "0", "-q")
    assert result.exit_code == 0, result.output
    assert "finished: runs/resnet20/train-s0" in result.output
    # Scaled to T=14, the paper's checkpoint 4701 becomes iteration 1.
    result = _invoke("rewind", "--iter", "1", "--density", "80", "--seed", "0", "-q")
    assert result.exit_code == 0, result.output
    assert "runs/resnet20/rewind-k1-d80-s0" in result.output
    result = _invoke("results")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].split()[:9] == ["run", "mode", "arch", "dataset", "T", "density",
                                    "iter", "steps", "seed"]
    rows = {line.split()[0]: line.split() for line in lines[2:]}
    assert rows["runs/resnet20/train-s0"][1:6] == ["train", "resnet20", "synthetic",
                                                  "14", "100%"]
    assert rows["runs/resnet20/rewind-k1-d80-s0"][1:9] == [
        "rewind", "resnet20", "synthetic", "14", "80%", "1", "13", "0"]
    as_csv = list(csv.DictReader(io.StringIO(_invoke("results", "--format", "csv").output)))
    assert {r["mode"] for r in as_csv} == {"train", "rewind"}
    curve = json.loads(_invoke("results", "--curve", "--format", "json",
                               "runs/resnet20/train-s0").output)
    assert [r["step"] for r in curve] == [2, 4, 6, 8, 10, 12, 14]


def test_default_parent_must_be_unique(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = _invoke("rewind", "--iter", "1", "--density", "80")
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert "Error: --from: need exactly one finished train run" in result.output
    assert "found 0" in result.output


def test_full_disk_is_one_line_and_resumable(tmp_path, monkeypatch):
    import errno

    import keras

    def disk_full(self, path, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(keras.Model, "save_weights", disk_full)
    result = CliRunner().invoke(main, ["train", *TINY, "--seed", "0", "--out", "r"])
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and isinstance(result.exception, SystemExit)
    assert "No space left on device" in errors[0]
    assert "re-run the same command to resume" in errors[0]


# --- Bad input: one line naming the problem and the fix, exit status != 0,
# no traceback, every existing run directory byte-for-byte untouched. Each
# message fragment is also in the docs' table (docs/how-to/bad-input.md).
TINY = ["--arch", "resnet8", "--dataset", "synthetic", "--steps", "14",
        "--batch-size", "16", "-q"]
# Children from k = 1 train 5 steps, evaluated and checkpointed at their end.
LENET = ["--arch", "lenet300", "--dataset", "digits", "--steps", "6", "--batch-size", "32",
         "--eval-every", "6", "--checkpoint-iters", "0,1,6", "-q"]

BAD_INPUT = [
    # (case, args, exit status, message fragment)
    ("npz missing a key", ["train", "--arch", "lenet300", "--dataset", "npz:data/nokey.npz"],
     1, "keys missing y_test; it must hold exactly x_train, y_train, x_test, y_test"),
    ("IDX file with a wrong magic number", ["train", "--arch", "lenet300", "--dataset", "mnist",
                                            "--data-dir", "data/mnist"],
     1, "not an IDX image file (magic number 2049, expected 2051)"),
    ("own network's outputs are not the classes", ["train", "--arch", "three.keras",
                                                   "--dataset", "digits"],
     1, "the model has 3 outputs but the data has 10 classes; give the model one logit per class"),
    ("density 0", ["rewind", "--from", "runs/parent", "--iter", "4", "--density", "0"],
     2, "is not a percent in (0, 100]"),
    ("density above 100", ["rewind", "--from", "runs/parent", "--iter", "4", "--density", "101"],
     2, "is not a percent in (0, 100]"),
    ("density not a number", ["rewind", "--from", "runs/parent", "--iter", "4", "--density", "lots"],
     2, "lots is not a number; give the percent of weights to keep, e.g. 80"),
    ("--iter not saved", ["rewind", "--from", "runs/parent", "--iter", "3", "--density", "80"],
     1, "--iter 3: is not a checkpoint of runs/parent; saved iterations: 0, 1, 2, 4, 6, 7"),
    ("--iter beyond the steps", ["rewind", "--from", "runs/parent", "--iter", "20", "--density", "80"],
     1, "--iter 20: must lie in [0, 14)"),
    ("--steps contradicting the parent", ["rewind", "--from", "runs/parent", "--iter", "4",
                                          "--density", "80", "--steps", "3"],
     1, "--steps 3: contradicts the parent's 14"),
    ("parent missing", ["rewind", "--from", "runs/nowhere", "--iter", "4", "--density", "80"],
     1, "does not exist"),
    ("parent not a run", ["rewind", "--from", "runs/not_a_run", "--iter", "4", "--density", "80"],
     1, "is not a run directory (no run.json)"),
    ("parent unfinished", ["rewind", "--from", "runs/unfinished", "--iter", "4", "--density", "80"],
     1, "--from runs/unfinished: the run is not finished (status: running); finish it first"),
    ("parent checkpoint truncated", ["rewind", "--from", "runs/truncated", "--iter", "4",
                                     "--density", "80"],
     1, "cannot be loaded"),
    ("parent checkpoint at k corrupt", ["rewind", "--from", "runs/corrupt_k", "--iter", "4",
                                        "--density", "80"],
     1, "it may be truncated or from another architecture"),
    ("run.json not JSON", ["rewind", "--from", "runs/garbled", "--iter", "4", "--density", "80"],
     1, "is not valid JSON"),
    ("run.json with a nonsense recipe", ["rewind", "--from", "runs/nonsense", "--iter", "4",
                                         "--density", "80"],
     1, "recipe is not valid"),
    ("run.json with a nonsense field", ["rewind", "--from", "runs/bad_steps", "--iter", "4",
                                        "--density", "80"],
     1, "end_step must be an integer above start_step"),
    ("model.json that would run code", ["rewind", "--from", "runs/lambda", "--iter", "4",
                                        "--density", "80"],
     1, "cannot be loaded safely"),
    ("checkpoint iterations unsorted", ["train", *TINY, "--checkpoint-iters", "5,2"],
     1, "must be sorted and unique"),
    ("checkpoint iterations duplicated", ["train", *TINY, "--checkpoint-iters", "2,2"],
     1, "must be sorted and unique"),
    ("checkpoint iterations beyond the steps", ["train", *TINY, "--checkpoint-iters", "0,20"],
     1, "lie outside [0, 14]"),
    ("checkpoint iterations not numbers", ["train", *TINY, "--checkpoint-iters", "a,b"],
     2, "is not a comma-separated list of integers"),
    ("unknown architecture", ["train", *TINY, "--arch", "resnet21"],
     1, "--arch resnet21: unknown architecture (did you mean resnet20?); available: conv2"),
    ("--out holds a different run", ["train", *TINY, "--seed", "99", "--out", "runs/parent"],
     1, "holds a different finished run (seed 0 != 99); to resume it re-run the command"),
    ("--out is a file", ["train", *TINY, "--out", "runs/not_a_run/notes.txt"],
     1, "exists and is not a run directory or an empty one"),
    ("batch size 0", ["train", *TINY, "--batch-size", "0"],
     1, "--batch-size 0: expected a positive integer"),
    ("batch size negative", ["train", *TINY, "--batch-size", "-3"],
     1, "--batch-size -3: expected a positive integer"),
    ("epochs not positive", ["train", *TINY[:4], "--epochs", "0"],
     1, "--epochs 0.0: expected a positive number"),
    ("seed negative", ["train", *TINY, "--seed", "-1"],
     1, "--seed -1: expected an integer >= 0"),
    ("save-every 0", ["train", *TINY, "--save-every", "0"],
     2, "is not in the range x>=1"),
    ("fp16 without a GPU", ["train", *TINY, "--mixed-precision", "fp16"],
     1, "--mixed-precision fp16: needs a GPU"),
    ("fp16 child of a float32 parent", ["rewind", "--from", "runs/parent", "--iter", "4",
                                        "--density", "80", "--mixed-precision", "fp16"],
     1, "needs an fp16 parent"),
    ("finetune LR 0", ["finetune", "--from", "runs/parent", "--iter", "4", "--density", "80",
                       "--lr", "0"],
     1, "--lr 0.0: expected a positive learning rate"),
    ("--data-dir missing", ["train", "--arch", "resnet8", "--data-dir", "nowhere"],
     1, "no such directory; pass the folder that holds cifar-10-batches-bin/"),
    ("--data-dir wrong layout", ["train", "--arch", "resnet8", "--data-dir", "runs/not_a_run"],
     1, "no CIFAR-10 files found"),
    ("--data-dir file missing", ["train", "--arch", "resnet8", "--data-dir", "data/missing"],
     1, "missing data_batch_3.bin"),
    ("--data-dir file truncated", ["train", "--arch", "resnet8", "--data-dir", "data/truncated"],
     1, "truncated or corrupt"),
    ("--data-dir file corrupt", ["train", "--arch", "resnet8", "--data-dir", "data/corrupt"],
     1, "but CIFAR-10 labels are 0-9"),
    ("--data-dir pickle payload", ["train", "--arch", "resnet8", "--data-dir", "data/payload"],
     1, "refused to unpickle"),
    ("--data-dir for synthetic", ["train", *TINY, "--data-dir", "data/truncated"],
     1, "only cifar10, cifar100, mnist and fashion_mnist read a folder"),
    # Issue 17: densities read the wrong way, derived runs that prune nothing.
    ("density a fraction", ["rewind", "--from", "runs/parent", "--iter", "4", "--density", "0.8"],
     2, "0.8 is a percent here: for 0.8 % write 0.8%, for 80 % of the weights write 80"),
    # Issue 24: every density an error names is in the unit typed (percent).
    ("density keeping no weight", ["rewind", "--from", "runs/parent", "--iter", "4",
                                   "--density", "0.0001%"],
     1, "keeps no weight (round(density x 77,616) = 0); ask for at least 0.0013%"),
    ("density at or above the parent's", ["rewind", "--from", "runs/parent", "--iter", "4",
                                          "--density", "100"],
     1, "is at or above the density of runs/parent (100); density is absolute (the share "
     "of all prunable weights kept, not of the parent's), so ask for less than 100"),
    ("density 1 without its sign", ["rewind", "--from", "runs/parent", "--iter", "4",
                                    "--density", "1"],
     2, "1 is a percent here: for 1 % write 1%, for 100 % of the weights write 100"),
    ("density 0.002 without its sign", ["rewind", "--from", "runs/parent", "--iter", "4",
                                        "--density", "0.002"],
     2, "0.002 is a percent here: for 0.002 % write 0.002%, for 0.2 % of the weights "
     "write 0.2%"),
    ("batch larger than the training set", ["train", *TINY, "--batch-size", "1000"],
     1, "is larger than the training set (512 examples); use a smaller batch"),
    ("--out not writable", ["train", *TINY, "--out", "runs/not_a_run/notes.txt/run"],
     1, "choose a folder you can write to (--out)"),
    ("--from a folder of runs", ["rewind", "--from", "runs", "--iter", "4", "--density", "80"],
     1, "runs, not a run; name one of them:"),
    ("demo --out inside a run", ["demo", "--quick", "--out", "runs/parent/demo"],
     1, "lies in the run directory"),
    ("--method unknown", ["iterate", "--from", "runs/parent", "--iter", "4", "--rounds", "1",
                          "--method", "rewindlr"],
     2, "unknown method (did you mean rewind-lr?)"),
    # Issue 16: pruning options, your own network, data and recipe.
    ("--exclude names no layer", ["rewind", "--from", "runs/lenet", "--iter", "1",
                                  "--density", "50", "--exclude", "fc_9"],
     1, "exclude names no masked layer or kernel: ['fc_9']"),
    ("--exclude names no layer in iterate", ["iterate", "--from", "runs/lenet", "--iter", "1",
                                             "--rounds", "1", "--exclude", "fc_9"],
     1, "exclude names no masked layer or kernel: ['fc_9']"),
    ("--exclude every layer", ["rewind", "--from", "runs/lenet", "--iter", "1", "--density", "50",
                               "--exclude", "fc_1", "--exclude", "fc_2", "--exclude", "fc_3"],
     1, "leaves no layer to prune; exclude fewer"),
    ("--layer-rate names no layer", ["iterate", "--from", "runs/lenet", "--iter", "1",
                                     "--rounds", "1", "--scope", "layerwise",
                                     "--layer-rate", "fc_9=0.9"],
     1, "--layer-rate fc_9=0.9: names no masked layer or kernel: ['fc_9']"),
    ("--layer-rate without layerwise scope", ["iterate", "--from", "runs/lenet", "--iter", "1",
                                              "--rounds", "1", "--layer-rate", "fc_3=0.9"],
     1, "--layer-rate fc_3=0.9: per-layer rates need the layerwise scope"),
    # Issue 24: messages name what the user gave, as given.
    ("--from a plain file", ["rewind", "--from", "data/digits.npz", "--iter", "1",
                             "--density", "50"],
     1, "data/digits.npz is a file, not a run directory; name the folder holding a run.json"),
    ("--dataset npz missing", ["train", "--arch", "lenet300", "--dataset", "npz:nowhere.npz"],
     1, "--dataset npz:nowhere.npz: no such file ("),
    ("--arch module missing", ["train", *TINY, "--arch", "nosuchpkg.nets:build"],
     1, "cannot import it (ModuleNotFoundError: No module named 'nosuchpkg')"),
    ("--arch function missing", ["train", *TINY, "--arch", "json:nothing"],
     1, "cannot import it (AttributeError: module 'json' has no attribute 'nothing')"),
    ("--arch not a function", ["train", *TINY, "--arch", "keras_lottery:__version__"],
     1, "is not a function"),
    ("--arch function needing other arguments", ["train", *TINY, "--arch", "json:dumps"],
     1, "cannot be called with input_shape and num_classes alone"),
    ("--arch .keras file missing", ["train", *TINY, "--arch", "nowhere.keras"],
     1, "--arch nowhere.keras: no such model file"),
    ("derived run given other data", ["rewind", "--from", "runs/npz", "--iter", "1",
                                      "--density", "50", "--dataset", "npz:data/other.npz"],
     1, "differs from the data runs/npz trained on"),
    ("recipe preset unknown", ["train", *TINY, "--recipe", "frankle2019-lenett"],
     1, "unknown recipe (did you mean frankle2019-lenet?)"),
    ("recipe field unknown", ["train", *TINY, "--recipe", "recipes/typo.toml"],
     1, "--recipe recipes/typo.toml: lr_drop = [5]: is not a recipe field (did you mean lr_drops?)"),
    ("recipe LR negative", ["train", *TINY, "--recipe", "recipes/negative.toml"],
     1, "--recipe recipes/negative.toml: lr -0.1: expected a positive learning rate"),
    ("recipe LR drops beyond the steps", ["train", *TINY, "--recipe", "recipes/drops.toml"],
     1, "--recipe recipes/drops.toml: lr_drops [100]: [100] lie outside [0, 14]"),
    ("recipe optimizer unknown", ["train", *TINY, "--recipe", "recipes/optimizer.toml"],
     1, "--recipe recipes/optimizer.toml: optimizer 'adamw': expected one of momentum, sgd, "
        "nesterov, adam (did you mean adam?)"),
]


@pytest.fixture(scope="module")
def bad_input_folder(tmp_path_factory):
    """A folder with a finished parent run and damaged copies of it, plus
    CIFAR-10 folders damaged in each way."""

    import keras

    from cifar_fixtures import binary_bytes, make_batches, write_binary, write_python

    folder = tmp_path_factory.mktemp("bad_input")
    old = os.getcwd()
    os.chdir(folder)
    try:
        result = CliRunner().invoke(main, ["train", *TINY, "--seed", "0", "--out", "runs/parent"])
        assert result.exit_code == 0, result.output
        # A LeNet-300-100 parent (fc_1, fc_2, fc_3), and one on an npz file.
        result = CliRunner().invoke(main, ["train", *LENET, "--seed", "0", "--out", "runs/lenet"])
        assert result.exit_code == 0, result.output
        digits = keras_lottery.data.load("digits")
        os.mkdir("data")
        np.savez("data/digits.npz", x_train=digits.x_train[:64], y_train=digits.y_train[:64],
                 x_test=digits.x_test[:32], y_test=digits.y_test[:32])
        np.savez("data/other.npz", x_train=digits.x_train[64:128], y_train=digits.y_train[64:128],
                 x_test=digits.x_test[:32], y_test=digits.y_test[:32])
        result = CliRunner().invoke(main, ["train", *LENET, "--dataset", "npz:data/digits.npz",
                                           "--seed", "0", "--out", "runs/npz"])
        assert result.exit_code == 0, result.output
    finally:
        os.chdir(old)
    recipes = folder / "recipes"
    recipes.mkdir()
    for name, text in [("typo", "lr_drop = [5]"), ("negative", "lr = -0.1"),
                       ("drops", "lr_drops = [100]"), ("optimizer", 'optimizer = "adamw"')]:
        (recipes / f"{name}.toml").write_text(text + "\n")
    runs_dir = folder / "runs"
    parent = runs_dir / "parent"
    (runs_dir / "not_a_run").mkdir()
    (runs_dir / "not_a_run" / "notes.txt").write_text("not a run\n")

    def copy(name, edit=None):
        shutil.copytree(parent, runs_dir / name)
        if edit:
            path = runs_dir / name / "run.json"
            config = json.loads(path.read_text())
            edit(config)
            path.write_text(json.dumps(config))
        return runs_dir / name

    copy("unfinished", lambda c: c.update(status="running"))
    final = copy("truncated") / "checkpoints" / "checkpoint_iter_final.weights.h5"
    final.write_bytes(final.read_bytes()[:1000])
    at_k = copy("corrupt_k") / "checkpoints" / "checkpoint_iter_4.weights.h5"
    at_k.write_bytes(b"\0" * 4096)
    (copy("garbled") / "run.json").write_text('{"mode": "train", ')
    copy("nonsense", lambda c: c["recipe"].update(steps="many"))
    copy("bad_steps", lambda c: c.update(end_step=-5))
    # A model config with a Python lambda (marshalled code) inside.
    model = keras.Sequential([keras.Input((32, 32, 3)),
                              keras.layers.Lambda(lambda x: x * 2)])
    (copy("lambda") / "model.json").write_text(model.to_json())

    data = folder / "data"
    batches = make_batches(records=8)
    write_binary(data / "missing" / "cifar-10-batches-bin", batches)
    (data / "missing" / "cifar-10-batches-bin" / "data_batch_3.bin").unlink()
    bad = write_binary(data / "truncated" / "cifar-10-batches-bin", batches)
    with open(os.path.join(bad, "data_batch_2.bin"), "r+b") as f:
        f.truncate(3000)
    bad = write_binary(data / "corrupt" / "cifar-10-batches-bin", batches)
    images, labels = batches["test_batch"]
    with open(os.path.join(bad, "test_batch.bin"), "wb") as f:
        f.write(binary_bytes(images, [11] + labels[1:]))
    bad = write_python(data / "payload" / "cifar-10-batches-py", batches)
    marker = folder / "PAYLOAD_RAN"
    payload = (b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR.")
    with open(os.path.join(bad, "data_batch_1"), "wb") as f:
        f.write(payload)
    # Own data and networks: an npz without y_test, MNIST files of the wrong
    # kind (a labels magic where images belong), a network with 3 outputs.
    x = np.zeros((4, 8, 8, 1), "float32")
    np.savez(data / "nokey.npz", x_train=x, y_train=np.zeros(4, "int64"), x_test=x)
    (data / "mnist").mkdir()
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                 "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (data / "mnist" / name).write_bytes(b"\0\0\x08\x01" + b"\0" * 8)
    keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                      keras.layers.Dense(3)]).save(folder / "three.keras")
    return folder


@pytest.mark.parametrize("case, args, code, fragment", BAD_INPUT, ids=[c[0] for c in BAD_INPUT])
def test_bad_input_table(bad_input_folder, monkeypatch, case, args, code, fragment):
    monkeypatch.chdir(bad_input_folder)
    before = snapshot(bad_input_folder)
    result = CliRunner().invoke(main, args)
    assert result.exit_code == code, (case, result.output)
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1, result.output
    assert fragment in errors[0], (case, result.output)
    # Click turns an Error line into SystemExit; anything else escaped.
    assert isinstance(result.exception, SystemExit), (case, repr(result.exception))
    assert snapshot(bad_input_folder) == before, f"{case} changed files"
    assert not (bad_input_folder / "PAYLOAD_RAN").exists()


@pytest.mark.parametrize("case", ["density 0", "seed negative", "--data-dir missing",
                                  "parent checkpoint truncated"])
def test_bad_input_in_a_real_process_prints_one_line_and_no_traceback(
        bad_input_folder, case):
    (args, code, fragment), = [row[1:] for row in BAD_INPUT if row[0] == case]
    exe = shutil.which("lottery")
    command = [exe] if exe else [sys.executable, "-m", "keras_lottery.cli"]
    before = snapshot(bad_input_folder)
    done = subprocess.run([*command, *args], cwd=bad_input_folder, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == code, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and fragment in errors[0], done.stderr[-2000:]
    assert snapshot(bad_input_folder) == before


def test_bad_input_table_is_in_the_docs():
    page = (ROOT / "docs" / "how-to" / "bad-input.md").read_text()
    missing = [case for case, _, _, fragment in BAD_INPUT
               if fragment.replace("runs/parent", "RUN") not in page.replace("runs/parent", "RUN")]
    assert not missing, f"the docs' bad-input table lacks: {missing}"


def test_iterate_controls_grouped_results_and_plots(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert _invoke("train", *TINY, "--seed", "0").exit_code == 0
    result = _invoke("iterate", "--iter", "4", "--rounds", "2", "--seed", "1", "-q")
    assert result.exit_code == 0, result.output
    study = pathlib.Path("runs/resnet8/iterate-rewind-k4-r80-s1")
    assert "density 80%)" in result.output and "density 64%)" in result.output
    assert sorted(p.name for p in study.iterdir()) == ["iterate.json", "round-1", "round-2"]
    for command in (["random", "--iter", "4"], ["lowlr-rewind", "--iter", "4"], ["reinit"]):
        result = _invoke(*command, "--density", "50", "--seed", "2", "-q")
        assert result.exit_code == 0, (command, result.output)
    result = CliRunner().invoke(main, ["reinit", "--density", "50", "--iter", "4"])
    assert result.exit_code == 2  # reinit has no --iter (it trains from step 0)
    assert "no such option" in result.output.lower() and "--iter" in result.output
    result = CliRunner().invoke(main, ["random", "--density", "50"])
    assert result.exit_code == 2 and "Missing option '--iter'" in result.output

    grouped = list(csv.DictReader(io.StringIO(
        _invoke("results", "--group", "--format", "csv").stdout)))
    methods = {(r["method"], r["density"], r["n"]) for r in grouped}
    assert methods == {
        ("train", "1.0", "1"), ("rewind (iterative)", "0.8", "1"),
        ("rewind (iterative)", "0.64", "1"), ("random", "0.5", "1"),
        ("lowlr_rewind", "0.5", "1"), ("reinit", "0.5", "1"),
    }
    assert "top1_median" in _invoke("results", "--group").output
    # A damaged run is skipped with a warning, not a traceback.
    (pathlib.Path("runs/resnet8/bad")).mkdir()
    (pathlib.Path("runs/resnet8/bad/run.json")).write_text("{")
    result = CliRunner().invoke(main, ["results"])
    assert result.exit_code == 0 and "Warning: skipping runs/resnet8/bad" in result.output
    result = _invoke("plot", "-o", "density.png", "runs/resnet8")
    assert result.exit_code == 0, result.output
    assert pathlib.Path("density.png").read_bytes()[:4] == b"\x89PNG"
    result = _invoke("plot", "--curves", "-o", "curves.svg", str(study))
    assert result.exit_code == 0, result.output
    assert "<svg" in pathlib.Path("curves.svg").read_text()


# --- Issue 17's cases beyond one-line errors, on the bad-input folder's
# LeNet-300-100 parent (fc_1 19,200 + fc_2 30,000 + fc_3 1,000 weights).
LENET_WEIGHTS = {"fc_1": 19_200, "fc_2": 30_000, "fc_3": 1_000}


def _kept(run):
    """{layer: weights kept} of a run's final masks."""
    return {k: int(m.sum()) for k, m in keras_lottery.sparse.pruning.get_masks(run.load_model()).items()}


def _error_line(result):
    (line,) = [line for line in result.output.splitlines() if line.startswith("Error")]
    return line


def test_a_percent_sign_asks_for_a_sub_percent_density(bad_input_folder, tmp_path):
    parent = bad_input_folder / "runs" / "lenet"
    out = tmp_path / "sub-percent"
    # --from names the parent's run.json: understood as its folder.
    result = _invoke("rewind", "--from", str(parent / "run.json"), "--iter", "1",
                     "--density", "0.8%", "--seed", "0", "-q", "--out", str(out))
    assert result.exit_code == 0, result.output
    run = keras_lottery.Run.open(out)
    assert run.spec.target_density == 0.008
    assert run.spec.parent == str(parent.resolve())
    assert sum(_kept(run).values()) == round(0.008 * sum(LENET_WEIGHTS.values()))
    # Its children ask for less than it keeps: --density is absolute.
    result = CliRunner().invoke(main, ["rewind", "--from", str(out), "--iter", "1",
                                       "--density", "50"])
    assert result.exit_code == 1
    assert (f"--density 50: is at or above the density of {out} (0.8%); density is "
            "absolute") in _error_line(result)
    assert _error_line(result).endswith("so ask for less than 0.8%")


def test_an_unwritable_out_does_not_suggest_resuming(bad_input_folder, monkeypatch):
    (args,) = [row[1] for row in BAD_INPUT if row[0] == "--out not writable"]
    monkeypatch.chdir(bad_input_folder)
    line = _error_line(CliRunner().invoke(main, args))
    assert "Not a directory (runs/not_a_run/notes.txt/run)" in line
    assert "resume" not in line and "re-run" not in line


def test_layerwise_scope_prunes_each_layer_to_the_density(bad_input_folder, tmp_path):
    result = _invoke("rewind", "--from", str(bad_input_folder / "runs" / "lenet"), "--iter", "1",
                     "--density", "50", "--scope", "layerwise", "--seed", "0", "-q",
                     "--out", str(tmp_path / "layerwise"))
    assert result.exit_code == 0, result.output
    run = keras_lottery.Run.open(tmp_path / "layerwise")
    assert run.spec.scope == "layerwise"
    assert _kept(run) == {name: n // 2 for name, n in LENET_WEIGHTS.items()}


def test_an_excluded_layer_stays_whole_uncounted_recorded_and_inherited(bad_input_folder, tmp_path):
    result = _invoke("rewind", "--from", str(bad_input_folder / "runs" / "lenet"), "--iter", "1",
                     "--density", "50", "--exclude", "fc_3", "--seed", "0", "-q",
                     "--out", str(tmp_path / "excluded"))
    assert result.exit_code == 0, result.output
    run = keras_lottery.Run.open(tmp_path / "excluded")
    assert run.config["exclude"] == ["fc_3"]
    kept = _kept(run)
    assert kept["fc_3"] == LENET_WEIGHTS["fc_3"]
    assert kept["fc_1"] + kept["fc_2"] == 24_600  # half of the 49,200 not excluded
    assert run.density == 0.5 and run.metrics[-1]["density"] == 0.5
    # A child without --exclude inherits it.
    result = _invoke("rewind", "--from", str(run.path), "--iter", "1", "--density", "25",
                     "--seed", "0", "-q", "--out", str(tmp_path / "child"))
    assert result.exit_code == 0, result.output
    child = keras_lottery.Run.open(tmp_path / "child")
    assert child.spec.exclude == ("fc_3",)
    kept = _kept(child)
    assert kept["fc_3"] == LENET_WEIGHTS["fc_3"]
    assert kept["fc_1"] + kept["fc_2"] == 12_300
    assert child.density == 0.25


def test_iterate_layerwise_with_a_rate_of_its_own_for_one_layer(bad_input_folder, tmp_path):
    study = tmp_path / "study"
    result = _invoke("iterate", "--from", str(bad_input_folder / "runs" / "lenet"), "--iter", "1",
                     "--rounds", "2", "--rate", "0.8", "--scope", "layerwise",
                     "--layer-rate", "fc_3=0.9", "--seed", "0", "-q", "--out", str(study))
    assert result.exit_code == 0, result.output
    for i in (1, 2):
        run = keras_lottery.Run.open(study / f"round-{i}")
        rates = {"fc_1": 0.8, "fc_2": 0.8, "fc_3": 0.9}
        assert _kept(run) == {name: round(n * rates[name] ** i)
                              for name, n in LENET_WEIGHTS.items()}, i


def test_iterate_takes_rewind_lr_in_either_spelling(bad_input_folder, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    parent = str(bad_input_folder / "runs" / "lenet")
    said = []
    for spelling in ("rewind_lr", "rewind-lr"):
        result = _invoke("iterate", "--from", parent, "--method", spelling, "--iter", "1",
                         "--rounds", "1", "--seed", "0", "-q")
        assert result.exit_code == 0, (spelling, result.output)
        said.append([line for line in result.output.splitlines()
                     if line.startswith(("round", "finished"))])
    # One study, printed the same way whichever spelling was typed.
    assert said[0] == said[1] == [
        "round 1/1: rewind_lr to density 80%",
        "finished: runs/lenet300/iterate-rewind-lr-k1-r80-s0/round-1 (density 80%)"]
    assert keras_lottery.Run.open(
        "runs/lenet300/iterate-rewind-lr-k1-r80-s0/round-1").spec.mode == "rewind_lr"
    # The command itself also takes either spelling.
    for command in ("rewind_lr", "rewind-lr", "lowlr_rewind"):
        result = CliRunner().invoke(main, [command, "--help"])
        assert result.exit_code == 0 and "--density" in result.output, command


def _hand_run(path, *, dataset="synthetic", steps=10, seed=0, top1=(0.5,)):
    """A finished rewind run written by hand: run.json and metrics.csv (its
    parent, a train run, too)."""
    base = path.parent.parent / "parents" / "base"
    if not base.exists():
        train = keras_lottery.RunSpec("train", "resnet8", dataset,
                                      keras_lottery.spec.recipe.make(steps=steps), seed=0)
        keras_lottery.Run.create(base, train, RunRecord(
            status="finished", start_step=0, end_step=steps, density=1.0))
    spec = keras_lottery.RunSpec(
        "rewind", "resnet8", dataset, keras_lottery.spec.recipe.make(steps=steps), seed=seed,
        parent=str(base.resolve()), iteration=3, target_density=0.8)
    run = keras_lottery.Run.create(path, spec, RunRecord(status="running", start_step=3, end_step=steps, density=0.8))
    for i, value in enumerate(top1):
        run.append_metrics({"step": 4 + i, "top1": value, "top5": 0.9, "loss": 1.0,
                            "lr": 0.1, "density": 0.8, "elapsed": 1.0})
    run.set_status("finished")
    return run


def test_results_reports_each_damaged_metrics_file_and_summarises_the_rest(tmp_path):
    folder = tmp_path / "runs"
    _hand_run(folder / "good", top1=(0.5, 0.75))
    header = "step,top1,top5,loss,lr,density,val_top1,elapsed\n"
    damage = {
        "cut": (header + "4,0.5,0.9,1.0,0.1,0.8,,1.0\n5,0.6,0.9", "cut off in its last row"),
        "garbage": ("\x00\x01 not a table \xff\n", "its header is not step,top1"),
        "empty": ("", "empty, not even a header"),
    }
    for name, (text, _) in damage.items():
        run = _hand_run(folder / name)
        (run.path / "metrics.csv").write_text(text)
    result = CliRunner().invoke(main, ["results", str(folder)])
    assert result.exit_code == 0, result.output
    warnings = result.stderr.splitlines()
    assert len(warnings) == len(damage), warnings
    for name, (_, what) in damage.items():
        (line,) = [w for w in warnings if str(folder / name / "metrics.csv") in w]
        assert line.startswith(f"Warning: skipping {folder / name}: ") and what in line
    rows = result.stdout.splitlines()[2:]
    assert [row.split()[0] for row in rows] == [str(folder / "good")]
    assert rows[0].split()[-2:] == ["0.7500", "0.7500"]  # final and best top-1


def test_results_group_splits_datasets_and_lengths_and_warns_about_repeated_seeds(tmp_path):
    folder = tmp_path / "runs"
    _hand_run(folder / "digits-T4", dataset="digits", steps=4, seed=0)
    _hand_run(folder / "synthetic-T40", steps=40, seed=1)
    _hand_run(folder / "synthetic-T40-copy", steps=40, seed=1)
    result = CliRunner().invoke(main, ["results", "--group", "--format", "csv", str(folder)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert sorted((r["dataset"], r["T"], r["n"], r["seeds"]) for r in rows) == [
        ("digits", "4", "1", "0"), ("synthetic", "40", "2", "1,1")]
    assert result.stderr.splitlines() == [
        "Warning: the group resnet8 rewind k=3 density 80% mixes runs: seeds repeat (1, 1)"]
    table = CliRunner().invoke(main, ["results", str(folder)]).stdout.splitlines()
    assert {"dataset", "T", "seed"} <= set(table[0].split())


def test_an_npz_file_trains_and_its_children_read_it_again(bad_input_folder, tmp_path):
    parent = keras_lottery.Run.open(bad_input_folder / "runs" / "npz")
    npz = bad_input_folder / "data" / "digits.npz"
    assert parent.spec.dataset == f"npz:{npz.resolve()}"
    assert parent.config["data_sha256"] == keras_lottery.data.load(f"npz:{npz}").fingerprint
    assert (parent.config["input_shape"], parent.config["num_classes"]) == ([8, 8, 1], 10)
    result = _invoke("rewind", "--from", str(parent.path), "--iter", "1", "--density", "50",
                     "--seed", "0", "-q", "--out", str(tmp_path / "child"))
    assert result.exit_code == 0, result.output
    child = keras_lottery.Run.open(tmp_path / "child")
    assert child.spec.dataset == parent.spec.dataset
    assert child.config["data_sha256"] == parent.config["data_sha256"]


def test_a_closed_pipe_ends_the_command_quietly(tmp_path):
    # `lottery study status FILE | head -2`: the reader leaves early. Here it
    # has left before the first line is written, so every write fails.
    study = tmp_path / "study.toml"
    study.write_text("[base]\nseeds = [0, 1, 2]\narch = 'lenet300'\ndataset = 'digits'\n"
                     "steps = 40\n[oneshot]\nmethods = ['rewind']\niters = [7]\n"
                     "densities = [50, 20, 10]\n")
    read, write = os.pipe()
    os.close(read)
    try:
        done = subprocess.run([sys.executable, "-m", "keras_lottery.cli", "study", "status",
                               str(study)], stdout=write, stderr=subprocess.PIPE, cwd=tmp_path,
                              text=True, timeout=120, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    finally:
        os.close(write)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", done.stderr
