import pathlib
import shutil
import subprocess

from click.testing import CliRunner

import keras_lottery
from keras_lottery.cli import main

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_help_and_version():
    runner = CliRunner()
    result = runner.invoke(main, ["--help"])
    assert result.exit_code == 0
    assert "Usage: main" in result.output or "Usage: lottery" in result.output
    assert "Renda" in result.output
    result = runner.invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"lottery, version {keras_lottery.__version__}"


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
    import json

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
    assert lines[0].split()[:4] == ["run", "mode", "arch", "density"]
    rows = {line.split()[0]: line.split() for line in lines[2:]}
    assert rows["runs/resnet20/train-s0"][1:4] == ["train", "resnet20", "100%"]
    assert rows["runs/resnet20/rewind-k1-d80-s0"][1:6] == ["rewind", "resnet20", "80%", "1", "13"]
    as_csv = list(csv.DictReader(io.StringIO(_invoke("results", "--format", "csv").output)))
    assert {r["mode"] for r in as_csv} == {"train", "rewind"}
    curve = json.loads(_invoke("results", "--curve", "--format", "json",
                               "runs/resnet20/train-s0").output)
    assert [r["step"] for r in curve] == [2, 4, 6, 8, 10, 12, 14]


def test_default_parent_must_be_unique(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = _invoke("rewind", "--iter", "1", "--density", "80")
    assert result.exit_code == 1
    assert "found 0" in result.output and "--from" in result.output
    assert "Traceback" not in result.output


def test_bad_input_gets_one_line_errors(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cases = [
        (["train", "--arch", "resnet21", "--dataset", "synthetic"], 1, "available: "),
        (["train", "--dataset", "synthetic", "--steps", "0"], 1, "steps must be a positive integer"),
        (["train", "--dataset", "synthetic", "--checkpoint-iters", "5,2"], 1, "sorted and unique"),
        (["train", "--dataset", "synthetic", "--checkpoint-iters", "a,b"], 2, "comma-separated"),
        (["rewind", "--iter", "1", "--density", "0"], 2, "(0, 100]"),
        (["rewind", "--iter", "1", "--density", "101"], 2, "(0, 100]"),
        (["rewind", "--from", "nowhere", "--iter", "1", "--density", "80"], 1, "does not exist"),
    ]
    for args, code, message in cases:
        result = _invoke(*args)
        assert result.exit_code == code, (args, result.output)
        assert message in result.output, (args, result.output)
        assert "Traceback" not in result.output
    assert not (tmp_path / "runs").exists()
