"""Build hook: docstring examples written as `>>>` lines render as code.

The package's docstrings show examples as interactive sessions (`>>> call`,
`... continued`, then the output) after an `Example:` line. Markdown would
read them as text; this turns each such run of lines into a `pycon` code
block, on every page and in every docstring mkdocstrings renders.
"""

import re

from markdown import Extension
from markdown.preprocessors import Preprocessor

_PROMPT = re.compile(r"^(\s*)>>> ")


class _Doctests(Preprocessor):
    def run(self, lines):
        out, i, fence = [], 0, False
        while i < len(lines):
            line = lines[i]
            if line.lstrip().startswith(("```", "~~~")):
                fence = not fence
            match = None if fence else _PROMPT.match(line)
            if not match:
                out.append(line)
                i += 1
                continue
            indent = match.group(1)
            block = []
            while i < len(lines) and lines[i].strip():
                block.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i])
                i += 1
            out += ["", f"{indent}```pycon", *(indent + b for b in block), f"{indent}```", ""]
        return out


class DoctestBlocks(Extension):
    def extendMarkdown(self, md):
        md.preprocessors.register(_Doctests(md), "doctest_blocks", 40)


def on_config(config):
    config.markdown_extensions.append(DoctestBlocks())
    return config
