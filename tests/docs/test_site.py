"""The documentation site builds strictly, documents every public name, and
speaks only of the project.

`mkdocs build --strict` turns every warning into an error: a broken link or
anchor, a page left out of the navigation, a reference mkdocstrings cannot
resolve, a docstring it cannot parse. About 15 s on 2 CPU cores.
"""

import inspect
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest
from docs_blocks import DOCS
from docs_blocks import ROOT
from docs_blocks import pages

import keras_lottery

pytest.importorskip("mkdocs")
pytest.importorskip("mkdocstrings")


def _build(config, site, **env):
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config),
                           "-d", str(site)], cwd=config.parent, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "NO_MKDOCS_2_WARNING": "1", **env})


def _without_tensorflow(tmp_path):
    """A PYTHONPATH on which `import tensorflow` fails, as where the docs
    extra alone is installed."""
    blocked = tmp_path / "no_tf" / "tensorflow"
    blocked.mkdir(parents=True)
    (blocked / "__init__.py").write_text('raise ImportError("TensorFlow is not installed")\n')
    return os.pathsep.join([str(blocked.parent), os.environ.get("PYTHONPATH", "")])


def _copy_of_the_docs(tmp_path):
    """The site's sources copied to tmp_path, with the package beside them."""
    for name in ("mkdocs.yml", "README.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(DOCS, tmp_path / "docs", symlinks=True)
    for name in ("keras_lottery", "notebooks"):
        (tmp_path / name).symlink_to(ROOT / name)
    return tmp_path


def test_the_site_builds_strictly_without_tensorflow(tmp_path):
    done = _build(ROOT / "mkdocs.yml", tmp_path / "site", PYTHONPATH=_without_tensorflow(tmp_path),
                  KERAS_BACKEND="tensorflow")
    assert done.returncode == 0, done.stderr[-4000:]
    site = tmp_path / "site"
    api = (site / "reference" / "api" / "index.html").read_text(encoding="utf-8")
    for name, path in _public_paths().items():
        assert f'id="{path}"' in api or f'id="{path}.' in api, name
    cli = (site / "reference" / "cli" / "index.html").read_text(encoding="utf-8")
    for command in ("train", "rewind", "study", "masks", "thin", "demo"):
        assert f"lottery {command}" in cli, command
    notebook = (site / "tutorials" / "quickstart" / "index.html").read_text(encoding="utf-8")
    assert "IterationCheckpoint" in notebook


def test_a_broken_link_fails_the_build(tmp_path):
    copy = _copy_of_the_docs(tmp_path)
    page = copy / "docs" / "getting-started.md"
    page.write_text(page.read_text() + "\nSee [nowhere](tutorials/nowhere.md).\n")
    done = _build(copy / "mkdocs.yml", tmp_path / "site")
    assert done.returncode != 0 and "nowhere.md" in done.stderr, done.stderr[-2000:]


def _public_paths():
    """{public name: where it is defined, as `module.name` or `module`}."""
    found = {}
    for name in keras_lottery.__all__:
        value = getattr(keras_lottery, name)
        found[name] = value.__name__ if inspect.ismodule(value) else f"{value.__module__}.{name}"
    return found


def test_the_api_page_lists_every_public_name():
    text = (DOCS / "reference" / "api.md").read_text()
    listed = set(re.findall(r"^::: ([\w.]+)$", text, re.M))
    missing = [name for name, path in _public_paths().items() if path not in listed]
    assert not missing, f"docs/reference/api.md lacks {missing}"


@pytest.mark.parametrize("name", keras_lottery.__all__)
def test_every_public_name_has_a_docstring(name):
    value = getattr(keras_lottery, name)
    doc = (value.__doc__ or "").strip()
    assert len(doc) > 20, f"keras_lottery.{name} has no docstring worth the name"


# What a user cannot see, so the product may not point to it: files that
# do not ship, tracker numbers and the benchmarks' internal run labels.
FORBIDDEN = [r"\bissue \d+", r"DESIGN\.md", r"DESIGN item", r"docs-drafts",
             r"(?-i:benchmarks/RESULTS\.md, run [A-F])"]


def _product_texts():
    texts = [ROOT / p for p in pages()] + [ROOT / "benchmarks" / "RESULTS.md"]
    texts += sorted((ROOT / "keras_lottery").rglob("*.py"))
    return texts


@pytest.mark.parametrize("pattern", FORBIDDEN)
def test_the_product_speaks_only_of_itself(pattern):
    found = [f"{p.relative_to(ROOT)}: {m.group(0)!r}" for p in _product_texts()
             for m in re.finditer(pattern, p.read_text(encoding="utf-8"), re.I)]
    assert not found, found


def test_the_readme_is_one_screen_and_its_links_lead_to_pages():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 150
    links = re.findall(r"\]\(([^)#]+)", readme)
    assert links and all((ROOT / link).exists() for link in links), links
    assert "pip install '.[docs]' && mkdocs serve" in readme
    assert not pathlib.Path(ROOT / "docs-drafts").exists()
