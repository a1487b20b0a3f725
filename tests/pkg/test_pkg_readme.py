"""The package README's code blocks run as written, and what they print is true.

The blocks run in order in one namespace, from the repository root, as a reader
pastes them into one session. Blocks preceded by a `<!-- not run by the tests: ... -->`
comment (downloads of pretrained weights) are skipped. Every printed comparison
the README annotates with `# True` must print True.
"""

import contextlib
import io
import re

from support.course_imports import REPO_ROOT

README = REPO_ROOT / "pkg" / "llms_from_scratch" / "README.md"
BLOCK = re.compile(r"(<!-- not run by the tests:[^>]*-->\n)?```python\n(.*?)```", re.DOTALL)


def code_blocks():
    return [(bool(skip), code) for skip, code in BLOCK.findall(README.read_text())]


def test_readme_blocks_run_and_print_what_they_claim(monkeypatch):
    blocks = code_blocks()
    assert len([code for skip, code in blocks if not skip]) >= 5
    monkeypatch.chdir(REPO_ROOT)
    namespace = {"__name__": "readme"}
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        for skip, code in blocks:
            if not skip:
                exec(compile(code, str(README), "exec"), namespace)
    printed = output.getvalue().splitlines()
    claims = sum(code.count("# True") for skip, code in blocks if not skip)
    assert printed.count("True") == claims, printed
    assert "torch.Size([1, 4, 8])" in printed

