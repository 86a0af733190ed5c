"""The package's architecture, checked: import contracts (import-linter),
lint (ruff), no use of another module's private names, module and function
sizes, library errors that name Python arguments, and a command line that
does not load TensorFlow to answer --help."""

import ast
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "keras_lottery"
SOURCES = [PACKAGE, ROOT / "tests", ROOT / "benchmarks"]
# The command line is the one layer that speaks in --flags.
CLI_MODULES = {PACKAGE / "cli.py", *(PACKAGE / "commands").glob("*.py")}


def _python_files(*roots):
    return sorted(f for root in roots for f in root.rglob("*.py"))


def _tool(name):
    found = shutil.which(name) or shutil.which(name, path=os.path.dirname(sys.executable))
    if found is None:
        pytest.fail(f"{name} is not installed; pip install '.[test]'")
    return found


def test_import_contracts_are_kept():
    done = subprocess.run([_tool("lint-imports"), "--no-cache"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def test_ruff_finds_nothing():
    done = subprocess.run(
        [_tool("ruff"), "check", "--no-cache", "keras_lottery", "tests", "benchmarks"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:]


def private_uses(path):
    """`file:line name` for each use of another module's (or object's)
    private name: `from m import _x`, or `obj._x` on anything but self/cls."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            found += [f"{path}:{node.lineno} import {a.name}" for a in node.names
                      if _private(a.name)]
        elif isinstance(node, ast.Attribute) and _private(node.attr):
            owner = node.value
            if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
                continue
            if (isinstance(owner, ast.Call) and isinstance(owner.func, ast.Name)
                    and owner.func.id == "super"):
                continue
            found.append(f"{path}:{node.lineno} {ast.unparse(owner)}.{node.attr}")
    return found


def _private(name):
    return name.startswith("_") and not name.startswith("__")


def test_private_names_checker_finds_what_it_should(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("from m import _hidden\nimport keras\n"
                      "x = layer._kernel\ny = self._mine\nz = super()._base()\n")
    assert [u[len(f"{sample}:"):] for u in private_uses(sample)] == [
        "1 import _hidden", "3 layer._kernel"]


def test_no_module_uses_another_modules_private_names():
    uses = [u for f in _python_files(*SOURCES) for u in private_uses(f)]
    assert uses == [], "\n".join(uses)


def _body_lines(node):
    body = node.body
    if (isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str) and len(body) > 1):
        body = body[1:]  # the docstring
    return body[-1].end_lineno - body[0].lineno + 1


def test_modules_and_functions_stay_small():
    big = []
    for path in _python_files(PACKAGE):
        text = path.read_text()
        # procedures.py held eight concerns in 999 lines once: it composes.
        limit = 400 if path.name == "procedures.py" and path.parent == PACKAGE else 500
        if len(text.splitlines()) > limit:
            big.append(f"{path}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if _body_lines(node) > 60:
                    big.append(f"{path}:{node.lineno} {node.name}: {_body_lines(node)} lines")
    assert big == [], "\n".join(big)


def test_library_errors_name_python_arguments_not_cli_flags():
    flag = re.compile(r"(?<![\w-])--[a-z][a-z-]+")
    found = []
    for path in _python_files(PACKAGE):
        if path in CLI_MODULES:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Raise) and node.exc is not None:
                text = " ".join(
                    n.value for n in ast.walk(node.exc)
                    if isinstance(n, ast.Constant) and isinstance(n.value, str))
                if flag.search(text):
                    found.append(f"{path}:{node.lineno} {flag.search(text)[0]}")
    assert found == [], "\n".join(found)


HEAVY = ("tensorflow", "keras", "jax", "matplotlib", "numpy", "h5py")
IMPORTS = """
import json, sys
from keras_lottery.cli import main
try:
    main({args!r}, standalone_mode=False)
except SystemExit:
    pass
heavy = sorted({{m.split(".")[0] for m in sys.modules}} & set({heavy!r}))
print(json.dumps(heavy))
"""


def _commands():
    from keras_lottery.cli import main

    names = []
    for name, command in main.commands.items():
        names.append([name])
        names += [[name, sub] for sub in getattr(command, "commands", {})]
    return names


@pytest.mark.parametrize("args", [["--help"], ["--version"]]
                         + [[*c, "--help"] for c in _commands()])
def test_cli_answers_help_and_version_without_loading_tensorflow(args):
    code = IMPORTS.format(args=args, heavy=HEAVY)
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.splitlines()[-1]) == [], args
