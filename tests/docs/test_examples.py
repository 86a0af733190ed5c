"""Every Python example of the README and the docs runs, and every
command-line sample (```console blocks) prints what the page shows.

One `lottery demo --quick` (about 30 s on 2 CPU cores) is shared by the
module: its output is the getting-started sample, its runs are what the
analyses' examples and samples read.
"""

import os
import shlex

import pytest
from click.testing import CliRunner
from docs_blocks import ROOT
from docs_blocks import SHOWN_ROOT
from docs_blocks import pages
from docs_blocks import runnable
from docs_blocks import same_output
from docs_blocks import samples

from keras_lottery.cli import main

DEMO = "lottery-demo/lenet300"
CODE_PAGES = [p for p in pages() if runnable(p)[0]]
SAMPLES = [(page, command, output) for page in pages() for command, output in samples(page)]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """(folder holding lottery-demo/, the output of `lottery demo --quick`)."""
    folder = tmp_path_factory.mktemp("demo")
    before = os.getcwd()
    os.chdir(folder)
    try:
        result = CliRunner().invoke(main, ["demo", "--quick"], catch_exceptions=False)
    finally:
        os.chdir(before)
    assert result.exit_code == 0, result.output
    return folder, result.output


def _shown(text, *folders):
    for folder in folders:
        text = text.replace(str(folder), SHOWN_ROOT)
    return text.splitlines()


def test_the_pages_have_examples_and_samples_to_check():
    assert {"README.md", "docs/getting-started.md", "docs/how-to/pruner.md"} <= set(CODE_PAGES)
    commands = [command for _, command, _ in SAMPLES]
    assert "lottery demo --quick" in commands
    assert any(c.startswith("lottery study plan examples/") for c in commands)
    assert any(c.startswith("lottery masks") for c in commands)
    assert any(c.startswith("lottery stability") for c in commands)
    assert any(output and output[-1].startswith("Error:") for _, _, output in SAMPLES)


def test_examples_marked_not_run_are_few_and_say_why():
    skipped = [b for p in pages() for b in runnable(p)[1]]
    assert len(skipped) <= 3, skipped
    assert all(len(b.splitlines()[0]) > len("# not run: x") for b in skipped)


@pytest.mark.parametrize("page", CODE_PAGES)
def test_python_examples_run(page, demo, tmp_path, monkeypatch):
    """A page's examples run in order in one namespace, in a fresh folder
    that holds the demo's runs (as after `lottery demo --quick`)."""
    (tmp_path / "lottery-demo").symlink_to(demo[0] / "lottery-demo")
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__docs__"}
    for number, code in enumerate(runnable(page)[0], 1):
        try:
            exec(compile(code, f"{page}, python example {number}", "exec"), namespace)
        except Exception as e:  # noqa: BLE001  (name the example that failed)
            raise AssertionError(f"{page}, python example {number} fails: {e!r}\n{code}") from e


@pytest.mark.parametrize("page, command, expected", SAMPLES, ids=[f"{p}: {c[:60]}" for p, c, _ in SAMPLES])
def test_command_line_samples_print_what_the_page_shows(page, command, expected, demo, monkeypatch):
    folder, demo_output = demo
    if command == "lottery demo --quick":
        printed = demo_output
    else:
        monkeypatch.chdir(ROOT if " examples/" in command else folder)
        args = shlex.split(command.replace("$D", DEMO))[1:]
        printed = CliRunner().invoke(main, args, prog_name="lottery", catch_exceptions=False).output
    ok, difference = same_output(expected, _shown(printed, ROOT, folder))
    assert ok, f"{page}: `{command}` prints otherwise:\n{difference}\n--- printed:\n{printed}"
