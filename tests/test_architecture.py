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
CLI_MODULES = set((PACKAGE / "cli").glob("*.py"))


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
    """Lines of a function's code, its docstring left out (a procedure
    whose signature and docstring are all it has counts 0)."""
    body = node.body
    if (isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)):
        body = body[1:]  # the docstring
    return body[-1].end_lineno - body[0].lineno + 1 if body else 0


def _sizes(root, module_limit, function_limit):
    big = []
    for path in _python_files(root):
        text = path.read_text()
        if len(text.splitlines()) > module_limit:
            big.append(f"{path}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if _body_lines(node) > function_limit:
                    big.append(f"{path}:{node.lineno} {node.name}: {_body_lines(node)} lines")
    return big


def test_modules_and_functions_stay_small():
    assert _sizes(PACKAGE, 400, 50) == []


def test_the_size_check_finds_a_long_function(tmp_path):
    long = "\n".join(f"    x{i} = {i}" for i in range(51))
    (tmp_path / "m.py").write_text(f'def f():\n    """Doc."""\n{long}\n\n\ndef g():\n    """Only a docstring."""\n')
    assert [line.split(" ", 1)[1] for line in _sizes(tmp_path, 400, 50)] == ["f: 51 lines"]


def test_the_package_shows_its_layers():
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= 10, top
    packages = sorted(p.parent.name for p in PACKAGE.glob("*/__init__.py"))
    assert packages == ["analysis", "cli", "data", "models", "procedures", "results",
                        "runs", "sparse", "spec", "study", "training"]
    contracts = (ROOT / ".importlinter").read_text()
    assert "ignore_imports" not in contracts
    for package in packages:
        assert f"keras_lottery.{package}" in contracts, package


def test_no_module_passes_its_locals_around():
    uses = [f"{path}:{node.lineno}" for path in _python_files(PACKAGE)
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id in ("locals", "vars")]
    assert uses == [], "\n".join(uses)


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


def _method_strings():
    """Every name and command of the method table, and the words its columns
    were once spelled with (its behaviour now lives on the table's values)."""
    from keras_lottery.spec import methods

    found = {"parent_end", "k", "init", "checkpoint", "length", "magnitude"}
    for method in methods.METHODS.values():
        found |= {method.name, method.command}
    return found


def branches_on_method_strings(path, names):
    """`file:line code` of each comparison with a method's name or a column
    value written as a string (`mode == "train"`, `m.state == "k"`)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Compare):
            continue
        operands = [node.left, *node.comparators]
        values = [o.value for o in operands if isinstance(o, ast.Constant)]
        values += [e.value for o in operands if isinstance(o, (ast.Tuple, ast.List, ast.Set))
                   for e in o.elts if isinstance(e, ast.Constant)]
        if any(isinstance(v, str) and v in names for v in values):
            found.append(f"{path}:{node.lineno} {ast.unparse(node)}")
    return found


def test_no_module_branches_on_a_methods_strings(tmp_path):
    names = _method_strings()
    sample = tmp_path / "sample.py"
    sample.write_text('if spec.mode == "train":\n    pass\nif m.state in ("k", "final"):\n'
                      '    pass\nif x == "other":\n    pass\n')
    assert len(branches_on_method_strings(sample, names)) == 2
    table = PACKAGE / "spec" / "methods.py"
    uses = [u for path in _python_files(PACKAGE) if path != table
            for u in branches_on_method_strings(path, names)]
    assert uses == [], "\n".join(uses)
