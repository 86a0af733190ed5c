"""What keras_lottery claims to install with: floors that .ci/run tests, a
TensorFlow the user chooses, and one line saying what to install when
there is none."""

import configparser
import importlib.util
import json
import os
import pathlib
import re
import subprocess
import sys

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement

from keras_lottery import backends

ROOT = pathlib.Path(__file__).resolve().parents[1]
CI = ROOT / ".ci"
TF_DISTRIBUTIONS = {"tensorflow", "tensorflow-cpu", "tensorflow-gpu", "tf-nightly"}


def _setup_cfg():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    return config


def _requirements(text):
    return [Requirement(line) for line in text.strip().splitlines()
            if line.strip() and not line.strip().startswith("#")]


def _install_requires():
    return _requirements(_setup_cfg()["options"]["install_requires"])


def _extra(name):
    return _requirements(_setup_cfg()["options.extras_require"][name])


def _pins():
    pins = {}
    for line in (CI / "floors.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.strip().split("==")
            pins[name] = version
    return pins


def _floor(requirement):
    (spec,) = [s for s in requirement.specifier if s.operator == ">="]
    return spec.version


def test_every_floor_in_setup_cfg_is_pinned_in_ci_floors_at_that_version():
    pins = _pins()
    claimed = {r.name: _floor(r) for r in _install_requires()
               if any(s.operator == ">=" for s in r.specifier)}
    assert {"keras", "numpy", "click", "matplotlib"} <= set(claimed)
    assert {name: pins.get(name) for name in claimed} == claimed
    # TensorFlow's floor, the same in every extra that brings it.
    tensorflow = {_floor(r) for extra in ("cpu", "and-cuda") for r in _extra(extra)}
    assert tensorflow == {pins["tensorflow-cpu"]}


def test_floors_run_on_the_oldest_python_setup_cfg_allows():
    oldest = _setup_cfg()["options"]["python_requires"].strip()
    assert oldest == ">=3.10"
    script = (CI / "floors").read_text()
    assert "sys.version_info[:2] != (3, 10)" in script
    assert "-r .ci/floors.txt '.[cpu]'" in script


def test_ci_runs_the_floors_after_the_readme_test_command():
    lines = (CI / "run").read_text().splitlines()
    readme_test = "pip install '.[cpu,test]' && python -m pytest tests"
    assert lines.index("bash .ci/floors") > lines.index(readme_test)


def test_the_floor_selection_names_tests_that_exist():
    # A renamed test stops the floors' pytest with "not found" at the end of CI.
    for line in (CI / "floors-tests.txt").read_text().splitlines():
        line = re.sub("#.*", "", line).strip()
        if line:
            path, _, test = line.split("=", 1)[-1].partition("::")
            assert (ROOT / path).is_file(), line
            name = test.split("[")[0]
            source = (ROOT / path).read_text()
            assert not name or re.search(rf"^def {name}\(", source, re.M), line


def test_no_tensorflow_distribution_is_a_hard_requirement():
    # tensorflow and tensorflow-cpu install the same `tensorflow` module:
    # requiring one would add it next to the other.
    assert not {r.name for r in _install_requires()} & TF_DISTRIBUTIONS


# sys_platform, platform_machine -> the TensorFlow the cpu extra brings.
PLATFORMS = {
    ("linux", "x86_64"): "tensorflow-cpu",
    ("win32", "AMD64"): "tensorflow-cpu",
    ("linux", "aarch64"): "tensorflow",
    ("darwin", "arm64"): "tensorflow",
    ("darwin", "x86_64"): "tensorflow",
}


@pytest.mark.parametrize("platform", list(PLATFORMS), ids="-".join)
def test_cpu_extra_brings_exactly_one_cpu_tensorflow_per_platform(platform):
    env = {"sys_platform": platform[0], "platform_machine": platform[1],
           "extra": "cpu"}
    chosen = [r.name for r in _extra("cpu")
              if r.marker is None or Marker(str(r.marker)).evaluate(env)]
    assert chosen == [PLATFORMS[platform]]


def test_the_test_extra_leaves_the_tensorflow_to_you():
    # The README's test command asks for '.[cpu,test]'; a GPU machine
    # installs '.[and-cuda,test]' without a second TensorFlow.
    assert not [r for r in _extra("test") if r.name.startswith("tensorflow")
                or r.name == "keras-lottery"]
    readme = (ROOT / "README.md").read_text()
    assert "pip install '.[cpu,test]' && python -m pytest tests" in readme
    assert [r.name for r in _extra("and-cuda")] == ["tensorflow"]
    assert _extra("and-cuda")[0].extras == {"and-cuda"}


def _without_tensorflow(tmp_path, **extra):
    """An environment in which `import tensorflow` fails, as where none is
    installed: a stand-in package that refuses to import."""
    blocked = tmp_path / "no_tf" / "tensorflow"
    blocked.mkdir(parents=True)
    (blocked / "__init__.py").write_text(
        'raise ModuleNotFoundError("No module named \'tensorflow\'", name="tensorflow")\n')
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(blocked.parent), str(ROOT)]),
               KERAS_HOME=str(tmp_path / "keras_home"), TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("KERAS_BACKEND", None)
    env.update(extra)
    return env


def test_lottery_without_tensorflow_says_what_to_install_in_one_line(tmp_path):
    env = _without_tensorflow(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "keras_lottery.cli", "train", "--arch", "resnet8",
         "--dataset", "synthetic", "--steps", "2", "--out", str(tmp_path / "run")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("Error: Keras's backend 'tensorflow' cannot be imported")
    assert f"pip install {backends.INSTALL['tensorflow'].split()[2]}" in lines[0]
    assert "KERAS_BACKEND=jax" in lines[0]
    assert not (tmp_path / "run").exists()


def test_python_api_without_tensorflow_raises_an_import_error_naming_the_fix(tmp_path):
    code = ("import keras_lottery\n"
            "try:\n    keras_lottery.MaskedDense\n"
            "except ImportError as e:\n    print('caught:', e)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path,
                          env=_without_tensorflow(tmp_path), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("caught: Keras's backend 'tensorflow' cannot be imported")
    assert "pip install" in done.stdout


def test_backend_is_looked_up_as_keras_does(tmp_path, monkeypatch):
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    assert backends.configured() == "tensorflow"
    (tmp_path / "keras.json").write_text(json.dumps({"backend": "jax"}))
    assert backends.configured() == "jax"
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    assert backends.configured() == "torch"


def test_an_importable_backend_is_not_reported_missing(monkeypatch):
    # This process runs the suite on TensorFlow, so it imports.
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    assert backends.missing() is None


def test_each_backend_has_its_extra_and_ci_installs_pytorchs_cpu_build():
    assert [r.name for r in _extra("jax")] == ["jax"]
    assert [r.name for r in _extra("torch")] == ["torch"]
    lines = (CI / "run").read_text().splitlines()
    readme_test = "pip install '.[cpu,test]' && python -m pytest tests"
    assert lines.index("pip install 'torch==2.13.0'") < lines.index(readme_test)
    assert "download.pytorch.org/whl/cpu" in backends.INSTALL["torch"]


def test_lottery_version_names_the_backend_without_importing_it():
    done = subprocess.run([sys.executable, "-m", "keras_lottery.cli", "--version"],
                          env=dict(os.environ, KERAS_BACKEND="jax"), capture_output=True,
                          text=True, timeout=60)
    installed = "" if importlib.util.find_spec("jax") else ", not installed"
    assert done.stdout.strip().endswith(f"(Keras backend: jax{installed})"), \
        done.stdout + done.stderr
