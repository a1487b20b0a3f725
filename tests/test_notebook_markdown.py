"""Every notebook's markdown renders as prose, not as a wall of headings.

A notebook converted from a commented script (jupytext's percent format keeps
markdown as `# ` comments) can end up with `# ` before every markdown line, and
Jupyter and GitHub then show each line as a heading. Chapter 7's notebooks
once had 50 such cells.
"""

import json

import pytest
from notebooks import REPO_ROOT, find_notebooks


def prose_lines(markdown):
    """The non-blank lines of `markdown` outside fenced code blocks."""
    lines, in_fence = [], False
    for line in markdown.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            in_fence = not in_fence
        elif not in_fence and line.strip():
            lines.append(line)
    return lines


def renders_as_headings(markdown):
    """True when most lines of a multi-line cell start with `#`, or a line is a bare `#`."""
    lines = prose_lines(markdown)
    headings = [line for line in lines if line.startswith("#")]
    bare = any(line.strip() == "#" for line in lines)
    return bare or (len(lines) > 1 and len(headings) > len(lines) / 2)


def test_the_check_tells_prose_from_commented_markdown():
    assert not renders_as_headings("## 7.1 Introduction\n\nSome prose.\n")
    assert not renders_as_headings("# Chapter 7")
    assert not renders_as_headings("Code:\n```python\n# a comment\n# another\n```\n")
    assert renders_as_headings("# ## 7.1 Introduction\n#\n# Some prose.\n# More prose.")
    assert renders_as_headings("# Some prose\n# that goes on.")


@pytest.mark.parametrize("notebook", find_notebooks())
def test_markdown_cells_render_as_prose(notebook):
    cells = json.loads((REPO_ROOT / notebook).read_text(encoding="utf-8"))["cells"]
    bad = [index for index, cell in enumerate(cells)
           if cell["cell_type"] == "markdown"
           and renders_as_headings("".join(cell["source"]))]
    assert not bad, (f"{notebook}: markdown cells {bad} would render every line as a "
                     "heading (lines start with '#'; commented-out markdown?)")
