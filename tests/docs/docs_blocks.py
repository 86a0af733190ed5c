"""The documentation's pages and the code blocks the tests check.

Pages are README.md and every Markdown file under docs/. Two kinds of
fenced block are checked:

- ```python blocks are run, a page's blocks in order in one namespace; a
  block whose first line is `# not run: REASON` is skipped, and says why;
- ```console blocks are command-line samples: each `$ lottery ...` line, then
  the output that command prints; the tests run the command and compare.
  `$D` stands for the demo's `lottery-demo/lenet300`. Samples that cannot
  be regenerated cheaply (hours of training, timings) are plain ``` blocks.
"""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
# What a repository path reads as in the pages' samples.
SHOWN_ROOT = "/home/you/keras_lottery"
NOT_RUN = "# not run:"

_BLOCK = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```\s*$", re.S | re.M)


def pages():
    """README.md and docs/**/*.md, as paths relative to the repository."""
    found = [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]
    return [p.relative_to(ROOT).as_posix() for p in found]


def blocks(page, language):
    """The bodies of the fenced blocks of `language` in `page`."""
    text = (ROOT / page).read_text(encoding="utf-8")
    return [body for lang, body in _BLOCK.findall(text) if lang == language]


def runnable(page):
    """(python blocks run, python blocks marked not run) of `page`."""
    code = blocks(page, "python")
    return ([b for b in code if not b.startswith(NOT_RUN)],
            [b for b in code if b.startswith(NOT_RUN)])


def samples(page):
    """[(command line, expected output lines)] of the console blocks."""
    found = []
    for body in blocks(page, "console"):
        for chunk in re.split(r"^(?=\$ )", body, flags=re.M):
            if not chunk.strip():
                continue
            first, *rest = chunk.rstrip("\n").split("\n")
            assert first.startswith("$ lottery "), f"{page}: {first!r} is not a lottery command"
            found.append((first[2:], rest))
    return found


_FLOAT4 = re.compile(r"\d+\.\d{4}\b")


def same_output(expected, actual, tolerance=0.003):
    """Whether two outputs agree: line by line, after trailing spaces; four-
    decimal numbers (accuracies, one test image being 0.0028 on the digits)
    within `tolerance`, everything else exactly; an expected line `...`
    stands for any lines (a long command's progress). Returns (ok, first
    difference)."""
    actual = [line.rstrip() for line in actual]
    expected = [line.rstrip() for line in expected]
    if "..." not in expected:
        if len(actual) != len(expected):
            return False, f"{len(expected)} lines expected, {len(actual)} printed"
        return _lines_agree(expected, actual, tolerance)
    cut = expected.index("...")
    head, rest = expected[:cut], expected[cut + 1:]
    ok, difference = _lines_agree(head, actual[:cut], tolerance)
    if not ok or len(actual) < cut:
        return False, difference or f"{cut} lines expected before '...'"
    # The lines after '...' at the first place they agree, the rest likewise.
    seen = []
    for start in range(cut, len(actual) + 1):
        ok, difference = same_output(rest, actual[start:], tolerance)
        if ok:
            return True, ""
        seen.append(difference)
    return False, seen[0] if seen else "no lines after '...'"


def _lines_agree(expected, actual, tolerance):
    for want, got in zip(expected, actual):
        if _FLOAT4.sub("#", want) != _FLOAT4.sub("#", got):
            return False, f"expected {want!r}\n     got {got!r}"
        for a, b in zip(_FLOAT4.findall(want), _FLOAT4.findall(got)):
            if abs(float(a) - float(b)) > tolerance:
                return False, f"expected {want!r}\n     got {got!r}"
    return True, ""
